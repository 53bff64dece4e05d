// Long use (issue 13): many runs in one `serve` (over the WebSocket, as the browser UI
// runs them) on the tiny fixture model with a bounded cache budget, a new adapter folder
// every few runs and documents that rotate, so caches and adapters are evicted all along.
// After a warm-up, memory and cache stats must stay flat and nothing may leak: the heap
// after GC, the engine's live caches, stores and adapters (counted by the engine spy),
// the cache entries, the process's handles and the worker threads.
//
// CI runs ADAPTERLENS_SOAK_RUNS (default 40); the full 200-run soak is
// `ADAPTERLENS_SOAK_RUNS=200 node --import tsx --test tests/reliability/soak.test.ts`,
// which prints its figures (the README's reliability table quotes them).
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { EngineSession } from '../../main/compare/session.js';
import { AppService } from '../../main/rpc/service.js';
import { startServer } from '../../main/server/server.js';
import type { CacheUsage } from '../../shared/cache-stats.js';
import type { RpcEvents } from '../../shared/rpc.js';
import { ADAPTERS_DIR, TestRpcClient, tempDir, tinyRequest } from '../rpc/helpers.js';
import { EngineSpy } from './engine-spy.js';

const RUNS = Number(process.env.ADAPTERLENS_SOAK_RUNS ?? 40);
const NEW_ADAPTER_EVERY = 5;
const WARMUP = 10;
// Enough for one run (the estimate asks ~6.3 MiB), too little to keep every document: caches are evicted all along.
const BUDGET = 8 * 1024 * 1024;

v8.setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function settle(): void {
  for (let i = 0; i < 3; i++) gc();
}

interface Sample {
  run: number;
  rss: number;
  heap: number;
  caches: number;
  stores: number;
  adapters: number;
  entries: number;
  usedBytes: number;
  handles: number;
  evictions: number;
}

/** Handles and requests libuv holds for this process, by type (timers excluded: they come and go). */
function handleCount(): number {
  return process.getActiveResourcesInfo().filter((t) => t !== 'Timeout' && t !== 'Immediate').length;
}

describe(`soak: ${RUNS} runs in one server`, { timeout: 30 * 60_000 }, () => {
  const root = tempDir('soak');
  const rendererDir = path.join(root, 'renderer');
  fs.mkdirSync(rendererDir);
  fs.writeFileSync(path.join(rendererDir, 'index.html'), '<!doctype html>');
  const service = new AppService({ transport: 'websocket', historyDir: path.join(root, 'history'), cacheBudgetBytes: BUDGET, throttleMs: 20 });
  after(() => service.dispose());

  function adapterFor(run: number): string {
    const dir = path.join(root, `adapter-${Math.floor(run / NEW_ADAPTER_EVERY)}`);
    if (!fs.existsSync(dir)) {
      fs.mkdirSync(dir);
      for (const f of ['adapter_config.json', 'adapter_model.safetensors']) fs.copyFileSync(path.join(ADAPTERS_DIR, 'qv-r8', f), path.join(dir, f));
    }
    return dir;
  }

  it('memory, cache stats and handles stay flat; nothing the engine allocates leaks', async (t) => {
    const server = await startServer({ service, rendererDir, port: 0 });
    const spy = new EngineSpy();
    spy.attach(await (service as unknown as { engine(): Promise<EngineSession> }).engine());
    const client = await TestRpcClient.open(`ws://127.0.0.1:${server.port}/rpc?token=${server.token}`);
    const samples: Sample[] = [];
    const started = performance.now();
    try {
      for (let run = 0; run < RUNS; run++) {
        const request = tinyRequest({
          adapters: [{ dir: adapterFor(run) }, { dir: path.join(ADAPTERS_DIR, 'all-linear-rslora') }],
          // Fourteen documents of ~150 tokens in turn: their caches together exceed the budget.
          documentText: `${tinyRequest().documentText.repeat(6)} Run variant ${run % 14}.`,
          strategies: ['exact', 'base', 'seed-minikv', 'delta-int8'],
          maxNewTokens: 3,
        });
        const { runId } = await client.result<{ runId: string }>('run.start', { request });
        const end = await client.waitForEvent((e) => (e.event === 'run.finished' || e.event === 'run.failed') && (e.payload as { runId: string }).runId === runId, 120_000);
        assert.equal(end.event, 'run.finished', JSON.stringify(end.payload).slice(0, 300));
        assert.ok((end.payload as RpcEvents['run.finished']).reportId, 'saved');
        client.events.length = 0; // the recorder must not be what grows
        const usage = await client.result<CacheUsage>('cache.stats', {});
        assert.equal(usage.pinnedBytes, 0, `run ${run}: nothing pinned after the run`);
        assert.equal(usage.transientBytes, 0);
        assert.ok(usage.usedBytes <= BUDGET, `run ${run}: within the budget (${usage.usedBytes})`);
        const held = usage.entries.filter((e) => e.kind !== 'adapter').length;
        assert.equal(spy.liveCount('cache') + spy.liveCount('store'), held, `run ${run}: every live cache/store is a cache entry`);
        assert.equal(spy.liveCount('adapter'), usage.entries.filter((e) => e.kind === 'adapter').length, `run ${run}: every live adapter is a cache entry`);
        if (run === WARMUP - 1 || run === RUNS - 1 || run % 10 === 9) {
          settle();
          const mem = process.memoryUsage();
          samples.push({
            run: run + 1,
            rss: mem.rss,
            heap: mem.heapUsed,
            caches: spy.liveCount('cache'),
            stores: spy.liveCount('store'),
            adapters: spy.liveCount('adapter'),
            entries: usage.entries.length,
            usedBytes: usage.usedBytes,
            handles: handleCount(),
            evictions: usage.evictions,
          });
        }
      }
    } finally {
      await client.close();
      await server.close();
    }
    const seconds = (performance.now() - started) / 1000;
    const first = samples.find((s) => s.run === WARMUP) ?? samples[0]!;
    const last = samples.at(-1)!;
    const mib = (b: number): string => (b / 2 ** 20).toFixed(1);
    t.diagnostic(`${RUNS} runs in ${seconds.toFixed(1)} s; ${Math.ceil(RUNS / NEW_ADAPTER_EVERY)} adapter folders; budget ${mib(BUDGET)} MiB`);
    for (const s of samples) {
      t.diagnostic(`after run ${s.run}: rss ${mib(s.rss)} MiB, heap ${mib(s.heap)} MiB, live caches ${s.caches}, stores ${s.stores}, adapters ${s.adapters}, cache entries ${s.entries} (${mib(s.usedBytes)} MiB), evictions so far ${s.evictions}, handles ${s.handles}`);
    }
    t.diagnostic(`drift from run ${first.run} to ${last.run}: rss ${mib(last.rss - first.rss)} MiB, heap ${mib(last.heap - first.heap)} MiB`);
    if (RUNS > WARMUP) {
      assert.ok(last.heap - first.heap < 16 * 2 ** 20, `the heap after GC stays flat (${mib(first.heap)} → ${mib(last.heap)} MiB)`);
      assert.ok(last.rss - first.rss < 96 * 2 ** 20, `RSS stays flat (${mib(first.rss)} → ${mib(last.rss)} MiB)`);
      assert.ok(last.handles <= first.handles + 2, `no handle leak (${first.handles} → ${last.handles})`);
      assert.ok(last.adapters <= 16, `adapters bounded (${last.adapters})`);
      assert.ok(last.evictions > first.evictions, 'the budget evicted caches along the way (the soak exercised eviction)');
    }
  });
});
