// History that cannot be written or read (issue 13, rows 5 and 8).
// - A history folder that cannot be written when a run finishes: the run still ends as
//   run.finished with its report, with reportId null and a saveError saying why.
// - Corrupt files in the folder: checked against the same schema as `adapterlens report`,
//   so a file the list shows always opens and exports; the others are listed by
//   history.skipped with the reason; a symlink to /dev/zero, a FIFO or a huge file is
//   refused as not a regular file / too large, without reading it.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { dispatch } from '../../main/rpc/dispatch.js';
import { AppService } from '../../main/rpc/service.js';
import type { HistoryEntry, RpcEvents, SkippedHistoryFile } from '../../shared/rpc.js';
import { sampleReport, tempDir, tinyRequest } from '../rpc/helpers.js';

describe('a history folder that cannot be written', { timeout: 120_000 }, () => {
  it('the finished run is still delivered, with the reason it was not saved', async () => {
    const root = tempDir('unwritable');
    fs.writeFileSync(path.join(root, 'not-a-folder'), 'a file where the data folder should be');
    const historyDir = path.join(root, 'not-a-folder', 'history');
    const service = new AppService({ transport: 'websocket', historyDir, cacheBudgetBytes: 1 << 30, throttleMs: 5 });
    try {
      const ended = new Promise<{ event: string; payload: unknown }>((resolve) => {
        service.onEvent((event, payload) => {
          if (event === 'run.finished' || event === 'run.failed' || event === 'run.cancelled') resolve({ event, payload });
        });
      });
      const started = await dispatch(service.handlers, 'run.start', { request: tinyRequest() });
      assert.ok(started.ok);
      const { event, payload } = await ended;
      assert.equal(event, 'run.finished', JSON.stringify(payload).slice(0, 300));
      const p = payload as RpcEvents['run.finished'];
      assert.equal(p.reportId, null);
      assert.equal(p.report.adapters.length, 2);
      assert.equal(p.report.adapters[0]!.strategies[0]!.generation.tokens.length, 4);
      assert.match(p.saveError ?? '', /not saved to .*not-a-folder\/history \(a path component is not a folder\)/);
      // Nothing half-written anywhere, and the service goes on.
      assert.ok((await dispatch(service.handlers, 'history.list', {})).ok);
    } finally {
      await service.dispose();
    }
  });
});

describe('corrupt files in the history folder', { timeout: 120_000 }, () => {
  const historyDir = path.join(tempDir('corrupt-history'), 'history');
  const service = new AppService({ transport: 'websocket', historyDir, cacheBudgetBytes: 1 << 20 });
  after(() => service.dispose());

  const file = (id: string): string => path.join(historyDir, `${id}.json`);

  it('only valid reports are listed; the others are skipped with the reason; non-regular files are not read', async () => {
    const good = await service.history.save(sampleReport('2026-03-01T00:00:00.000Z'));
    // Two files that pass the old light checks (schema, createdAt, model, adapters, settings, tokens, backend)...
    const lightOk = JSON.parse(JSON.stringify(sampleReport('2026-03-02T00:00:00.000Z'))) as Record<string, unknown> & { adapters: Record<string, unknown>[] };
    lightOk.adapters[0]!.strategies = 5; // "a.strategies is not iterable" on export
    fs.writeFileSync(file('20260302T000000000Z-00000001'), JSON.stringify(lightOk));
    const noLayers = JSON.parse(JSON.stringify(sampleReport('2026-03-03T00:00:00.000Z'))) as { model: Record<string, unknown> };
    delete noLayers.model.numLayers;
    fs.writeFileSync(file('20260303T000000000Z-00000002'), JSON.stringify(noLayers));
    // ...and files that are not regular: a link to /dev/zero, a FIFO, a 600 MB sparse file.
    fs.symlinkSync('/dev/zero', file('20260304T000000000Z-00000003'));
    execFileSync('mkfifo', [file('20260305T000000000Z-00000004')]);
    const fd = fs.openSync(file('20260306T000000000Z-00000005'), 'w');
    fs.ftruncateSync(fd, 600 * 1024 * 1024);
    fs.closeSync(fd);
    fs.writeFileSync(file('20260307T000000000Z-00000006'), `{"schema":"adapterlens.report/1","x":${'['.repeat(100_000)}${']'.repeat(100_000)}}`);

    const listed = await dispatch(service.handlers, 'history.list', {});
    assert.ok(listed.ok);
    assert.deepEqual((listed.result as HistoryEntry[]).map((e) => e.id), [good.id]);
    const skipped = await dispatch(service.handlers, 'history.skipped', {});
    assert.ok(skipped.ok);
    const reasons = Object.fromEntries((skipped.result as SkippedHistoryFile[]).map((s) => [path.basename(s.file, '.json'), s.reason]));
    assert.match(reasons['20260302T000000000Z-00000001']!, /adapters\.0\.strategies/);
    assert.match(reasons['20260303T000000000Z-00000002']!, /model\.numLayers/);
    assert.match(reasons['20260304T000000000Z-00000003']!, /not a regular file/);
    assert.match(reasons['20260305T000000000Z-00000004']!, /not a regular file/);
    assert.match(reasons['20260306T000000000Z-00000005']!, /629145600 bytes, more than the 536870912-byte limit/);
    assert.match(reasons['20260307T000000000Z-00000006']!, /nests arrays\/objects more than 64 levels/);
    assert.equal(Object.keys(reasons).length, 6);

    // Asking for a skipped one by id: INVALID_INPUT with the reason, never INTERNAL.
    for (const id of ['20260302T000000000Z-00000001', '20260304T000000000Z-00000003', '20260305T000000000Z-00000004']) {
      for (const method of ['history.get', 'report.export'] as const) {
        const answer = await dispatch(service.handlers, method, method === 'history.get' ? { id } : { id, format: 'md' });
        assert.equal(answer.ok, false);
        if (!answer.ok) {
          assert.equal(answer.error.code, 'INVALID_INPUT', `${method} ${id}: ${answer.error.message}`);
          assert.match(answer.error.message, new RegExp(`saved run "${id}" cannot be opened`));
        }
      }
    }
    // The listed one opens and exports.
    const md = await dispatch(service.handlers, 'report.export', { id: good.id, format: 'md' });
    assert.ok(md.ok);
  });
});
