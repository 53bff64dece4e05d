import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { appendFile, open, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LoadError } from '../../main/model/errors.js';
import { hashFile, hashReadPlan } from '../../main/model/hash-file.js';
import { sha256Dir, sha256File } from '../../main/model/sha256.js';
import { tempDir } from './model-fixtures.js';

const hex = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe('sha256', () => {
  let dir = '';
  let cleanup = async () => {};
  const big = Buffer.alloc(9 << 20, 7); // several reads and 4 MiB progress steps
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

  it('pipelines its reads: every read size and ring gives the same digest', async () => {
    // Odd sizes, so that the last read is short and reads straddle the progress steps.
    const odd = Buffer.from(Array.from({ length: (3 << 20) + 4099 }, (_, i) => (i * 2654435761) >>> 24));
    const file = join(dir, 'odd.bin');
    await writeFile(file, odd);
    // A reader thread (threshold 0) and reads on the hashing thread (threshold above the size).
    const plans = [
      { readBytes: 4096, buffers: 2, readerThreadMinBytes: 0 },
      { readBytes: 5 << 10, buffers: 3, readerThreadMinBytes: 0 },
      { readBytes: 1 << 20, buffers: 8, readerThreadMinBytes: 0 },
      { readBytes: 64 << 20, buffers: 2, readerThreadMinBytes: 0 },
      { readBytes: 5 << 10, buffers: 2, readerThreadMinBytes: 1 << 30 },
    ];
    for (const plan of plans) {
      const seen: number[] = [];
      const r = await hashFile(file, (d) => seen.push(d), plan);
      assert.equal(r.sha256, hex(odd), `${plan.readBytes} B × ${plan.buffers}, reader from ${plan.readerThreadMinBytes} B`);
      assert.equal(r.stamp.size, odd.length);
      assert.deepEqual(seen, [...seen].sort((a, b) => a - b), 'progress never goes back');
      assert.equal(seen.at(-1), odd.length);
    }
    await writeFile(file, '');
    for (const readerThreadMinBytes of [0, 1 << 30]) {
      assert.equal((await hashFile(file, undefined, { readBytes: 4096, buffers: 2, readerThreadMinBytes })).sha256, hex(''));
    }
    const min = 64 << 20;
    assert.deepEqual(hashReadPlan({}), { readBytes: 4 << 20, buffers: 2, readerThreadMinBytes: min });
    assert.deepEqual(hashReadPlan({ ADAPTERLENS_HASH_READ_KIB: '256', ADAPTERLENS_HASH_BUFFERS: '3' }), { readBytes: 256 << 10, buffers: 3, readerThreadMinBytes: min });
    assert.deepEqual(hashReadPlan({ ADAPTERLENS_HASH_READ_KIB: 'x', ADAPTERLENS_HASH_BUFFERS: '99' }), { readBytes: 4 << 20, buffers: 2, readerThreadMinBytes: min });
    assert.deepEqual(hashReadPlan({ ADAPTERLENS_HASH_READER_MIN_MIB: '0' }).readerThreadMinBytes, 0);
    assert.deepEqual(hashReadPlan({ ADAPTERLENS_HASH_READER_MIN_MIB: '-1' }).readerThreadMinBytes, min);
  });

  it('refuses a file that changes while it is hashed', async () => {
    const file = join(dir, 'growing.bin');
    // At the first progress past 0 (4 MiB in) the file grows, or shrinks to 1 MiB, while
    // 8 MiB are still to be read.
    for (const change of [() => appendFile(file, 'more'), () => truncate(file, 1 << 20)]) {
      await writeFile(file, Buffer.alloc(12 << 20, 1));
      let changed: Promise<void> | null = null;
      await assert.rejects(
        hashFile(file, (d) => { if (d > 0 && !changed) changed = change(); }, { readBytes: 4096, buffers: 2, readerThreadMinBytes: 0 }).finally(() => changed),
        (e: unknown) => e instanceof LoadError && /changed while it was being hashed/.test(e.message),
      );
    }
  });

  it('reads off libuv\'s thread pool: a pool kept busy by other work does not stall the hashing', { skip: process.platform !== 'linux' }, async () => {
    // Four pool threads held (the pool's size) by opens of FIFOs that no one writes yet, as
    // four long engine jobs would hold them; then a file that takes the reader-thread path.
    const fifos = [0, 1, 2, 3].map((i) => join(dir, `busy-${i}.fifo`));
    execFileSync('mkfifo', fifos);
    const held = fifos.map((f) => open(f, 'r'));
    try {
      await new Promise((r) => setTimeout(r, 100));
      const file = join(dir, 'pool-busy.bin');
      writeFileSync(file, big);
      const r = await Promise.race([
        hashFile(file, undefined, { readBytes: 1 << 20, buffers: 2, readerThreadMinBytes: 0 }),
        new Promise<null>((res) => setTimeout(() => res(null), 10_000)),
      ]);
      assert.equal(r?.sha256, hex(big), 'hashed while the pool was busy');
    } finally {
      // A writer for each FIFO releases the pool (sync opens from a child: the pool is busy).
      execFileSync('sh', ['-c', fifos.map((f) => `: > '${f}'`).join('; ')]);
      for (const h of await Promise.all(held)) await h.close();
    }
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
