// Native faults and cancels, survived: an out-of-memory error (or any failure) from the
// engine at prefill, store encoding, rebuilding, measuring or generation fails the run
// with a message, frees everything the run held, and leaves the engine usable for the
// next run; a synchronous throw from a native call (a failing N-API call) is the same,
// never a crash; a cancel during load, prefill and generation frees the memory.
//
// "Frees" is checked on the cache manager's stats (nothing pinned, nothing transient) and
// on the engine's objects themselves (engine-spy.ts): every cache and store still alive
// after the run is one the cache manager holds as an entry, and no model loaded by a
// cancelled load survives.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CacheManager } from '../../main/cache/cache-manager.js';
import { runComparison } from '../../main/compare/runner.js';
import { EngineSession } from '../../main/compare/session.js';
import { isCancellation } from '../../main/cancellation.js';
import { AppService } from '../../main/rpc/service.js';
import { dispatch } from '../../main/rpc/dispatch.js';
import type { CompareStage } from '../../shared/compare.js';
import type { RpcEventName, RpcEvents } from '../../shared/rpc.js';
import { tempDir, tinyRequest } from '../rpc/helpers.js';
import { EngineSpy, type FaultPoint } from './engine-spy.js';

const request = tinyRequest({ strategies: ['exact', 'base', 'seed-minikv', 'delta-int8'], maxNewTokens: 3 });

function assertFreed(cache: CacheManager, spy: EngineSpy, what: string): void {
  const u = cache.usage();
  assert.equal(u.pinnedBytes, 0, `${what}: nothing pinned`);
  assert.equal(u.transientBytes, 0, `${what}: no transient left`);
  const held = u.entries.filter((e) => e.kind !== 'adapter' && !e.retired).length;
  assert.equal(spy.liveCount('cache') + spy.liveCount('store'), held, `${what}: every live cache/store is a cache entry`);
  assert.equal(u.entries.filter((e) => e.retired).length, 0, `${what}: nothing waits for a release`);
}

