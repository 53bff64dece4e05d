// The benchmark's AdapterLens side, on the GPU machine (bench/run-on-device.sh): the same
// work as bench/hf_bench.py's `run`, through the engine as the app drives it: one base
// prefill, one prefill per adapter, per adapter the strategies' stores encoded and decoded
// on the GPU, then ONE batched greedy decode of every (adapter, strategy) sequence, each
// with its own cache and adapter. Load excluded. Writes adapterlens.json.
//   node --import tsx bench/adapterlens-bench.ts WORK OUT.json [dtype]
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadAddon } from '../main/engine/native-loader.js';
import type { NativeAdapter, NativeKvCache, NativeStrategySpec } from '../main/engine/native-types.js';
import { openCheckpoint } from '../main/model/checkpoint.js';
import { openAdapter } from '../main/model/adapter.js';

const [work, outFile, dtypeArg] = process.argv.slice(2);
if (!work || !outFile) throw new Error('usage: adapterlens-bench.ts WORK OUT.json [bf16|fp16|fp32]');
const dtype = (dtypeArg ?? 'bf16') as 'bf16' | 'fp16' | 'fp32';
const ADAPTERS = ['qv-r8', 'qv-r16', 'qkvo-r64'];
const STRATEGIES: { id: string; spec: NativeStrategySpec | null }[] = [
  { id: 'exact', spec: null },
  { id: 'base', spec: { kind: 'base' } },
  { id: 'seed-minikv', spec: { kind: 'seed-minikv' } },
  { id: 'delta-int8', spec: { kind: 'delta-int8' } },
];
const NEW_TOKENS = 32;

const { addon, backend, fallbackReason } = loadAddon('cuda');
const info = addon.info();
console.log(`engine: ${backend} ${info.device}${fallbackReason ? ` (${fallbackReason})` : ''}`);
const doc: number[] = JSON.parse(fs.readFileSync(path.join(work, 'doc.json'), 'utf8'));
const T = doc.length - 1; // caches hold the first T tokens; the first decode step feeds the last

const tLoad = performance.now();
const ckpt = await openCheckpoint(path.join(work, 'llama2-7b-shape'));
const cfg = ckpt.config.native;
const model = await addon.loadModel({ ...cfg, dtype }, ckpt.tensors, null, null);
const adapters: NativeAdapter[] = [];
for (const a of ADAPTERS) {
  const opened = await openAdapter(path.join(work, 'adapters', a), cfg);
  adapters.push(await model.loadAdapter(opened.spec, null, null));
}
const loadSeconds = (performance.now() - tLoad) / 1e3;
console.log(`loaded in ${loadSeconds.toFixed(1)}s: model ${(model.bytes / 2 ** 30).toFixed(2)} GiB`);

const capacity = T + NEW_TOKENS;
const docIds = Int32Array.from(doc.slice(0, T));
const opts = { chunkSize: T, logits: 'none' as const };

async function run(measure: boolean) {
  addon.resetDevicePeak?.();
  const t0 = performance.now();
  const base = model.newCache(capacity);
  await model.prefill(base, docIds, null, opts, null, null);
  const tPrefill = (performance.now() - t0) / 1e3;
  const seqs: { name: string; cache: NativeKvCache; adapter: NativeAdapter }[] = [];
  const bytes: Record<string, number> = {};
  const tAdapterPrefill: number[] = [];
  for (const [i, a] of adapters.entries()) {
    const ta = performance.now();
    const exact = model.newCache(capacity);
    await model.prefill(exact, docIds, a, opts, null, null);
    tAdapterPrefill.push((performance.now() - ta) / 1e3);
    for (const s of STRATEGIES) {
      if (!s.spec) {
        seqs.push({ name: `${ADAPTERS[i]}/exact`, cache: exact, adapter: a });
        bytes[`${ADAPTERS[i]}/exact`] = 2 * cfg.numLayers * cfg.numKvHeads * cfg.headDim * T * (dtype === 'fp32' ? 4 : 2);
        continue;
      }
      const store = await model.encodeStore(s.spec, base, exact, a);
      bytes[`${ADAPTERS[i]}/${s.id}`] = store.bytes;
      seqs.push({ name: `${ADAPTERS[i]}/${s.id}`, cache: await store.decode(base, capacity), adapter: a });
      store.dispose();
    }
  }
  const tDecodeStart = performance.now();
  const tokens = seqs.map(() => [] as number[]);
  let feed = seqs.map(() => doc[T]!);
  const stepMs: number[] = [];
  for (let step = 0; step < NEW_TOKENS; step++) {
    const ts = performance.now();
    const r = await model.decode(
      seqs.map((s, i) => ({ cache: s.cache, adapter: s.adapter, token: feed[i]!, sampling: { temperature: 0, topP: 1, seed: 0 } })),
      { logits: false },
    );
    stepMs.push(performance.now() - ts);
    feed = Array.from(r.tokens);
    feed.forEach((t, i) => tokens[i]!.push(t));
  }
  const total = (performance.now() - t0) / 1e3;
  const decodeSeconds = (performance.now() - tDecodeStart) / 1e3;
  const peak = addon.info().deviceMemoryPeak ?? null;
  for (const s of seqs) s.cache.dispose();
  base.dispose();
  if (measure) console.log(`adapterlens: end-to-end ${total.toFixed(3)}s (base prefill ${(tPrefill * 1e3).toFixed(1)} ms, decode ${(decodeSeconds * 1e3).toFixed(0)} ms)`);
  return { total, tPrefill, tAdapterPrefill, decodeSeconds, stepMs, bytes, peak, tokens: Object.fromEntries(seqs.map((s, i) => [s.name, tokens[i]])) };
}

await run(false); // warm-up: cuBLAS heuristics, scratch allocation
const r = await run(true);
const sorted = [...r.stepMs].sort((a, b) => a - b);
let adapterBytes = 0;
for (const a of adapters) adapterBytes += a.bytes;
const result = {
  engine: 'adapterlens',
  device: info.device,
  dtype,
  batch: ADAPTERS.length * STRATEGIES.length,
  documentTokens: doc.length,
  newTokens: NEW_TOKENS,
  loadSeconds,
  endToEndSeconds: r.total,
  basePrefillSeconds: r.tPrefill,
  adapterPrefillSeconds: r.tAdapterPrefill,
  decodeSeconds: r.decodeSeconds,
  decodeStepMsMedian: sorted[Math.floor(sorted.length / 2)],
  decodeStepMs: r.stepMs,
  modelBytes: model.bytes,
  adapterBytes,
  peakDeviceBytes: r.peak,
  storeBytes: r.bytes,
  tokens: r.tokens,
};
fs.writeFileSync(outFile, JSON.stringify(result, null, 1));
for (const a of adapters) a.dispose();
model.dispose();
