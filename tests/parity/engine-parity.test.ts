// The engine against transformers + PEFT (fixtures from tests/reference/make_fixtures.py):
// logits and every layer's K and V within 1e-4 relative in fp32, greedy tokens identical,
// for every base model and every adapter.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadAddon } from '../../main/engine/native-loader.js';
import { generate } from '../../main/engine/generate.js';
import type { NativeAdapter, NativeModel } from '../../main/engine/native-types.js';
import { openCheckpoint } from '../../main/model/checkpoint.js';
import { openAdapter } from '../../main/model/adapter.js';
import { adapterDir, modelDir, readManifest, readReferenceTensors, relErr, type ReferenceCase } from './hf-fixtures.js';

const TOLERANCE = 1e-4;
const manifest = readManifest();
// ADAPTERLENS_TEST_DEVICE=cuda runs the same parity on the CUDA build (bench/run-on-device.sh).
const { addon } = loadAddon(process.env.ADAPTERLENS_TEST_DEVICE === 'cuda' ? 'cuda' : 'cpu');

interface Loaded {
  model: NativeModel;
  numLayers: number;
  vocab: number;
  adapters: Map<string, NativeAdapter>;
}
const loaded = new Map<string, Loaded>();
const figures: { case: string; logits: number; k: number; v: number; greedy: string }[] = [];

async function load(c: ReferenceCase): Promise<{ l: Loaded; adapter: NativeAdapter | null }> {
  let l = loaded.get(c.model);
  if (!l) {
    const ckpt = await openCheckpoint(modelDir(manifest, c.model));
    const model = await addon.loadModel(ckpt.config.native, ckpt.tensors, null, null);
    l = { model, numLayers: ckpt.config.native.numLayers, vocab: ckpt.config.native.vocabSize, adapters: new Map() };
    loaded.set(c.model, l);
  }
  if (!c.adapter) return { l, adapter: null };
  let a = l.adapters.get(c.adapter);
  if (!a) {
    const ckpt = await openCheckpoint(modelDir(manifest, c.model));
    const opened = await openAdapter(adapterDir(manifest, c.model, c.adapter), ckpt.config.native);
    a = await l.model.loadAdapter(opened.spec, null, null);
    l.adapters.set(c.adapter, a);
  }
  return { l, adapter: a };
}

describe('engine parity with transformers + PEFT (fp32)', () => {
  after(() => {
    for (const l of loaded.values()) {
      for (const a of l.adapters.values()) a.dispose();
      l.model.dispose();
    }
    console.log('\nparity figures (max relative error; greedy tokens)');
    console.log('case'.padEnd(40), 'logits'.padStart(9), 'K'.padStart(9), 'V'.padStart(9), ' greedy');
    for (const f of figures) {
      console.log(f.case.padEnd(40), f.logits.toExponential(2).padStart(9), f.k.toExponential(2).padStart(9), f.v.toExponential(2).padStart(9), '', f.greedy);
    }
  });

  for (const c of manifest.cases) {
    it(`${c.id}: logits, per-layer K/V, greedy tokens`, async () => {
      const { l, adapter } = await load(c);
      const ref = await readReferenceTensors(c);
      const T = c.documentTokens.length;
      const cache = l.model.newCache(T + c.promptTokens.length + c.greedy.newTokens.length + 1);
      try {
        const logits = await l.model.prefill(cache, Int32Array.from(c.documentTokens), adapter, { chunkSize: 16, logits: 'all' }, null, null);
        assert.ok(logits, 'prefill returned no logits');
        assert.equal(logits.length, T * l.vocab);
        const refLogits = ref.get('logits')!.data;
        let worstLogits = 0;
        for (const [row, pos] of c.logitsPositions.entries()) {
          const e = relErr(logits.subarray(pos * l.vocab, (pos + 1) * l.vocab), refLogits.subarray(row * l.vocab, (row + 1) * l.vocab));
          worstLogits = Math.max(worstLogits, e);
        }
        let worstK = 0;
        let worstV = 0;
        for (let layer = 0; layer < l.numLayers; layer++) {
          const { k, v } = cache.readLayer(layer);
          worstK = Math.max(worstK, relErr(k, ref.get(`layers.${layer}.k`)!.data));
          worstV = Math.max(worstV, relErr(v, ref.get(`layers.${layer}.v`)!.data));
        }
        const [tokens] = await generate(l.model, [
          { cache, adapter, feedTokens: c.promptTokens, sampling: { temperature: 0, topP: 1, seed: 0 }, maxNewTokens: c.greedy.newTokens.length, stopTokens: [] },
        ]);
        const same = JSON.stringify(tokens) === JSON.stringify(c.greedy.newTokens);
        figures.push({ case: c.id, logits: worstLogits, k: worstK, v: worstV, greedy: same ? `identical (${tokens!.length})` : `DIFFER ${JSON.stringify(tokens)}` });
        assert.ok(worstLogits < TOLERANCE, `logits relative error ${worstLogits}`);
        assert.ok(worstK < TOLERANCE, `K relative error ${worstK}`);
        assert.ok(worstV < TOLERANCE, `V relative error ${worstV}`);
        assert.deepEqual(tokens, c.greedy.newTokens);
      } finally {
        cache.dispose();
      }
    });
  }
});
