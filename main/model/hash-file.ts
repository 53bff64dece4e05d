// SHA-256 of one file, as a worker of the 'hash' pool computes it (sha256.ts sends the
// work there): synchronous reads into one reused buffer, which is the fastest way on a
// thread of its own. The file's stamp is taken before and after: a file that changed
// while it was read is refused rather than given a digest of a mixture.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { LoadError } from './errors.js';
import { sameStamp, stampOf, type FileStamp } from './file-stamp.js';

// Reads of 256 KiB, which stay in a core's L2 between the read and the hash: measured on the
// H200 host (bench/research/hash-probe.sh), three 4 GiB files hashed at once went at 0.82 GB/s
// each with 4 MiB reads and 1.16 GB/s with 256 KiB (one file alone: 1.1 GB/s either way), and
// a checkpoint's shards are hashed at once.
const CHUNK = 256 << 10;
/** Progress after every 4 MiB read (a few thousand messages for a 13 GB checkpoint). */
const PROGRESS_EVERY = 4 << 20;

export function hashFileSync(file: string, onProgress?: (done: number, total: number) => void): { sha256: string; stamp: FileStamp } {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (e) {
    throw new LoadError({ file, message: `cannot hash this file (${(e as NodeJS.ErrnoException).code ?? String(e)}).`, cause: e });
  }
  try {
    const before = fs.fstatSync(fd);
    if (!before.isFile()) throw new LoadError({ file, message: 'cannot hash this file: it is not a regular file.' });
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(1, before.size)));
    let done = 0;
    let reported = 0;
    onProgress?.(0, before.size);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, done);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
      done += n;
      if (done - reported >= PROGRESS_EVERY) {
        reported = done;
        onProgress?.(done, before.size);
      }
    }
    const after = stampOf(fs.fstatSync(fd));
    if (done !== before.size || !sameStamp(stampOf(before), after)) {
      throw new LoadError({ file, message: `the file changed while it was being hashed (${done} of ${before.size} bytes read); hash it again when it is complete.` });
    }
    onProgress?.(done, before.size);
    return { sha256: hash.digest('hex'), stamp: after };
  } finally {
    fs.closeSync(fd);
  }
}
