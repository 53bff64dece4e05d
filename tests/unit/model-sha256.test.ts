import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LoadError } from '../../main/model/errors.js';
import { sha256Dir, sha256File } from '../../main/model/sha256.js';
import { tempDir } from './model-fixtures.js';

const hex = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe('sha256', () => {
  let dir = '';
  let cleanup = async () => {};
  const big = Buffer.alloc(9 << 20, 7); // many 256 KiB reads, several 4 MiB progress steps
  before(async () => {
    ({ dir, cleanup } = await tempDir());
    await writeFile(join(dir, 'config.json'), '{"a":1}');
    await writeFile(join(dir, 'model.safetensors'), big);
    await writeFile(join(dir, 'README.md'), 'not relevant');
  });
  after(() => cleanup());

  it('hashes a file in chunks with byte progress', async () => {
    const seen: number[] = [];
    assert.equal(await sha256File(join(dir, 'model.safetensors'), { onProgress: (d, t) => { assert.equal(t, big.length); seen.push(d); } }), hex(big));
    assert.ok(seen.length >= 3);
    assert.equal(seen.at(-1), big.length);
    assert.equal(await sha256File(join(dir, 'config.json')), hex('{"a":1}'));
    await assert.rejects(sha256File(join(dir, 'nope')), (e: unknown) => e instanceof LoadError);
  });

  it('hashes a folder\'s relevant files, sha256sum style', async () => {
    const d = await sha256Dir(dir);
    assert.deepEqual(d.files.map((f) => f.name), ['config.json', 'model.safetensors']);
    assert.equal(d.files[1]!.bytes, big.length);
    assert.equal(d.combined, hex(`${hex('{"a":1}')}  config.json\n${hex(big)}  model.safetensors\n`));
    const only = await sha256Dir(dir, { names: ['README.md'] });
    assert.equal(only.files[0]!.sha256, hex('not relevant'));
  });

  it('is cancellable', async () => {
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(sha256Dir(dir, { signal: ac.signal }), (e: unknown) => e instanceof Error && e.name === 'AbortError');
  });
});
