import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import type { CompareRequest } from '../../shared/compare.js';
import { RpcError, type AdapterInfo, type ModelInfo } from '../../shared/rpc.js';
import { setRpc } from '../src/rpc/instance.js';
import { useCache } from '../src/store/cache.js';
import { useHistory, exportedBlobParts } from '../src/store/history.js';
import { useResults } from '../src/store/results.js';
import { attachRunEvents, useRun } from '../src/store/run.js';
import { useSetup } from '../src/store/setup.js';
import { FakeClient } from './fake-client.js';
import { makeReport } from './fixtures.js';

const request: CompareRequest = {
  modelDir: '/m',
  adapters: [{ dir: '/a/qv', name: 'qv' }, { dir: '/a/all' }],
  documentText: 'doc',
  promptText: '',
  strategies: ['exact', 'base'],
  maxNewTokens: 4,
  temperature: 0,
  topP: 1,
  seed: 0,
  dtype: 'fp32',
  device: 'auto',
  stopAtEos: true,
};

function tick(): Promise<void> {
  return new Promise((r) => setTimeout(r, 0));
}

describe('run store', () => {
  let client: FakeClient;
  let detach: () => void;
  let finished: (string | null)[];
  beforeEach(() => {
    detach?.();
    client = new FakeClient().handle('run.start', () => ({ runId: 'r1' })).handle('run.cancel', () => ({ cancelled: true }));
    setRpc(client);
    finished = [];
    detach = attachRunEvents(client, (p) => finished.push(p.reportId));
    useRun.setState({ status: 'idle', runId: null });
    useRun.getState().dismiss();
  });

  it('starts, follows progress and tokens of its own run only, and finishes', async () => {
    assert.equal(await useRun.getState().start(request), true);
    assert.equal(useRun.getState().status, 'running');
    assert.deepEqual(useRun.getState().adapterNames, ['qv', 'all']);
    client.emit('run.progress', { runId: 'r1', progress: { stage: 'generate', done: 1, total: 8 } });
    client.emit('run.progress', { runId: 'other', progress: { stage: 'score', done: 1, total: 8 } });
    client.emit('run.tokens', { runId: 'r1', tokens: [{ adapter: 0, strategy: 'exact', step: 0, token: 5, piece: 'x', prob: 0.9 }] });
    assert.equal(useRun.getState().current, 'generate');
    assert.equal(useRun.getState().streams['0|exact']?.length, 1);
    client.emit('run.finished', { runId: 'r1', reportId: 'id1', report: makeReport(), saveError: null });
    assert.equal(useRun.getState().status, 'finished');
    assert.equal(useRun.getState().reportId, 'id1');
    assert.deepEqual(finished, ['id1']);
    assert.equal(await useRun.getState().start(request), true, 'a finished run does not block the next');
  });

  it('keeps events that arrive before run.start answers', async () => {
    let answer!: (v: { runId: string }) => void;
    client.handle('run.start', () => new Promise((r) => (answer = r)));
    const started = useRun.getState().start(request);
    await tick();
    client.emit('run.progress', { runId: 'r2', progress: { stage: 'load', done: 0, total: 3 } });
    answer({ runId: 'r2' });
    await started;
    assert.equal(useRun.getState().seen.load?.total, 3);
  });

  it('refuses a second start while running, cancels, and reports failures in words', async () => {
    await useRun.getState().start(request);
    assert.equal(await useRun.getState().start(request), false);
    await useRun.getState().cancel();
    assert.equal(useRun.getState().status, 'cancelling');
    assert.deepEqual(client.calls.at(-1), { method: 'run.cancel', params: { runId: 'r1' } });
    client.emit('run.cancelled', { runId: 'r1' });
    assert.equal(useRun.getState().status, 'cancelled');

    client.handle('run.start', () => {
      throw new RpcError({ code: 'BUSY', message: 'A run is already in progress.' });
    });
    assert.equal(await useRun.getState().start(request), false);
    assert.equal(useRun.getState().status, 'failed');
    assert.equal(useRun.getState().error, 'A run is already in progress.');
  });

  it('picks up a run in progress after a reconnect', async () => {
    client.handle('run.active', () => ({ runId: 'r9', request, progress: { stage: 'encode', done: 1, total: 4 } }));
    await useRun.getState().resume();
    assert.equal(useRun.getState().status, 'running');
    assert.equal(useRun.getState().runId, 'r9');
    assert.equal(useRun.getState().current, 'encode');
  });
});

