// The history store: save / list / get / delete round trip, ordering, corrupt files
// listed as skipped, and ids that cannot name a path outside the folder.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { HISTORY_ID_PATTERN, HistoryNotFoundError, HistoryStore, preview } from '../../main/rpc/history-store.js';
import type { Report } from '../../shared/report.js';
import { sampleReport, tempDir } from './helpers.js';

function fakeReport(createdAt: string, adapters = ['qv', 'all']): Report {
  const r = sampleReport(createdAt, 'tiny', adapters);
  r.document.text = '  The University of\n\nHong Kong   is old. ';
  r.prompt.text = ' Summarize the above:';
  return r;
}

describe('history store', () => {
  it('saves, lists newest first, reads back and deletes', async () => {
    const dir = path.join(tempDir('history'), 'nested', 'history');
    const store = new HistoryStore(dir);
    assert.deepEqual(await store.list(), { entries: [], skipped: [] }, 'a missing folder is an empty history');
    const older = await store.save(fakeReport('2026-01-02T03:04:05.006Z'));
    const newer = await store.save(fakeReport('2026-05-01T00:00:00.000Z', ['one']));
    assert.match(older.id, HISTORY_ID_PATTERN);
    assert.ok(older.id.startsWith('20260102T030405006Z-'));
    const { entries, skipped } = await store.list();
    assert.deepEqual(skipped, []);
    assert.deepEqual(entries.map((e) => e.id), [newer.id, older.id]);
    assert.deepEqual(entries[1], {
      id: older.id,
      createdAt: '2026-01-02T03:04:05.006Z',
      modelName: 'tiny',
      adapterNames: ['qv', 'all'],
      strategies: fakeReport('2026-01-02T03:04:05.006Z').settings.strategies,
      documentTokens: fakeReport('2026-01-02T03:04:05.006Z').documentTokens.length,
      backend: 'cpu',
      fileBytes: fs.statSync(path.join(dir, `${older.id}.json`)).size,
      documentStart: 'The University of Hong Kong is old.',
      promptStart: 'Summarize the above:',
    });
    assert.deepEqual(await store.get(newer.id), fakeReport('2026-05-01T00:00:00.000Z', ['one']));
    assert.equal(await store.delete(newer.id), true);
    assert.equal(await store.delete(newer.id), false);
    await assert.rejects(store.get(newer.id), HistoryNotFoundError);
    assert.deepEqual((await store.list()).entries.map((e) => e.id), [older.id]);
    assert.deepEqual(fs.readdirSync(dir), [`${older.id}.json`], 'no temp file left behind');
  });

  it('lists corrupt files as skipped with the reason, and still lists the good ones', async () => {
    const dir = tempDir('history');
    const store = new HistoryStore(dir);
    const good = await store.save(fakeReport('2026-01-01T00:00:00.000Z'));
    fs.writeFileSync(path.join(dir, '20260101T000000000Z-00000001.json'), '{ not json');
    fs.writeFileSync(path.join(dir, '20260101T000000000Z-00000002.json'), JSON.stringify({ schema: 'other/1' }));
    fs.writeFileSync(path.join(dir, 'notes.json'), '{}');
    fs.writeFileSync(path.join(dir, 'README.txt'), 'ignored: not JSON');
    const { entries, skipped } = await store.list();
    assert.deepEqual(entries.map((e) => e.id), [good.id]);
    const reasons = Object.fromEntries(skipped.map((s) => [path.basename(s.file), s.reason]));
    assert.match(reasons['20260101T000000000Z-00000001.json']!, /not valid JSON/);
    assert.match(reasons['20260101T000000000Z-00000002.json']!, /"schema" is "other\/1"/);
    assert.match(reasons['notes.json']!, /not a history id/);
    assert.equal(skipped.length, 3);
    await assert.rejects(store.get('20260101T000000000Z-00000001'), /not valid JSON/);
  });

  it('re-reads a file that changed since it was listed', async () => {
    const dir = tempDir('history');
    const store = new HistoryStore(dir);
    const { id } = await store.save(fakeReport('2026-01-01T00:00:00.000Z'));
    assert.equal((await store.list()).entries[0]!.modelName, 'tiny');
    const file = path.join(dir, `${id}.json`);
    const changed = sampleReport('2026-01-01T00:00:00.000Z', 'renamed-model');
    fs.writeFileSync(file, JSON.stringify(changed));
    fs.utimesSync(file, new Date(), new Date(Date.now() + 5000));
    assert.equal((await store.list()).entries[0]!.modelName, 'renamed-model');
  });

  it('never touches a path that is not a generated id', async () => {
    const root = tempDir('history');
    const dir = path.join(root, 'history');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(root, 'secret.json'), JSON.stringify(fakeReport('2026-01-01T00:00:00.000Z')));
    const store = new HistoryStore(dir);
    for (const id of ['../secret', '..%2fsecret', '/etc/passwd', '20260101T000000000Z-0000000g']) {
      await assert.rejects(store.get(id), HistoryNotFoundError, id);
      await assert.rejects(store.delete(id), HistoryNotFoundError, id);
    }
    assert.ok(fs.existsSync(path.join(root, 'secret.json')));
  });
  it('previews a long text by its first words, cut at a word', () => {
    const long = `${'word '.repeat(60)}end`;
    const p = preview(long);
    assert.ok(p.length <= 121 && p.endsWith('word…'), p);
    assert.equal(preview('short   text\n'), 'short text');
    assert.equal(preview(undefined), '');
  });
});
