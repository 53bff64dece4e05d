// The UI side of issue 13, in the stores the components read (RunProgress shows
// saveError, HistoryPanel the skipped files): a finished run whose report could not be
// saved keeps its result and says why; the history keeps the files it skipped, with reasons.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setRpc } from '../src/rpc/instance.js';
import { useHistory } from '../src/store/history.js';
import { attachRunEvents, useRun } from '../src/store/run.js';
import { FakeClient } from './fake-client.js';
import { makeReport, makeRequest } from './fixtures.js';

describe('issue 13 in the UI', () => {
  it('a run whose report was not saved still finishes, and says why', async () => {
    const client = new FakeClient().handle('run.start', () => ({ runId: 'r1' }));
    setRpc(client);
    const detach = attachRunEvents(client);
    try {
      useRun.getState().dismiss();
      await useRun.getState().start(makeRequest({ adapters: [{ dir: '/a/qv' }], strategies: ['exact'], maxNewTokens: 1 }));
      client.emit('run.finished', { runId: 'r1', reportId: null, report: makeReport(), saveError: 'the report was not saved to /h (the disk is full); export it now to keep it' });
      assert.equal(useRun.getState().status, 'finished');
      assert.equal(useRun.getState().reportId, null);
      assert.match(useRun.getState().saveError ?? '', /not saved to \/h \(the disk is full\)/);
      // A new run starts clean.
      await useRun.getState().start({ ...useRun.getState().request! });
      assert.equal(useRun.getState().saveError, null);
    } finally {
      detach();
      useRun.getState().dismiss();
    }
  });

  it('history lists the files it skipped, with the reason', async () => {
    const entry = { id: 'x', createdAt: '2026-01-01T00:00:00.000Z', modelName: 'm', adapterNames: ['a'], strategies: [], documentTokens: 1, backend: 'cpu' as const, fileBytes: 1, documentStart: '', promptStart: '' };
    setRpc(
      new FakeClient()
        .handle('history.list', () => [entry])
        .handle('history.skipped', () => [{ file: '/h/20260101T000000000Z-00000001.json', reason: 'not a regular file (a device, FIFO, socket or folder)' }]),
    );
    await useHistory.getState().refresh();
    assert.deepEqual(useHistory.getState().skipped, [{ file: '/h/20260101T000000000Z-00000001.json', reason: 'not a regular file (a device, FIFO, socket or folder)' }]);
    assert.equal(useHistory.getState().entries.length, 1);
  });
});
