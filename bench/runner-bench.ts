// The benchmark of the product's own path: runComparison, the code behind `adapterlens
// compare` and the app, on the GPU machine (bench/run-on-device.sh). Each mode writes one JSON:
//
//   session WORK OUT   Llama-2-7B shape: the 4-strategy workload (caches cleared, after a warm-up
//                      run), its decode step times, then all eight strategies with every metric
//                      and score, and the device-to-host bytes of a comparison.
//   fresh WORK OUT     a fresh process's first run (load included, timed from process start).
//   profile WORK OUT   all eight strategies twice, a marker line between (for the op profile
//                      of a warm run: ADAPTERLENS_CUDA_PROFILE=1).
//   ladder WORK OUT    Llama-3-8B shape: documents of 4k..120k tokens, 3 adapters × 4 strategies,
//                      per-stage times, peak device memory and the decode step.
//   doc WORK TOKENS    writes WORK/doc.txt, English text of about TOKENS tokens.
//
//   node --import tsx bench/runner-bench.ts MODE WORK OUT.json
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { CacheManager } from '../main/cache/cache-manager.js';
import { runComparison } from '../main/compare/runner.js';
import { EngineSession } from '../main/compare/session.js';
import { startSessionForRun } from '../main/compare/start-session.js';
import { DigestCache } from '../main/model/digest-cache.js';
import { loadTokenizer } from '../main/model/tokenizer.js';
import { DEFAULT_SETTINGS, type CompareRequest } from '../shared/compare.js';
import type { Report } from '../shared/report.js';

const [mode, work, outFile] = process.argv.slice(2);
if (!mode || !work || !outFile) throw new Error('usage: runner-bench.ts session|fresh|ladder WORK OUT.json');

const ADAPTERS = ['qv-r8', 'qv-r16', 'qkvo-r64'];
const FOUR = ['exact', 'base', 'seed-minikv', 'delta-int8'];
const ALL = ['exact', 'base', 'seed-minikv', 'lragent', 'delta-int8', 'delta-int4', 'lowrank:8', 'hybrid:2'];
const NEW_TOKENS = 32;
const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
// The Llama-2 tokenizer the tests use (the checkpoints have random weights: any tokenizer of
// their vocabulary will do).
const tokenizerDir = path.join(repoRoot, 'tests', 'fixtures', 'models', 'llama-gqa-bf16');

/** English text of about `tokens` tokens: the demo document repeated, cut to length. */
async function documentOf(tokens: number): Promise<string> {
  const source = fs.readFileSync(path.join(repoRoot, 'tests', 'fixtures', 'documents', 'hku-intro.txt'), 'utf8').trim();
  const tok = await loadTokenizer(tokenizerDir);
  const per = tok.encodeDocument(source).length;
  let text = Array.from({ length: Math.ceil(tokens / per) + 1 }, () => source).join('\n\n');
  const n = tok.encodeDocument(text).length;
  text = text.slice(0, Math.floor((text.length * tokens) / n));
  return text;
}

function request(model: string, strategies: string[], documentText: string): CompareRequest {
  return {
    ...DEFAULT_SETTINGS,
    modelDir: path.join(work!, model),
    tokenizerDir,
    adapters: ADAPTERS.map((a) => ({ name: a, dir: path.join(work!, `adapters-${model}`, a) })),
    documentText,
    promptText: ' Summarize the above:',
    strategies: strategies as CompareRequest['strategies'],
    maxNewTokens: NEW_TOKENS,
    stopAtEos: false,
    dtype: 'bf16',
    device: 'cuda',
  };
}

/**
 * Shadows every method of a native object (its prototype's are read-only) with a timed one on
 * the object itself: count and summed ms per name.
 */
function traceCalls(target: Record<string, unknown>): { byName: Map<string, { n: number; ms: number }>; restore(): void } {
  const proto = Object.getPrototypeOf(target) as Record<string, unknown>;
  const byName = new Map<string, { n: number; ms: number }>();
  const names: string[] = [];
  for (const name of Object.getOwnPropertyNames(proto)) {
    // Methods only: a native getter (bytes, info) throws when read off the prototype itself.
    const f = Object.getOwnPropertyDescriptor(proto, name)?.value as unknown;
    if (name === 'constructor' || typeof f !== 'function') continue;
    names.push(name);
    const timedCall = function (this: unknown, ...a: unknown[]) {
      const t0 = performance.now();
      const note = () => {
        const c = byName.get(name) ?? { n: 0, ms: 0 };
        c.n++;
        c.ms += performance.now() - t0;
        byName.set(name, c);
      };
      const r = (f as (...x: unknown[]) => unknown).apply(this, a);
      if (r instanceof Promise) return r.finally(note);
      note();
      return r;
    };
    Object.defineProperty(target, name, { value: timedCall, configurable: true, writable: true });
  }
  return { byName, restore: () => names.forEach((n) => delete target[n]) };
}

