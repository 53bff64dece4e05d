import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { RpcError, type AdapterInfo, type ModelInfo, type RunEstimate } from '../../shared/rpc.js';
import { setRpc } from '../src/rpc/instance.js';
import { useCache } from '../src/store/cache.js';
import { useHistory, exportedBlobParts } from '../src/store/history.js';
import { useResults } from '../src/store/results.js';
import { attachRunEvents, useRun } from '../src/store/run.js';
import { estimateProblem, useSetup } from '../src/store/setup.js';
import { selectionFromIds } from '../src/logic/strategy-selection.js';
import { FakeClient } from './fake-client.js';
import { makeReport, makeRequest } from './fixtures.js';

const request = makeRequest();

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

  it('applies a burst of token events in a few store updates, and every token by the end of the run', async () => {
    await useRun.getState().start(request);
    let updates = 0;
    const off = useRun.subscribe((next, prev) => {
      if (next.streams !== prev.streams) updates++;
    });
    for (let step = 0; step < 200; step++) client.emit('run.tokens', { runId: 'r1', tokens: [{ adapter: 0, strategy: 'exact', step, token: step, piece: 'x', prob: 0.9 }] });
    assert.equal(useRun.getState().streams['0|exact']?.length, 1, 'the first event at once, the rest wait for the timer');
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(useRun.getState().streams['0|exact']?.length, 200, 'the timer applies what waited');
    client.emit('run.tokens', { runId: 'r1', tokens: [{ adapter: 0, strategy: 'exact', step: 200, token: 200, piece: 'x', prob: 0.9 }] });
    client.emit('run.tokens', { runId: 'r1', tokens: [{ adapter: 0, strategy: 'exact', step: 201, token: 201, piece: 'x', prob: 0.9 }] });
    client.emit('run.finished', { runId: 'r1', reportId: 'id1', report: makeReport(), saveError: null });
    assert.equal(useRun.getState().streams['0|exact']?.length, 202, 'the end of the run applies what waited first');
    assert.ok(updates <= 4, `${updates} updates for 202 events`);
    // A steady stream: one update per window, not a trailing flush and a leading one in pairs.
    updates = 0;
    await useRun.getState().start(request);
    const t0 = Date.now();
    for (let step = 0; Date.now() - t0 < 400; step++) {
      client.emit('run.tokens', { runId: 'r1', tokens: [{ adapter: 0, strategy: 'exact', step, token: step, piece: 'x', prob: 0.9 }] });
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.ok(updates <= 400 / 80 + 2, `${updates} updates in 400 ms of events every 5 ms`);
    off();
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

  it('picks up a run in progress after a reload: its true elapsed time, every stage so far, the tokens so far', async () => {
    const stages = { load: { stage: 'load' as const, done: 3, total: 3 }, tokenize: { stage: 'tokenize' as const, done: 1, total: 1 }, encode: { stage: 'encode' as const, done: 1, total: 4 } };
    const tokens = [0, 1, 2].map((step) => ({ adapter: 0, strategy: 'exact' as const, step, token: 10 + step, piece: `p${step}`, prob: 0.5 }));
    client.handle('run.active', () => ({ runId: 'r9', request, progress: stages.encode, elapsedMs: 42_000, stages, tokens }));
    await useRun.getState().resume();
    const r = useRun.getState();
    assert.equal(r.status, 'running');
    assert.equal(r.runId, 'r9');
    assert.equal(r.current, 'encode');
    assert.ok(Math.abs(Date.now() - (r.startedAt ?? 0) - 42_000) < 1000, 'elapsed time from main, not from the reload');
    assert.deepEqual(Object.keys(r.seen), ['load', 'tokenize', 'encode']);
    assert.deepEqual(r.streams['0|exact']?.map((t) => t.token), [10, 11, 12]);
    // Later events for steps already there are not repeated.
    client.emit('run.tokens', { runId: 'r9', tokens: [tokens[2]!, { ...tokens[2]!, step: 3, token: 13 }] });
    assert.deepEqual(useRun.getState().streams['0|exact']?.map((t) => t.token), [10, 11, 12, 13]);
  });

  it('a cancel pressed before main has answered run.start is sent once it has', async () => {
    let answer!: (v: { runId: string }) => void;
    const cancels: string[] = [];
    client.handle('run.start', () => new Promise((r) => (answer = r))).handle('run.cancel', ({ runId }) => (cancels.push(runId), { cancelled: true }));
    const started = useRun.getState().start(request);
    assert.equal(useRun.getState().status, 'starting');
    await useRun.getState().cancel();
    assert.equal(useRun.getState().status, 'cancelling');
    answer({ runId: 'r5' });
    await started;
    assert.deepEqual(cancels, ['r5']);
    client.emit('run.cancelled', { runId: 'r5' });
    assert.equal(useRun.getState().status, 'cancelled');
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
    await useSetup.getState().loadDemo({ modelDir: '/m', adapterDirs: ['/a1', '/bad'], documentText: 'abcdef', promptText: ' p', strategies: ['exact', 'base', 'lowrank:4'], maxNewTokens: 16 }, 'preselect');
    assert.equal(useSetup.getState().demo, 'preselected');
    const s = useSetup.getState();
    assert.equal(s.model?.name, 'tiny');
    assert.deepEqual(s.adapters.map((a) => [a.name, a.info?.rank ?? null, a.error]), [['a1', 4, null], ['bad', null, 'adapter for another model']]);
    assert.equal(s.tokenCount?.documentTokens, 6);
    assert.equal(s.settings.maxNewTokens, 16);
    assert.deepEqual(s.strategies.lowrank, { on: true, ranks: '4' });
    assert.ok(client.calls.filter((c) => c.method === 'adapter.inspect').every((c) => (c.params as { modelDir: string }).modelDir === '/m'));

    // The count is asked only up to the context plus the new tokens (and a margin).
    const count = client.calls.filter((c) => c.method === 'text.count').at(-1)!.params as { limit: number };
    assert.equal(count.limit, 64 + 16 + 256);

    useSetup.getState().removeAdapter(s.adapters[1]!.id);
    await useSetup.getState().addAdapters(['/a1', '/a2', ' ']);
    assert.deepEqual(useSetup.getState().adapters.map((a) => a.dir), ['/a1', '/a2'], 'no duplicates, no blanks');
    assert.equal(useSetup.getState().adapterNotice, '/a1 is already in the list as a1.', 'a repeated folder is said, not silently dropped');
  });

  it('"Load demo" over a filled-in setup can be undone', async () => {
    const client = new FakeClient()
      .handle('model.inspect', ({ dir }) => ({ ...model, dir, name: dir }))
      .handle('adapter.inspect', ({ dir }) => adapter(dir))
      .handle('text.count', () => ({ documentTokens: 3, promptTokens: 1, contextLimit: 64, complete: true }));
    setRpc(client);
    await useSetup.getState().restore({ ...useSetup.getState().fields(), modelDir: '/mine', adapters: [{ dir: '/my-adapter', name: 'mine' }], documentText: 'my document', promptText: ' mine' });
    await useSetup.getState().loadDemo({ modelDir: '/demo', adapterDirs: ['/d1'], documentText: 'demo doc', promptText: '', strategies: ['exact'], maxNewTokens: 8 }, 'user');
    assert.equal(useSetup.getState().modelDir, '/demo');
    assert.ok(useSetup.getState().undo, 'the replaced setup is kept');
    await useSetup.getState().undoLoad();
    const s = useSetup.getState();
    assert.deepEqual([s.modelDir, s.documentText, s.promptText, s.adapters.map((a) => a.name)], ['/mine', 'my document', ' mine', ['mine']]);
    assert.equal(s.undo, null);
    assert.equal(s.model?.name, '/mine', 'checked again');
  });

  it('shows the folder main read for ~ and relative paths, and drops an adapter that turns out to be listed already', async () => {
    const client = new FakeClient()
      .handle('model.inspect', ({ dir }) => ({ ...model, dir: dir.replace(/^~/, '/home/ann') }))
      .handle('adapter.inspect', ({ dir }) => adapter(dir.replace(/^~/, '/home/ann')))
      .handle('text.count', () => ({ documentTokens: 3, promptTokens: 1, contextLimit: 64, complete: true }));
    setRpc(client);
    await useSetup.getState().restore({ ...useSetup.getState().fields(), modelDir: '', adapters: [], documentText: '', promptText: '' });
    await useSetup.getState().setModelDir('~/models/m');
    assert.equal(useSetup.getState().modelDir, '/home/ann/models/m');
    await useSetup.getState().addAdapters(['/home/ann/a']);
    await useSetup.getState().addAdapters(['~/a']);
    assert.deepEqual(useSetup.getState().adapters.map((a) => a.dir), ['/home/ann/a']);
    assert.match(useSetup.getState().adapterNotice ?? '', /~\/a is \/home\/ann\/a, which is already in the list/);
  });

  // A form main has checked (model, one adapter, 30 + 2 counted tokens, 8 new tokens),
  // run.estimate answering `estimate`.
  async function checkedForm(estimate: RunEstimate): Promise<FakeClient> {
    const client = new FakeClient()
      .handle('model.inspect', ({ dir }) => ({ ...model, dir }))
      .handle('adapter.inspect', ({ dir }) => adapter(dir))
      .handle('text.count', () => ({ documentTokens: 30, promptTokens: 2, contextLimit: 64, complete: true }))
      .handle('run.estimate', () => estimate);
    setRpc(client);
    await useSetup.getState().restore({ ...useSetup.getState().fields(), modelDir: '/m', adapters: [{ dir: '/a', name: 'a' }], documentText: 'x', promptText: 'y' });
    useSetup.getState().setSettings({ maxNewTokens: 8 });
    return client;
  }

  it('asks for the memory estimate with the counted tokens once everything is checked', async () => {
    const estimate = { cacheBytes: 100, totalBytes: 150, budgetBytes: 1000, fits: true, message: null, items: [] };
    const client = await checkedForm(estimate);
    await useSetup.getState().refreshEstimate();
    assert.deepEqual(useSetup.getState().estimate, estimate);
    const params = client.calls.find((c) => c.method === 'run.estimate')!.params as { documentTokens: number; promptTokens: number; maxNewTokens: number; adapterDirs: string[] };
    assert.deepEqual([params.documentTokens, params.promptTokens, params.maxNewTokens, params.adapterDirs], [30, 2, 8, ['/a']]);
    // Not while a field is unusable.
    useSetup.getState().setSettings({ maxNewTokens: Number.NaN });
    await useSetup.getState().refreshEstimate();
    assert.equal(useSetup.getState().estimate, null);
  });

  it('an over-budget estimate blocks Run only while it is for the form as it is', async () => {
    const over = { cacheBytes: 2000, totalBytes: 2500, budgetBytes: 1000, fits: false, message: 'over the cache budget', items: [] };
    await checkedForm(over);
    await useSetup.getState().refreshEstimate();
    assert.equal(estimateProblem(useSetup.getState()), 'over the cache budget');
    // Fewer new tokens: the estimate in hand is for the old form until the next one comes.
    useSetup.getState().setSettings({ maxNewTokens: 4 });
    assert.equal(estimateProblem(useSetup.getState()), null);
    useSetup.getState().setSettings({ maxNewTokens: 8 });
    assert.equal(estimateProblem(useSetup.getState()), 'over the cache budget', 'the same form again: the same estimate holds');
    useSetup.getState().setStrategies(selectionFromIds(['exact']));
    assert.equal(estimateProblem(useSetup.getState()), null, 'another strategy set');
    await useSetup.getState().refreshEstimate();
    assert.equal(estimateProblem(useSetup.getState()), 'over the cache budget', 'a new estimate for the new form');
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
    const entry = { id: 'x', createdAt: '', modelName: 'm', adapterNames: [], strategies: [], documentTokens: 1, backend: 'cpu' as const, fileBytes: 1, documentStart: 'doc', promptStart: '' };
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

  it('says an export is being prepared until it is done', async () => {
    let done!: (f: { fileName: string; mimeType: string; encoding: 'base64'; content: string }) => void;
    setRpc(new FakeClient().handle('report.saveAs', () => new Promise((r) => (done = (f) => r({ path: `/saved/${f.fileName}` })))));
    const pending = useHistory.getState().exportRun('x', 'pdf', true);
    assert.equal(useHistory.getState().exporting?.format, 'pdf');
    done({ fileName: 'a.pdf', mimeType: 'application/pdf', encoding: 'base64', content: '' });
    await pending;
    assert.equal(useHistory.getState().exporting, null);
    assert.equal(useHistory.getState().notice, 'Saved /saved/a.pdf');
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
