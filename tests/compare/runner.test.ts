// The runner with the cache manager, in process: reuse across runs, cancel frees what the
// run held, and the metrics' arithmetic.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { CacheManager } from '../../main/cache/cache-manager.js';
import { runComparison } from '../../main/compare/runner.js';
import { EngineSession } from '../../main/compare/session.js';
import { firstDivergence, teacherForcedScores, tokenGrid } from '../../main/compare/metrics.js';
import { isCancelled } from '../../main/engine/cancel.js';
import type { CompareProgress, CompareRequest } from '../../shared/compare.js';
import { DEFAULT_SETTINGS } from '../../shared/compare.js';
import { adapterDir, modelDir, readManifest } from '../parity/hf-fixtures.js';
import { DigestCache } from '../../main/model/digest-cache.js';
import { holdTasks, watchTasks } from '../unit/worker-spy.js';
import { isCancellation } from '../../main/cancellation.js';
import { loadTokenizer } from '../../main/model/tokenizer.js';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import type { NativeAddon } from '../../main/engine/native-types.js';
import type { LoadedAddon } from '../../main/engine/native-loader.js';

const manifest = readManifest();
const MODEL = 'llama-gqa-bf16';
const request: CompareRequest = {
  ...DEFAULT_SETTINGS,
  modelDir: modelDir(manifest, MODEL),
  adapters: [{ dir: adapterDir(manifest, MODEL, 'qv-r8') }, { dir: adapterDir(manifest, MODEL, 'patterns') }],
  documentText: manifest.documentText,
  promptText: manifest.promptText,
  strategies: ['exact', 'base', 'seed-minikv', 'delta-int8'],
  maxNewTokens: 6,
};

