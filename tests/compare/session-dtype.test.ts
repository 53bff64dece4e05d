// The compute dtype from a CompareRequest down to the engine: the session passes it to
// the native loadModel and reloads when it changes; the CPU engine refuses bf16/fp16
// (in the runner before anything loads, and natively when the session is asked directly);
// the runner counts 2 bytes per K/V value for bf16. CUDA itself is not needed: a spy
// around the CPU addon's loadModel records what the session asked for.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { CacheManager } from '../../main/cache/cache-manager.js';
import { kvCacheBytes } from '../../main/cache/memory-estimate.js';
import { CompareInputError, runComparison } from '../../main/compare/runner.js';
import { EngineSession } from '../../main/compare/session.js';
import type { LoadedAddon } from '../../main/engine/native-loader.js';
import type { NativeAddon, NativeModelConfig } from '../../main/engine/native-types.js';
import type { CompareRequest } from '../../shared/compare.js';
import { DEFAULT_SETTINGS } from '../../shared/compare.js';
import { adapterDir, modelDir, readManifest } from '../parity/hf-fixtures.js';

const manifest = readManifest();
const MODEL = 'llama-gqa-bf16';
const dir = modelDir(manifest, MODEL);
const request: CompareRequest = {
  ...DEFAULT_SETTINGS,
  modelDir: dir,
  adapters: [{ dir: adapterDir(manifest, MODEL, 'qv-r8') }],
  documentText: manifest.documentText,
  promptText: manifest.promptText,
  strategies: ['exact', 'base'],
  maxNewTokens: 2,
};

/**
 * A CPU session whose addon records every loadModel config and loads it in fp32 (the
 * only dtype the CPU engine computes in), posing as `backend`.
 */
function spySession(backend: 'cpu' | 'cuda'): { session: EngineSession; dtypes: (string | undefined)[] } {
  const session = new EngineSession('cpu');
  const real = session.engine.addon;
  const dtypes: (string | undefined)[] = [];
  const addon = Object.create(real) as NativeAddon;
  addon.loadModel = ((config: NativeModelConfig, ...rest: unknown[]) => {
    dtypes.push(config.dtype);
    return (real.loadModel as (...a: unknown[]) => unknown).call(real, { ...config, dtype: 'fp32' }, ...rest);
  }) as NativeAddon['loadModel'];
  const engine: LoadedAddon = { ...session.engine, addon, backend };
  Object.defineProperty(session, 'engine', { value: engine });
  return { session, dtypes };
}

describe('compute dtype', () => {
  const sessions: EngineSession[] = [];
  after(() => sessions.forEach((s) => s.dispose()));

  it('the CPU engine refuses bf16 and fp16 natively when the session asks for them', async () => {
    const session = new EngineSession('cpu');
    sessions.push(session);
    for (const dtype of ['bf16', 'fp16'] as const) {
      await assert.rejects(session.loadModel(dir, undefined, undefined, dtype), /CPU engine computes in fp32 only/);
    }
    const m = await session.loadModel(dir);
    assert.equal(m.dtype, 'fp32');
  });

  it('the runner refuses bf16 on the CPU engine with a clear message before loading', async () => {
    const { session, dtypes } = spySession('cpu');
    sessions.push(session);
    const manager = new CacheManager({ budgetBytes: 1 << 30 });
    try {
      await assert.rejects(runComparison(session, manager, { ...request, dtype: 'bf16' }), (e: unknown) => {
        assert.ok(e instanceof CompareInputError);
        assert.match(e.message, /computes in fp32 only; bf16 needs the CUDA build \(use --dtype fp32\)/);
        return true;
      });
      assert.deepEqual(dtypes, [], 'nothing was loaded');
    } finally {
      manager.dispose();
    }
  });

  it('the session passes the dtype to the engine and reloads only when it changes', async () => {
    const { session, dtypes } = spySession('cuda');
    sessions.push(session);
    const a = await session.loadModel(dir);
    const a2 = await session.loadModel(dir, undefined, undefined, 'fp32');
    assert.equal(a2, a, 'same dir and dtype: no reload');
    const b = await session.loadModel(dir, undefined, undefined, 'bf16');
    assert.notEqual(b, a);
    assert.equal(b.dtype, 'bf16');
    assert.equal(await session.loadModel(dir, undefined, undefined, 'bf16'), b);
    const c = await session.loadModel(dir, undefined, undefined, 'fp16');
    assert.equal(c.dtype, 'fp16');
    assert.deepEqual(dtypes, ['fp32', 'bf16', 'fp16']);
  });

  it('on the CUDA build, bf16 weights take half the bytes and a bf16 run reports the CUDA backend', { skip: process.env.ADAPTERLENS_TEST_DEVICE !== 'cuda' && 'needs ADAPTERLENS_TEST_DEVICE=cuda' }, async () => {
    const session = new EngineSession('cuda');
    sessions.push(session);
    assert.equal(session.engine.backend, 'cuda');
    const fp32Bytes = (await session.loadModel(dir)).native.bytes;
    const bf16Bytes = (await session.loadModel(dir, undefined, undefined, 'bf16')).native.bytes;
    assert.ok(Math.abs(bf16Bytes * 2 - fp32Bytes) <= fp32Bytes * 0.01, `bf16 ${bf16Bytes} bytes vs fp32 ${fp32Bytes}`);
    const manager = new CacheManager({ budgetBytes: 1 << 30 });
    try {
      const r = await runComparison(session, manager, { ...request, dtype: 'bf16', device: 'cuda' });
      assert.equal(r.backend.kind, 'cuda');
      assert.equal(r.settings.dtype, 'bf16');
      assert.equal(r.adapters[0]!.strategies[0]!.generation.tokens.length, request.maxNewTokens);
    } finally {
      manager.dispose();
    }
  });

  it('a bf16 run (CUDA backend) loads the model in bf16 and counts 2 bytes per cached value', async () => {
    const { session, dtypes } = spySession('cuda');
    sessions.push(session);
    const manager = new CacheManager({ budgetBytes: 1 << 30 });
    try {
      const r32 = await runComparison(session, manager, request);
      const r16 = await runComparison(session, manager, { ...request, dtype: 'bf16' });
      assert.deepEqual(dtypes, ['fp32', 'bf16']);
      assert.equal(r16.settings.dtype, 'bf16');
      const cfg = r16.model;
      const T = r16.documentTokens.length;
      const shape = { ...cfg, intermediateSize: 0 };
      assert.equal(r32.memory.baseCacheBytes, kvCacheBytes(shape, T, 4));
      assert.equal(r16.memory.baseCacheBytes, kvCacheBytes(shape, T, 2));
      const exactBytes = (r: typeof r16) => r.adapters[0]!.strategies.find((s) => s.strategy === 'exact')!.bytes;
      assert.equal(exactBytes(r16) * 2, exactBytes(r32));
      // The bf16 run did not reuse the fp32 run's caches (their keys carry the dtype).
      assert.equal(manager.usage().misses, 2 * (1 + 1 + 1));
    } finally {
      manager.dispose();
    }
  });
});