/** One comparison, timed, with its decode steps (from the runner's own token events). */
async function timed(session: EngineSession, manager: CacheManager, req: CompareRequest) {
  manager.clear();
  const addon = session.engine.addon;
  addon.resetDevicePeak();
  const d2h0 = addon.info().deviceToHostBytes;
  const stepStart: number[] = [];
  // The model's hashing as the load stage reports it ("hashing model files DONE/TOTAL"): bytes
  // hashed by when, to tell the hash rate while the weights load from the rate after.
  const hashing: { at: number; done: number; total: number }[] = [];
  const t0 = performance.now();
  const report: Report = await runComparison(session, manager, req, {
    onToken: (t) => {
      if (stepStart[t.step] === undefined) stepStart[t.step] = performance.now();
    },
    onProgress: (p) => {
      const m = /^hashing model files (\d+)\/(\d+)$/.exec(p.detail ?? '');
      if (m) hashing.push({ at: (performance.now() - t0) / 1e3, done: Number(m[1]), total: Number(m[2]) });
    },
  });
  const seconds = (performance.now() - t0) / 1e3;
  const steps: number[] = [];
  for (let i = 1; i < stepStart.length; i++) steps.push(stepStart[i]! - stepStart[i - 1]!);
  const sorted = [...steps].sort((a, b) => a - b);
  const info = addon.info();
  return {
    seconds,
    // A stage may appear more than once (encode and measure alternate per cell): summed.
    stages: report.timings.reduce<Record<string, number>>((acc, t) => ({ ...acc, [t.stage]: (acc[t.stage] ?? 0) + t.ms / 1e3 }), {}),
    hashing: hashing.length ? { first: hashing[0], last: hashing[hashing.length - 1] } : null,
    decodeStepMs: sorted.length ? sorted[Math.floor(sorted.length / 2)]! : null,
    decodeStepsMs: steps,
    peakDeviceBytes: info.deviceMemoryPeak,
    deviceToHostBytes: info.deviceToHostBytes - d2h0,
    documentTokens: report.documentTokens.length,
    bytes: Object.fromEntries(report.adapters.flatMap((a) => a.strategies.map((s) => [`${a.name}/${s.strategy}`, s.bytes]))),
    tokens: Object.fromEntries(report.adapters.flatMap((a) => a.strategies.map((s) => [`${a.name}/${s.strategy}`, s.generation.tokens]))),
    scores: Object.fromEntries(report.adapters.flatMap((a) => a.strategies.map((s) => [`${a.name}/${s.strategy}`, { meanKl: s.scores.meanKl, top1: s.scores.top1Agreement }]))),
    parameters: report.model.parameters,
    documentTokenIds: report.documentTokens,
    promptTokenIds: report.promptTokens,
  };
}

