// Loaded adapters are bounded (issue 13, row 6): they live in the cache manager as
// entries of kind 'adapter', so their bytes count in the budget the UI shows; beyond
// maxLoadedAdapters (and under budget pressure) the least recently used are freed; the
// adapters of a running comparison stay loaded; cache.clear frees the others.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { CacheManager } from '../../main/cache/cache-manager.js';
import { EngineSession, type LoadedModel } from '../../main/compare/session.js';
import { dispatch } from '../../main/rpc/dispatch.js';
import { AppService } from '../../main/rpc/service.js';
import type { CacheUsage } from '../../shared/cache-stats.js';
import { ADAPTERS_DIR, MODEL_DIR, tempDir, tinyRequest } from '../rpc/helpers.js';
import { EngineSpy } from './engine-spy.js';

const root = tempDir('adapter-lru');
/** A new adapter folder (a copy of qv-r8 under a new name): a new adapter to the session. */
function newAdapter(i: number): string {
  const dir = path.join(root, `adapter-${i}`);
  if (!fs.existsSync(dir)) {
    fs.mkdirSync(dir);
    for (const f of ['adapter_config.json', 'adapter_model.safetensors']) fs.copyFileSync(path.join(ADAPTERS_DIR, 'qv-r8', f), path.join(dir, f));
  }
  return dir;
}

const adapterEntries = (u: CacheUsage) => u.entries.filter((e) => e.kind === 'adapter');

describe('loaded adapters: bounded, counted, freed', { timeout: 300_000 }, () => {
  let cache: CacheManager;
  let session: EngineSession;
  let model: LoadedModel;
  const spy = new EngineSpy();

  before(async () => {
    cache = new CacheManager({ budgetBytes: 1 << 30 });
    session = new EngineSession('cpu', { cache, maxLoadedAdapters: 3 });
    spy.attach(session);
    model = await session.loadModel(MODEL_DIR);
  });
  after(() => {
    session.dispose();
    cache.dispose();
  });

  it('a new adapter each run: at most maxLoadedAdapters stay loaded, each counted in the budget; the evicted ones are freed', async () => {
    for (let i = 0; i < 8; i++) {
      const a = await session.loadAdapter(model, newAdapter(i));
      assert.ok(a.native.bytes > 0);
      session.releaseRunHolds(); // the run that used it ended
      const entries = adapterEntries(cache.usage());
      assert.ok(entries.length <= 3, `after ${i + 1} adapters: ${entries.length} loaded`);
      assert.ok(entries.every((e) => e.bytes === a.native.bytes && !e.pinned));
      assert.equal(spy.liveCount('adapter'), entries.length, 'the engine holds exactly the adapters the cache lists');
      assert.equal(session.loadedAdapterCount(), entries.length);
    }
    const u = cache.usage();
    assert.equal(u.usedBytes, adapterEntries(u).reduce((s, e) => s + e.bytes, 0), 'adapter bytes are in usedBytes');
  });

  it('reusing a loaded adapter loads nothing and makes it the most recently used', async () => {
    const loads = spy.calls.get('loadAdapter') ?? 0;
    const again = await session.loadAdapter(model, newAdapter(7));
    session.releaseRunHolds();
    assert.equal(spy.calls.get('loadAdapter') ?? 0, loads, 'no native load');
    assert.ok(again.native.bytes > 0);
    await session.loadAdapter(model, newAdapter(20));
    session.releaseRunHolds();
    const labels = adapterEntries(cache.usage()).map((e) => e.label);
    assert.ok(labels.includes('adapter adapter-7'), `the reused one survived the next load (${labels.join(', ')})`);
  });

  it('the adapters of a running comparison stay loaded beyond the bound and under budget pressure', async () => {
    const bytes = adapterEntries(cache.usage())[0]!.bytes;
    cache.setBudget(Math.floor(bytes * 1.5)); // room for one adapter
    const held = [];
    for (let i = 30; i < 35; i++) held.push(await session.loadAdapter(model, newAdapter(i)));
    // One run holds five adapters: none is freed while it runs.
    assert.equal(spy.liveCount('adapter'), adapterEntries(cache.usage()).length);
    assert.ok(adapterEntries(cache.usage()).filter((e) => e.pinned).length === 5);
    for (const a of held) assert.ok(a.native.bytes > 0, 'still usable');
    session.releaseRunHolds();
    assert.ok(adapterEntries(cache.usage()).length <= 1, 'released: the budget evicts down to what fits');
    assert.equal(spy.liveCount('adapter'), adapterEntries(cache.usage()).length);
    cache.setBudget(1 << 30);
  });

  it('cache.clear frees every adapter no run holds', async () => {
    await session.loadAdapter(model, newAdapter(40));
    session.releaseRunHolds();
    assert.ok(spy.liveCount('adapter') > 0);
    cache.clear();
    assert.equal(adapterEntries(cache.usage()).length, 0);
    assert.equal(spy.liveCount('adapter'), 0);
    assert.equal(session.loadedAdapterCount(), 0);
    // And loading again works.
    const a = await session.loadAdapter(model, newAdapter(40));
    assert.ok(a.native.bytes > 0);
    session.releaseRunHolds();
  });
});

describe('adapters through the service', { timeout: 300_000 }, () => {
  const service = new AppService({ transport: 'websocket', historyDir: path.join(root, 'history'), cacheBudgetBytes: 1 << 30, throttleMs: 5 });
  after(() => service.dispose());

  it('runs with a new adapter each time: cache.stats shows the adapters; cache.clear releases them', async () => {
    for (let i = 0; i < 20; i++) {
      const done = new Promise<string>((resolve) => {
        const off = service.onEvent((event) => {
          if (event === 'run.finished' || event === 'run.failed' || event === 'run.cancelled') {
            off();
            resolve(event);
          }
        });
      });
      const started = await dispatch(service.handlers, 'run.start', { request: tinyRequest({ adapters: [{ dir: newAdapter(100 + i) }], strategies: ['exact', 'base'], maxNewTokens: 1 }) });
      assert.ok(started.ok, started.ok ? '' : started.error.message);
      assert.equal(await done, 'run.finished');
    }
    const stats = await dispatch(service.handlers, 'cache.stats', {});
    assert.ok(stats.ok);
    const adapters = adapterEntries(stats.result as CacheUsage);
    assert.ok(adapters.length > 0 && adapters.length <= 16, `${adapters.length} adapters loaded after 20 runs: ${JSON.stringify((stats.result as CacheUsage).entries.map((e) => [e.kind, e.label]))}`);
    assert.ok(adapters.every((e) => !e.pinned && e.bytes > 0));
    const cleared = await dispatch(service.handlers, 'cache.clear', {});
    assert.ok(cleared.ok);
    assert.equal(adapterEntries(cleared.result as CacheUsage).length, 0);
  });
});