describe('setup store', () => {
  const model = { dir: '/m', name: 'tiny', numLayers: 2, maxPositionEmbeddings: 64, hasTokenizer: true, warnings: [] } as unknown as ModelInfo;
  const adapter = (dir: string): AdapterInfo => ({ dir, name: dir, rank: 4, alpha: 8, useRslora: false, targetModules: ['v_proj'], layers: [0, 1], maxRank: 4, bytes: 10, parameterCount: 5, dtype: 'F32', baseModelNameOrPath: null, warnings: [] });

  it('loads the demo: model inspected, adapters checked against it, document counted', async () => {
    const client = new FakeClient()
      .handle('model.inspect', () => model)
      .handle('adapter.inspect', ({ dir }) => {
        if (dir === '/bad') throw new RpcError({ code: 'INVALID_INPUT', message: 'adapter for another model' });
        return adapter(dir);
      })
      .handle('text.count', ({ documentText }) => ({ documentTokens: documentText.length, promptTokens: 1, contextLimit: 64, complete: true }));
    setRpc(client);
    await useSetup.getState().loadDemo({ modelDir: '/m', adapterDirs: ['/a1', '/bad'], documentText: 'abcdef', promptText: ' p', strategies: ['exact', 'base', 'lowrank:4'], maxNewTokens: 16 });
    const s = useSetup.getState();
    assert.equal(s.model?.name, 'tiny');
    assert.deepEqual(s.adapters.map((a) => [a.name, a.info?.rank ?? null, a.error]), [['a1', 4, null], ['bad', null, 'adapter for another model']]);
    assert.equal(s.tokenCount?.documentTokens, 6);
    assert.equal(s.settings.maxNewTokens, 16);
    assert.deepEqual(s.strategies.lowrank, { on: true, ranks: '4' });
    assert.ok(client.calls.filter((c) => c.method === 'adapter.inspect').every((c) => (c.params as { modelDir: string }).modelDir === '/m'));

    useSetup.getState().removeAdapter(s.adapters[1]!.id);
    await useSetup.getState().addAdapters(['/a1', '/a2', ' ']);
    assert.deepEqual(useSetup.getState().adapters.map((a) => a.dir), ['/a1', '/a2'], 'no duplicates, no blanks');
  });

  it('ignores a stale model answer when the folder changed meanwhile', async () => {
    let slow!: (m: ModelInfo) => void;
    const client = new FakeClient()
      .handle('model.inspect', ({ dir }) => (dir === '/slow' ? new Promise<ModelInfo>((r) => (slow = r)) : { ...model, dir, name: 'fast' }))
      .handle('adapter.inspect', ({ dir }) => adapter(dir))
      .handle('text.count', () => ({ documentTokens: 1, promptTokens: 0, contextLimit: 64, complete: true }));
    setRpc(client);
    const first = useSetup.getState().setModelDir('/slow');
    await tick();
    await useSetup.getState().setModelDir('/fast');
    slow({ ...model, name: 'slow' });
    await first;
    assert.equal(useSetup.getState().model?.name, 'fast');
    assert.equal(useSetup.getState().modelDir, '/fast');
  });

  it('says why a model folder cannot be used', async () => {
    setRpc(new FakeClient().handle('model.inspect', () => {
      throw new RpcError({ code: 'INVALID_INPUT', message: '/nope has no config.json' });
    }));
    useSetup.setState({ adapters: [] });
    await useSetup.getState().setModelDir('/nope');
    assert.equal(useSetup.getState().modelError, '/nope has no config.json');
    assert.equal(useSetup.getState().model, null);
  });
});

describe('results, history and cache stores', () => {
  it('opens a report and keeps the chosen heatmap strategy only if the report has it', () => {
    useResults.getState().setHeatmapStrategy('lragent');
    useResults.getState().open(makeReport(), 'id', 'history');
    assert.equal(useResults.getState().heatmapStrategy, null);
    useResults.getState().setHeatmapStrategy('seed-minikv');
    useResults.getState().open(makeReport(), 'id2', 'run');
    assert.equal(useResults.getState().heatmapStrategy, 'seed-minikv');
    assert.equal(useResults.getState().reportId, 'id2');
  });

  it('lists, gets and deletes history; errors become messages', async () => {
    const entry = { id: 'x', createdAt: '', modelName: 'm', adapterNames: [], strategies: [], documentTokens: 1, backend: 'cpu' as const, fileBytes: 1 };
    setRpc(
      new FakeClient()
        .handle('history.list', () => [entry])
        .handle('history.delete', () => ({ deleted: true }))
        .handle('history.get', () => {
          throw new RpcError({ code: 'NOT_FOUND', message: 'no run x' });
        }),
    );
    await useHistory.getState().refresh();
    assert.equal(useHistory.getState().entries.length, 1);
    assert.equal(await useHistory.getState().get('x'), null);
    assert.match(useHistory.getState().error ?? '', /no run x/);
    await useHistory.getState().remove('x');
    assert.equal(useHistory.getState().entries.length, 0);
  });

  it('decodes base64 exports to bytes', () => {
    const bytes = exportedBlobParts({ fileName: 'a.pdf', mimeType: 'application/pdf', encoding: 'base64', content: btoa('%PDF') });
    assert.ok(bytes instanceof Uint8Array);
    assert.deepEqual(Array.from(bytes), [37, 80, 68, 70]);
    assert.equal(exportedBlobParts({ fileName: 'a.md', mimeType: 'text/markdown', encoding: 'utf8', content: '# x' }), '# x');
  });

  it('reads and clears the cache', async () => {
    const usage = { budgetBytes: 100, usedBytes: 10, pinnedBytes: 0, transientBytes: 0, entries: [], hits: 0, misses: 1, evictions: 0, overBudget: false };
    setRpc(new FakeClient().handle('cache.stats', () => usage).handle('cache.clear', () => ({ ...usage, usedBytes: 0 })));
    await useCache.getState().refresh();
    assert.equal(useCache.getState().usage?.usedBytes, 10);
    await useCache.getState().clear();
    assert.equal(useCache.getState().usage?.usedBytes, 0);
    assert.equal(useCache.getState().clearing, false);
  });
});