async function main(): Promise<void> {
  if (mode === 'doc') {
    fs.writeFileSync(path.join(work!, 'doc.txt'), await documentOf(Number(outFile)));
    return;
  }
  // As the CLI keeps them: file digests in a data folder. A fresh process's first start
  // (FRESH_FIRST=1) begins without it, hashing everything; a second start finds it.
  const dataDir = path.join(work!, 'data');
  if (process.env.FRESH_FIRST === '1') fs.rmSync(dataDir, { recursive: true, force: true });
  // A fresh process starts as `adapterlens compare` does (start-session.ts: the run's folders
  // hashing before the engine starts up, the CUDA probe's result kept in the data folder).
  const freshDoc = mode === 'fresh' ? fs.readFileSync(path.join(work!, 'doc.txt'), 'utf8') : '';
  const started = mode === 'fresh' ? await startSessionForRun(request('llama2-7b-shape', FOUR, freshDoc), { dataDir }) : null;
  const session = started?.session ?? new EngineSession('cuda', { digestCache: DigestCache.inDataDir(dataDir) });
  // Since process start: imports, the hashing handed to its workers, the probe and the device started.
  const engineReadySeconds = performance.now() / 1e3;
  const manager = new CacheManager({ budgetBytes: 120 * 2 ** 30 });
  const info = session.engine.addon.info();
  const out: Record<string, unknown> = { path: 'runner', device: info.device, engine: info.engineVersion, mode };
  try {
    if (mode === 'session' || mode === 'fresh') {
      const doc = fs.readFileSync(path.join(work!, 'doc.txt'), 'utf8');
      if (mode === 'fresh') {
        // The first run of a process: loading (and hashing) included, timed from process start.
        const r = await timed(session, manager, request('llama2-7b-shape', FOUR, freshDoc));
        started!.prefetch.release();
        out.fresh = { ...r, secondsSinceProcessStart: performance.now() / 1e3, engineReadySeconds };
      } else {
        await timed(session, manager, request('llama2-7b-shape', FOUR, doc)); // warm-up: load, cuBLAS heuristics, graph
        const four = [];
        for (let i = 0; i < 3; i++) four.push(await timed(session, manager, request('llama2-7b-shape', FOUR, doc)));
        four.sort((a, b) => a.seconds - b.seconds);
        out.fourStrategies = { ...four[1], runs: four.map((f) => f.seconds) };  // the median of three
        // The token ids the transformers + PEFT peers run on (the runner's own tokenization).
        fs.writeFileSync(path.join(work!, 'doc-tokens.json'), JSON.stringify({ document: four[1]!.documentTokenIds, prompt: four[1]!.promptTokenIds }));
        await timed(session, manager, request('llama2-7b-shape', ALL, doc)); // warm-up of the other strategies' kernels
        const all = [];
        for (let i = 0; i < 3; i++) all.push(await timed(session, manager, request('llama2-7b-shape', ALL, doc)));
        all.sort((a, b) => a.seconds - b.seconds);
        out.allStrategies = { ...all[1], runs: all.map((f) => f.seconds) };
      }
    } else if (mode === 'profile') {
      // Under ADAPTERLENS_CUDA_PROFILE=1: all eight strategies once to warm up, then once more
      // after a marker line, so that the op profile of a warm run can be read after it.
      const doc = fs.readFileSync(path.join(work!, 'doc.txt'), 'utf8');
      await timed(session, manager, request('llama2-7b-shape', ALL, doc));
      // Each native model call of the warm run timed as JS sees it (thread-pool hop, device
      // lock, the work and its wait), to tell host time from the op profile's device time.
      const req = request('llama2-7b-shape', ALL, doc);
      const loaded = await session.loadModel(req.modelDir, undefined, undefined, req.dtype);  // the one the warm-up loaded
      const calls = traceCalls(loaded.native as unknown as Record<string, unknown>);
      console.log('== profiled run: all eight strategies, warm');
      out.allStrategies = await timed(session, manager, req);
      calls.restore();
      for (const [name, c] of [...calls.byName].sort((a, b) => b[1].ms - a[1].ms)) {
        console.log(`  native ${name.padEnd(14)} ×${String(c.n).padEnd(4)} ${c.ms.toFixed(1).padStart(8)} ms`);
      }
    } else if (mode === 'ladder') {
      const rungs = (process.env.LADDER ?? '4096,16384,32768,49152,122880').split(',').map(Number);
      const ladder = [];
      for (const tokens of rungs) {
        const doc = await documentOf(tokens);
        try {
          const r = await timed(session, manager, request('llama3-8b-shape', FOUR, doc));
          ladder.push({ model: 'llama3-8b-shape', ok: true, ...r, tokens: r.documentTokens });
          console.log(`ladder ${r.documentTokens} tokens: ${r.seconds.toFixed(2)} s, decode step ${r.decodeStepMs?.toFixed(2)} ms, peak ${(r.peakDeviceBytes / 2 ** 30).toFixed(1)} GiB`);
        } catch (e) {
          ladder.push({ model: 'llama3-8b-shape', tokens, ok: false, error: String((e as Error).message ?? e) });
          console.log(`ladder ${tokens} tokens: failed: ${(e as Error).message}`);
        }
      }
      out.longDocument = ladder;
    } else {
      throw new Error(`unknown mode ${mode}`);
    }
  } finally {
    manager.dispose();
    session.dispose();
  }
  fs.writeFileSync(outFile!, JSON.stringify(out, null, 1));
}

await main();
