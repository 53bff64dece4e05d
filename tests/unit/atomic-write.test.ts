// Writes are atomic (issue 13): history, the digest cache, the CLI's report files and the
// desktop app's saves go through write-then-rename, so a reader never sees half a file and
// a failed write leaves the old file (and no temporary) behind. A failed --json write in
// the CLI does not cost the run's numbers: the table is printed first.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { writeFileAtomic, writeFileAtomicSync } from '../../main/files/atomic-write.js';
import { projectRoot } from '../../main/paths.js';
import { ADAPTERS_DIR, MODEL_DIR, tempDir } from '../rpc/helpers.js';

describe('atomic writes', () => {
  for (const [name, write] of [
    ['writeFileAtomic', (f: string, d: string) => writeFileAtomic(f, d)],
    ['writeFileAtomicSync', async (f: string, d: string) => writeFileAtomicSync(f, d)],
  ] as const) {
    it(`${name}: replaces the whole file, leaves no temporary, and on failure leaves the target as it was`, async () => {
      const dir = tempDir('atomic');
      const file = path.join(dir, 'report.json');
      await write(file, 'old');
      await write(file, 'new content');
      assert.equal(fs.readFileSync(file, 'utf8'), 'new content');
      assert.deepEqual(fs.readdirSync(dir), ['report.json']);
      // A target that cannot be replaced (a folder): the write fails, nothing is changed or left over.
      const folder = path.join(dir, 'taken');
      fs.mkdirSync(folder);
      fs.writeFileSync(path.join(folder, 'inside'), 'keep');
      await assert.rejects(Promise.resolve().then(() => write(folder, 'x')));
      assert.equal(fs.readFileSync(path.join(folder, 'inside'), 'utf8'), 'keep');
      assert.deepEqual(fs.readdirSync(dir).sort(), ['report.json', 'taken']);
      // A folder that does not exist: refused, nothing created.
      await assert.rejects(Promise.resolve().then(() => write(path.join(dir, 'missing', 'x.json'), 'x')));
      assert.ok(!fs.existsSync(path.join(dir, 'missing')));
    });
  }

  it('the CLI prints the run\'s table even when --json cannot be written, and says why', async () => {
    const dir = tempDir('cli-json');
    const doc = path.join(dir, 'doc.txt');
    fs.writeFileSync(doc, 'A short document about Hong Kong.');
    const blocked = path.join(dir, 'blocked');
    fs.mkdirSync(blocked); // --json names a folder: the rename fails
    const r = await promisify(execFile)(
      process.execPath,
      [path.join(projectRoot, 'bin', 'adapterlens.mjs'), 'compare', '--model', MODEL_DIR, '--adapter', path.join(ADAPTERS_DIR, 'qv-r8'), '--document', doc, '--strategies', 'exact,base', '--max-new-tokens', '2', '--json', blocked],
      { env: { ...process.env, XDG_DATA_HOME: tempDir('cli-json-data') } },
    ).then(
      (x) => ({ code: 0, ...x }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    assert.equal(r.code, 1);
    assert.match(r.stdout, /adapter\s+strategy\s+bytes/, 'the table is printed');
    assert.match(r.stdout, /qv-r8\s+exact/);
    assert.match(r.stderr, /EISDIR|illegal operation on a directory/);
    assert.deepEqual(fs.readdirSync(blocked), [], 'nothing half-written');
  });
});