describe('native faults and cancels', () => {
  let cache: CacheManager;
  let session: EngineSession;
  const spy = new EngineSpy();

  before(() => {
    cache = new CacheManager({ budgetBytes: 1 << 30 });
    session = new EngineSession('cpu', { cache });
    spy.attach(session);
  });
  after(() => {
    session.dispose();
    cache.dispose();
  });

  // The runner checks its inputs (preflight), closes its scope and releases the run's holds
  // itself; a cancelled run must reject with a cancellation, whichever native call was running.
  async function run(signal?: AbortSignal, onStage?: (stage: CompareStage) => void) {
    return runComparison(session, cache, request, { signal, onProgress: (p) => onStage?.(p.stage) });
  }

  it('a clean run first (the engine works and everything is accounted for)', async () => {
    const r = await run();
    assert.equal(r.adapters[0]!.strategies[0]!.generation.tokens.length, 3);
    assertFreed(cache, spy, 'after a clean run');
  });

  const faults: { at: FaultPoint; nth: number; how: 'reject' | 'throw'; message: string }[] = [
    { at: 'prefill', nth: 1, how: 'reject', message: 'out of memory: cannot allocate 4096 MiB (base prefill)' },
    { at: 'prefill', nth: 2, how: 'reject', message: 'CUDA error 2: out of memory (adapter prefill)' },
    { at: 'newCache', nth: 2, how: 'throw', message: 'std::bad_alloc (newCache)' },
    { at: 'encodeStore', nth: 2, how: 'throw', message: 'native failure in encodeStore' },
    { at: 'newView', nth: 1, how: 'throw', message: 'out of memory creating a view of the base cache' },
    { at: 'compareCaches', nth: 3, how: 'reject', message: 'native failure in compareCaches' },
    { at: 'prefillBatch', nth: 1, how: 'reject', message: 'out of memory feeding the prompts' },
    { at: 'decode', nth: 1, how: 'reject', message: 'out of memory during generation (first step)' },
    { at: 'decode', nth: 2, how: 'reject', message: 'out of memory during generation (second step)' },
    { at: 'score', nth: 1, how: 'reject', message: 'out of memory during scoring' },
  ];
  for (const f of faults) {
    it(`${f.how === 'throw' ? 'a synchronous throw' : 'a rejection'} from ${f.at} (#${f.nth}): the run fails saying why, frees what it held, and the next run works`, async () => {
      cache.clear(); // nothing cached: every stage runs again
      spy.inject(f);
      await assert.rejects(run(), (e: unknown) => e instanceof Error && e.message === f.message);
      assertFreed(cache, spy, `after ${f.at} failed`);
      spy.clearFault();
      const r = await run();
      assert.equal(r.adapters.length, 2);
      assert.equal(r.adapters[1]!.strategies.at(-1)!.generation.tokens.length, 3);
      assertFreed(cache, spy, `after the run that followed ${f.at}`);
    });
  }

  const stages: CompareStage[] = ['base-prefill', 'adapter-prefill', 'encode', 'measure', 'generate', 'score'];
  for (const stage of stages) {
    it(`cancel during ${stage} frees the memory (cache stats back to baseline) and the next run works`, async () => {
      cache.clear();
      const baseline = cache.usage();
      const controller = new AbortController();
      await assert.rejects(
        run(controller.signal, (s) => {
          if (s === stage) controller.abort();
        }),
        (e: unknown) => isCancellation(e),
      );
      assertFreed(cache, spy, `after a cancel during ${stage}`);
      assert.equal(cache.usage().transientBytes, baseline.transientBytes);
      const r = await run();
      assert.equal(r.adapters.length, 2);
      assertFreed(cache, spy, `after the run that followed a cancel during ${stage}`);
    });
  }

  for (const at of ['prefill', 'decode'] as const) {
    it(`cancel inside a native ${at} call frees the memory`, async () => {
      cache.clear();
      const controller = new AbortController();
      spy.onCall = (p) => {
        if (p === at) controller.abort();
      };
      try {
        await assert.rejects(run(controller.signal), (e: unknown) => isCancellation(e));
      } finally {
        spy.onCall = null;
      }
      assertFreed(cache, spy, `after a cancel inside ${at}`);
    });
  }

  it('cancel during the load: no model loaded by the cancelled load survives, and loading again works', async () => {
    const fresh = new EngineSession('cpu', { cache });
    const loadSpy = new EngineSpy();
    loadSpy.attach(fresh);
    try {
      const controller = new AbortController();
      loadSpy.onCall = (p) => {
        if (p === 'loadModel') controller.abort();
      };
      await assert.rejects(fresh.loadModel(request.modelDir, controller.signal), (e: unknown) => isCancellation(e));
      loadSpy.onCall = null;
      // The native load may finish after the cancel; what it produced is disposed then.
      for (let i = 0; i < 50 && loadSpy.liveCount('model') > 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(loadSpy.liveCount('model'), 0);
      const m = await fresh.loadModel(request.modelDir);
      assert.ok(m.native.bytes > 0);
      // Cancel while the adapter loads: the adapter is not kept and not counted.
      const c2 = new AbortController();
      loadSpy.onCall = (p) => {
        if (p === 'loadAdapter') c2.abort();
      };
      await assert.rejects(fresh.loadAdapter(m, request.adapters[0]!.dir, c2.signal), (e: unknown) => isCancellation(e));
      loadSpy.onCall = null;
      for (let i = 0; i < 50 && loadSpy.liveCount('adapter') > 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(loadSpy.liveCount('adapter'), 0);
      assert.equal(fresh.loadedAdapterCount(), 0);
    } finally {
      fresh.dispose();
    }
  });
});

describe('native faults through the service', () => {
  it('a native failure ends the run as run.failed with the reason; the service and the engine go on', async () => {
    const service = new AppService({ transport: 'websocket', historyDir: `${tempDir('faults')}/history`, cacheBudgetBytes: 1 << 30, throttleMs: 5 });
    const events: { event: RpcEventName; payload: unknown }[] = [];
    service.onEvent((event, payload) => events.push({ event, payload }));
    const ends = (): Promise<{ event: RpcEventName; payload: unknown }> =>
      new Promise((resolve) => {
        const off = service.onEvent((event, payload) => {
          if (event === 'run.finished' || event === 'run.failed' || event === 'run.cancelled') {
            off();
            resolve({ event, payload });
          }
        });
      });
    try {
      const session = await (service as unknown as { engine(): Promise<EngineSession> }).engine();
      const spy = new EngineSpy();
      spy.attach(session);
      for (const how of ['throw', 'reject'] as const) {
        spy.inject({ at: 'encodeStore', nth: 1, how, message: `injected native failure (${how})` });
        const end = ends();
        const started = await dispatch(service.handlers, 'run.start', { request });
        assert.ok(started.ok);
        const e = await end;
        assert.equal(e.event, 'run.failed');
        assert.equal((e.payload as RpcEvents['run.failed']).error.message, `injected native failure (${how})`);
        assert.equal(service.cache.usage().pinnedBytes, 0);
        assert.equal(service.cache.usage().transientBytes, 0);
      }
      const end = ends();
      assert.ok((await dispatch(service.handlers, 'run.start', { request })).ok);
      const e = await end;
      assert.equal(e.event, 'run.finished');
      assert.ok((e.payload as RpcEvents['run.finished']).reportId);
    } finally {
      await service.dispose();
    }
  });
});
