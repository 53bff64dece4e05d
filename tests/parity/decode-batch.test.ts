// A batched decode step (rows of different sequences, lengths and adapters in one forward:
// batched LoRA, the per-row attention and, on CUDA, the captured decode graph) against the
// CPU engine decoding each row alone. fp32, logits within 1e-4 relative, greedy tokens equal.
// With ADAPTERLENS_TEST_DEVICE=cuda (bench/run-on-device.sh) the batch runs on the CUDA
// build; elsewhere both sides run on the CPU build, which still checks the batched path.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadAddon } from '../../main/engine/native-loader.js';
import type { NativeAdapter, NativeKvCache, NativeModel } from '../../main/engine/native-types.js';
import { openCheckpoint } from '../../main/model/checkpoint.js';
import { openAdapter } from '../../main/model/adapter.js';
import { adapterDir, modelDir, readManifest, relErr } from './hf-fixtures.js';

const TOLERANCE = 1e-4;
const STEPS = 6;
const MODEL = 'llama-gqa-bf16';
// Row i: (adapter or none, document length). Two rows share an adapter; lengths differ.
const ROWS: { adapter: string | null; tokens: number }[] = [
  { adapter: null, tokens: 63 },
  { adapter: 'qv-r8', tokens: 50 },
  { adapter: 'all-linear-rslora', tokens: 60 },
  { adapter: 'qv-r8', tokens: 31 },
  { adapter: 'patterns', tokens: 9 },
];

const manifest = readManifest();
const batchBackend = process.env.ADAPTERLENS_TEST_DEVICE === 'cuda' ? 'cuda' : 'cpu';
const greedy = { temperature: 0, topP: 1, seed: 0 };

interface Side {
  model: NativeModel;
  adapters: Map<string, NativeAdapter>;
}

async function open(backend: 'cpu' | 'cuda'): Promise<Side> {
  const { addon } = loadAddon(backend);
  const ckpt = await openCheckpoint(modelDir(manifest, MODEL));
  const model = await addon.loadModel(ckpt.config.native, ckpt.tensors, null, null);
  const adapters = new Map<string, NativeAdapter>();
  for (const name of new Set(ROWS.flatMap((r) => (r.adapter ? [r.adapter] : [])))) {
    const opened = await openAdapter(adapterDir(manifest, MODEL, name), ckpt.config.native);
    adapters.set(name, await model.loadAdapter(opened.spec, null, null));
  }
  return { model, adapters };
}

async function prefilled(side: Side, doc: number[]): Promise<NativeKvCache[]> {
  const caches: NativeKvCache[] = [];
  for (const row of ROWS) {
    const cache = side.model.newCache(row.tokens + STEPS + 1);
    const adapter = row.adapter ? side.adapters.get(row.adapter)! : null;
    await side.model.prefill(cache, Int32Array.from(doc.slice(0, row.tokens)), adapter, { chunkSize: 16, logits: 'none' }, null, null);
    caches.push(cache);
  }
  return caches;
}

describe(`batched decode (${batchBackend}) against one-row decode on the CPU engine`, () => {
  let batch: Side;
  let single: Side;
  before(async () => {
    batch = await open(batchBackend);
    single = await open('cpu');
  });
  after(() => {
    for (const side of [batch, single]) {
      for (const a of side.adapters.values()) a.dispose();
      side.model.dispose();
    }
  });

  it(`${ROWS.length} rows, ${STEPS} steps: logits within ${TOLERANCE}, greedy tokens equal`, async () => {
    const doc = manifest.cases.find((c) => c.model === MODEL)!.documentTokens;
    const batchCaches = await prefilled(batch, doc);
    const singleCaches = await prefilled(single, doc);
    let feed = ROWS.map((r) => doc[r.tokens]!);
    let worst = 0;
    try {
      for (let step = 0; step < STEPS; step++) {
        const got = await batch.model.decode(
          ROWS.map((r, i) => ({ cache: batchCaches[i]!, adapter: r.adapter ? batch.adapters.get(r.adapter)! : null, token: feed[i]!, sampling: greedy })),
          { logits: true },
        );
        assert.ok(got.logits, 'the batched step returned no logits');
        const vocab = got.logits.length / ROWS.length;
        for (const [i, r] of ROWS.entries()) {
          const want = await single.model.decode(
            [{ cache: singleCaches[i]!, adapter: r.adapter ? single.adapters.get(r.adapter)! : null, token: feed[i]!, sampling: greedy }],
            { logits: true },
          );
          const e = relErr(got.logits.subarray(i * vocab, (i + 1) * vocab), want.logits!);
          worst = Math.max(worst, e);
          assert.ok(e <= TOLERANCE, `step ${step}, row ${i} (${r.adapter ?? 'base'}, ${r.tokens} tokens): logits rel err ${e.toExponential(2)}`);
          assert.equal(got.tokens[i], want.tokens[0], `step ${step}, row ${i}: greedy token`);
        }
        feed = Array.from(got.tokens);
      }
    } finally {
      for (const c of [...batchCaches, ...singleCaches]) c.dispose();
    }
    console.log(`batched decode (${batchBackend}) vs one-row CPU decode: worst logits rel err ${worst.toExponential(2)} over ${STEPS} steps × ${ROWS.length} rows`);
  });
});