describe('runner + cache manager', () => {
  const session = new EngineSession('cpu');
  const manager = new CacheManager({ budgetBytes: 1 << 30 });
  after(() => {
    manager.dispose();
    session.dispose();
  });

  it('a second run on the same document reuses the base cache, exact caches and stores', async () => {
    const stages1: CompareProgress[] = [];
    const r1 = await runComparison(session, manager, request, { onProgress: (p) => stages1.push(p) });
    const before = manager.usage();
    assert.equal(before.misses, 1 + 2 + 2 * 3, 'base + 2 exact + 2×3 stores created');
    assert.equal(before.pinnedBytes, 0, 'nothing pinned after the run');
    const stages2: CompareProgress[] = [];
    const r2 = await runComparison(session, manager, request, { onProgress: (p) => stages2.push(p) });
    const afterRun = manager.usage();
    assert.equal(afterRun.misses, before.misses, 'no new creation on the second run');
    assert.equal(afterRun.hits - before.hits, 1 + 2 + 2 * 3);
    // The engine reported prefill progress only the first time.
    const prefillTicks = (ps: CompareProgress[]): number => ps.filter((p) => p.stage === 'base-prefill' && p.done > 0 && p.done < p.total).length;
    assert.ok(prefillTicks(stages1) > 0 || stages1.some((p) => p.stage === 'base-prefill'));
    assert.equal(prefillTicks(stages2), 0);
    assert.deepEqual(r2.adapters.map((a) => a.strategies.map((s) => s.generation.tokens)), r1.adapters.map((a) => a.strategies.map((s) => s.generation.tokens)));
  });

  it("exact's errors are zero in every grid, shaped like the measured cells' (not read from the caches again)", async () => {
    const r = await runComparison(session, manager, request);
    for (const a of r.adapters) {
      const exact = a.strategies.find((s) => s.strategy === 'exact')!;
      const base = a.strategies.find((s) => s.strategy === 'base')!;
      assert.ok(base.layers.some((l) => l.kRelErr > 0), 'the base cell is measured for real');
      assert.deepEqual(exact.layers.map((l) => [l.layer, l.kRelErr, l.vRelErr]), base.layers.map((l) => [l.layer, 0, 0]));
      for (const grid of [exact.heads, exact.tokens]) {
        for (const rows of [grid.k, grid.v]) assert.ok(rows.flat().every((x) => x === 0));
      }
      assert.deepEqual([exact.heads.k.length, exact.heads.k[0]!.length], [base.heads.k.length, base.heads.k[0]!.length]);
      assert.deepEqual([exact.tokens.k.length, exact.tokens.k[0]!.length], [base.tokens.k.length, base.tokens.k[0]!.length]);
    }
    // Only exact asked for: its one cell is measured by the engine (exact against itself).
    const alone = await runComparison(session, manager, { ...request, strategies: ['exact'] });
    for (const a of alone.adapters) assert.ok(a.strategies[0]!.layers.every((l) => l.kRelErr === 0 && l.vRelErr === 0));
  });

  it("the report's pieces are the live stream's, with or without a listener", async () => {
    const tokenizer = await loadTokenizer(request.modelDir); // the reference: the tokenizer itself, here on the test's thread
    const live = new Map<string, string[]>();
    const heard = await runComparison(session, manager, request, {
      onToken: (t) => {
        const key = `${t.adapter}/${t.strategy}`;
        live.set(key, [...(live.get(key) ?? []), t.piece]);
      },
    });
    const silent = await runComparison(session, manager, request);
    for (const [r, withListener] of [[heard, true], [silent, false]] as const) {
      r.adapters.forEach((a, ai) => {
        for (const s of a.strategies) {
          const g = s.generation;
          assert.equal(g.pieces.length, g.tokens.length);
          assert.deepEqual(g.pieces, tokenizer.decodeTokenPieces(g.tokens), `${a.name}/${s.strategy}`);
          if (withListener) assert.deepEqual(g.pieces, live.get(`${ai}/${s.strategy}`), 'the live pieces (no character left pending here)');
        }
      });
    }
  });

  it('a run uses no tokenizer on the main thread: loading, encoding, live pieces and texts are the workers\'', async () => {
    // Any tokenizer built or used on this thread goes through these methods (loadTokenizer
    // itself looks up the special tokens and lists the vocabulary); the workers' are other copies of the class.
    const proto = HfTokenizer.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
    const methods = ['encode', 'decode', 'token_to_id', 'id_to_token', 'get_vocab'] as const;
    const originals = methods.map((m) => proto[m]!);
    const calls: string[] = [];
    methods.forEach((m, i) => {
      proto[m] = function (this: unknown, ...a: unknown[]) {
        calls.push(m);
        return originals[i]!.apply(this, a);
      };
    });
    try {
      // A tokenizer folder this session has not loaded: its first load is in this run.
      const fresh = new EngineSession('cpu', { digestCache: new DigestCache(null) });
      try {
        const r = await runComparison(fresh, manager, request, { onToken: () => undefined });
        assert.ok(r.adapters.every((a) => a.strategies.every((st) => st.generation.pieces.length === st.generation.tokens.length)));
      } finally {
        fresh.dispose();
      }
    } finally {
      methods.forEach((m, i) => (proto[m] = originals[i]!));
    }
    assert.deepEqual(calls, [], 'no tokenizer call on the main thread');
  });

  it('a cancelled run rejects with CANCELLED and leaves nothing pinned or transient', async () => {
    const fresh = new CacheManager({ budgetBytes: 1 << 30 });
    const controller = new AbortController();
    try {
      await assert.rejects(
        runComparison(session, fresh, { ...request, maxNewTokens: 40 }, {
          signal: controller.signal,
          onToken: (t) => {
            if (t.step === 2) controller.abort();
          },
        }),
        (e: unknown) => isCancelled(e),
      );
      const u = fresh.usage();
      assert.equal(u.pinnedBytes, 0);
      assert.equal(u.transientBytes, 0);
      assert.ok(u.usedBytes > 0, 'the finished prefills stay cached for the next run');
    } finally {
      fresh.dispose();
    }
  });
  it('a live decode that fails ends the generation at its next step, with that error', async () => {
    const gate = holdTasks('decode', new Error('the decoder broke'));
    gate.open();
    let generated = 0;
    let total = 0;
    try {
      await assert.rejects(
        runComparison(session, manager, { ...request, maxNewTokens: 16 }, {
          onProgress: (p) => {
            if (p.stage === 'generate') [generated, total] = [p.done, p.total];
          },
        }),
        /the decoder broke/,
      );
      assert.ok(total > 0 && generated < total / 2, `generation stopped early: ${generated} of ${total} tokens`);
    } finally {
      gate.restore();
    }
  });
});

