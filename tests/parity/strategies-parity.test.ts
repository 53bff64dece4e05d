// The shared-cache strategies against transformers + PEFT: per-layer kRelErr / vRelErr of
// base, seed-minikv and lragent (and seed's outsideSpan) within 1e-3 absolute of what the
// reference script computed with PEFT, and greedy generation from each rebuilt cache equal
// to HF's wherever HF's own top-1 margin is clear of fp32 noise.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadAddon } from '../../main/engine/native-loader.js';
import { generate } from '../../main/engine/generate.js';
import type { NativeKvCache, NativeModel, NativeStrategySpec } from '../../main/engine/native-types.js';
import { openCheckpoint } from '../../main/model/checkpoint.js';
import { openAdapter } from '../../main/model/adapter.js';
import { layerErrors } from '../../main/compare/metrics.js';
import { adapterDir, modelDir, readManifest } from './hf-fixtures.js';

const ERR_TOLERANCE = 1e-3;
/** Below this top1–top2 logit margin, HF's own greedy choice is within reach of fp32 noise. */
const CLEAR_MARGIN = 1e-3;
const manifest = readManifest();
// ADAPTERLENS_TEST_DEVICE=cuda runs the same parity on the CUDA build (bench/run-on-device.sh).
const { addon } = loadAddon(process.env.ADAPTERLENS_TEST_DEVICE === 'cuda' ? 'cuda' : 'cpu');
const models = new Map<string, NativeModel>();
const rows: string[] = [];

describe('strategies parity with transformers + PEFT', () => {
  after(() => {
    for (const m of models.values()) m.dispose();
    console.log('\nworst |ours − HF| over layers of kRelErr / vRelErr, and greedy agreement');
    for (const r of rows) console.log(r);
  });

  for (const c of manifest.cases.filter((x) => x.adapter && x.strategies)) {
    it(`${c.id}: base, seed-minikv, lragent`, async () => {
      const ckpt = await openCheckpoint(modelDir(manifest, c.model));
      let model = models.get(c.model);
      if (!model) {
        model = await addon.loadModel(ckpt.config.native, ckpt.tensors, null, null);
        models.set(c.model, model);
      }
      const opened = await openAdapter(adapterDir(manifest, c.model, c.adapter!), ckpt.config.native);
      const adapter = await model.loadAdapter(opened.spec, null, null);
      const T = c.documentTokens.length;
      const doc = Int32Array.from(c.documentTokens);
      const base = model.newCache(T);
      const exact = model.newCache(T);
      const owned: NativeKvCache[] = [base, exact];
      try {
        await model.prefill(base, doc, null, { chunkSize: 32, logits: 'none' }, null, null);
        await model.prefill(exact, doc, adapter, { chunkSize: 32, logits: 'none', captureLoraV: true }, null, null);
        const outside = await model.outsideSpan(base, exact, adapter);
        for (const sid of ['base', 'seed-minikv', 'lragent'] as const) {
          const ref = c.strategies![sid];
          const store = await model.encodeStore({ kind: sid } as NativeStrategySpec, base, exact, adapter);
          const capacity = T + c.promptTokens.length + ref.generation.newTokens.length + 1;
          const rebuilt = await store.decode(base, capacity);
          owned.push(rebuilt);
          store.dispose();
          const ours = layerErrors(await model.compareCaches(rebuilt, exact));
          let worstK = 0;
          let worstV = 0;
          for (const [l, r] of ref.layers.entries()) {
            worstK = Math.max(worstK, Math.abs(ours[l]!.kRelErr - r.kRelErr));
            worstV = Math.max(worstV, Math.abs(ours[l]!.vRelErr - r.vRelErr));
            if (sid === 'seed-minikv') {
              if (r.outsideSpan === null || r.outsideSpan === undefined) assert.ok(Number.isNaN(outside[l]!), `layer ${l}: outsideSpan should be NaN`);
              else assert.ok(Math.abs(outside[l]! - r.outsideSpan) < ERR_TOLERANCE, `layer ${l}: outsideSpan ${outside[l]} vs HF ${r.outsideSpan}`);
            }
          }
          const [tokens] = await generate(model, [
            { cache: rebuilt, adapter, feedTokens: c.promptTokens, sampling: { temperature: 0, topP: 1, seed: 0 }, maxNewTokens: ref.generation.newTokens.length, stopTokens: [] },
          ]);
          const clear = ref.generation.minMargin > CLEAR_MARGIN;
          const same = JSON.stringify(tokens) === JSON.stringify(ref.generation.newTokens);
          rows.push(`${c.id.padEnd(36)} ${sid.padEnd(12)} K ${worstK.toExponential(1)}  V ${worstV.toExponential(1)}  greedy ${same ? 'identical' : clear ? 'DIFFERS' : 'differs (HF margin below noise)'}`);
          assert.ok(worstK < ERR_TOLERANCE, `${sid}: kRelErr off by ${worstK}`);
          assert.ok(worstV < ERR_TOLERANCE, `${sid}: vRelErr off by ${worstV}`);
          if (clear) assert.deepEqual(tokens, ref.generation.newTokens, `${sid}: greedy tokens`);
        }
      } finally {
        for (const x of owned) x.dispose();
        adapter.dispose();
      }
    });
  }
});