describe('a first run hashes from its start', () => {
  it("the model's and adapters' hashing is under way before the weights are asked for (not started by the load)", async () => {
    const session = new EngineSession('cpu', { digestCache: new DigestCache(null) });
    const manager = new CacheManager({ budgetBytes: 1 << 30 });
    const hashJobs = watchTasks<{ file: string }>('hash-file');
    const hashed = hashJobs.inputs;
    const real = session.engine.addon;
    const addon = Object.create(real) as NativeAddon;
    let hashJobsAtLoad = -1;
    addon.loadModel = ((...a: Parameters<NativeAddon['loadModel']>) => {
      hashJobsAtLoad = hashed.length;
      return real.loadModel(...a);
    }) as NativeAddon['loadModel'];
    Object.defineProperty(session, 'engine', { value: { ...session.engine, addon } satisfies LoadedAddon });
    try {
      const r = await runComparison(session, manager, { ...request, strategies: ['exact'], maxNewTokens: 1 });
      assert.ok(hashJobsAtLoad > 0, `hash jobs running when the weights were asked for: ${hashJobsAtLoad}`);
      const files = hashed.map((h) => h.file);
      const adapterFiles = files.filter((f) => request.adapters.some((a) => f.startsWith(a.dir)));
      assert.ok(adapterFiles.length >= request.adapters.length, 'the adapters are hashed too');
      assert.equal(new Set(files).size, files.length, 'no file hashed twice');
      assert.ok(Object.keys(r.model.sha256).length > 0);
    } finally {
      hashJobs.restore();
      manager.dispose();
      session.dispose();
    }
  });

  it('a run that fails before its loads releases its folders: disposing the session stops the hashing it began', async () => {
    const gate = holdTasks('hash-file');
    const session = new EngineSession('cpu', { digestCache: new DigestCache(null) });
    const manager = new CacheManager({ budgetBytes: 1 << 30 });
    try {
      // Far more new tokens than the context holds: refused by the preflight, after the prefetch began.
      await assert.rejects(runComparison(session, manager, { ...request, maxNewTokens: 10_000_000 }), /positions/);
      assert.ok(gate.jobs() > 0, 'the folders were being hashed');
      const job = session.digests.start(request.modelDir);
      session.dispose();
      gate.open();
      await assert.rejects(job.promise, (e: unknown) => isCancellation(e), 'stopped by the dispose, not left running');
    } finally {
      gate.restore();
      manager.dispose();
    }
  });
});

describe('metrics', () => {
  it('teacher-forced KL, top-1 and perplexity ratio by hand', () => {
    const vocab = 2;
    const exact = Float32Array.from([0, Math.log(3), Math.log(3), 0]); // p = [.25,.75], [.75,.25]
    const strat = Float32Array.from([Math.log(3), 0, Math.log(3), 0]); // q = [.75,.25], [.75,.25]
    const s = teacherForcedScores(exact, strat, [1, 0], vocab);
    assert.ok(Math.abs(s.kl[0]! - 0.5 * Math.log(3)) < 1e-6);
    assert.ok(Math.abs(s.kl[1]!) < 1e-6);
    assert.deepEqual(s.top1, [0, 1]);
    assert.equal(s.top1Agreement, 0.5);
    assert.ok(Math.abs(s.perplexityRatio - Math.sqrt(3)) < 1e-6);
  });

  it('token grid bins sums, not ratios', () => {
    const sums = {
      numLayers: 1, numKvHeads: 1, tokens: 3, tokenBin: 1,
      kDiffByHead: new Float64Array(1), kNormByHead: new Float64Array(1), vDiffByHead: new Float64Array(1), vNormByHead: new Float64Array(1),
      kDiffByToken: Float64Array.from([1, 0, 4]), kNormByToken: Float64Array.from([1, 3, 4]),
      vDiffByToken: Float64Array.from([0, 0, 0]), vNormByToken: Float64Array.from([1, 1, 1]),
    };
    const g = tokenGrid(sums, 2);
    assert.equal(g.binSize, 2);
    assert.ok(Math.abs(g.k[0]![0]! - Math.sqrt(1 / 4)) < 1e-12);
    assert.ok(Math.abs(g.k[0]![1]! - 1) < 1e-12);
  });

  it('first divergence', () => {
    assert.equal(firstDivergence([1, 2, 3], [1, 2, 3]), null);
    assert.equal(firstDivergence([1, 5, 3], [1, 2, 3]), 1);
    assert.equal(firstDivergence([1, 2], [1, 2, 3]), 2);
  });
});
