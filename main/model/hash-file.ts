// SHA-256 of one file, as a worker of the 'hash' pool computes it (sha256.ts sends the
// work there). The reads are pipelined with the hashing: while this thread hashes one
// buffer, libuv's thread pool reads the next ones, so the core that runs the (sequential)
// SHA-256 does nothing else. The file's stamp is taken before and after: a file that changed
// while it was read is refused rather than given a digest of a mixture.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { LoadError } from './errors.js';
import { sameStamp, stampOf, type FileStamp } from './file-stamp.js';

/**
 * How the reads are cut. Measured here (2 cores, one 2 GB file in the page cache): reading on
 * this thread between hash updates (the earlier way) hashed at 1.08 GB/s; 4 MiB reads with one
 * in flight while the other buffer is hashed, 1.36 GB/s. ADAPTERLENS_HASH_READ_KIB and
 * ADAPTERLENS_HASH_BUFFERS override them (bench/research/hash-contention.ts compares them).
 */
export interface HashReadPlan {
  /** Bytes per read. */
  readBytes: number;
  /** Buffers in the ring: one being hashed, the others being read. */
  buffers: number;
}

export function hashReadPlan(env: NodeJS.ProcessEnv = process.env): HashReadPlan {
  const kib = Number(env.ADAPTERLENS_HASH_READ_KIB);
  const buffers = Number(env.ADAPTERLENS_HASH_BUFFERS);
  return {
    readBytes: Number.isInteger(kib) && kib >= 4 && kib <= 65536 ? kib << 10 : 4 << 20,
    buffers: Number.isInteger(buffers) && buffers >= 2 && buffers <= 8 ? buffers : 2,
  };
}

/** Progress after every 4 MiB hashed (a few thousand messages for a 13 GB checkpoint). */
const PROGRESS_EVERY = 4 << 20;

function cannotHash(file: string, e: unknown): LoadError {
  return new LoadError({ file, message: `cannot hash this file (${(e as NodeJS.ErrnoException).code ?? String(e)}).`, cause: e });
}

export async function hashFile(
  file: string,
  onProgress?: (done: number, total: number) => void,
  plan: HashReadPlan = hashReadPlan(),
): Promise<{ sha256: string; stamp: FileStamp }> {
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (e) {
    throw cannotHash(file, e);
  }
  // Reads still in flight when something throws are awaited before the file is closed.
  const inflight: { buf: Buffer; at: number; read: Promise<number> }[] = [];
  try {
    const before = await fh.stat();
    if (!before.isFile()) throw new LoadError({ file, message: 'cannot hash this file: it is not a regular file.' });
    const size = before.size;
    const hash = createHash('sha256');
    const chunk = Math.min(plan.readBytes, Math.max(1, size));
    const ring = Array.from({ length: plan.buffers }, () => Buffer.allocUnsafe(chunk));
    let next = 0; // the offset of the next read to issue
    let slot = 0;
    const issue = (): void => {
      const buf = ring[slot]!;
      slot = (slot + 1) % ring.length;
      const at = next;
      next += chunk;
      inflight.push({ buf, at, read: fh.read(buf, 0, chunk, at).then((r) => r.bytesRead) });
    };
    // One buffer is always being hashed (or free), so at most buffers − 1 reads are in flight.
    while (inflight.length < ring.length - 1 && next < size) issue();
    let done = 0;
    let reported = 0;
    onProgress?.(0, size);
    while (inflight.length > 0) {
      const { buf, at, read } = inflight.shift()!;
      const n = await read;
      if (at !== done || n === 0) break; // a short read: the file shrank (caught below)
      if (next < size && n === chunk) issue();
      hash.update(buf.subarray(0, n));
      done += n;
      if (n < chunk) break;
      if (done - reported >= PROGRESS_EVERY) {
        reported = done;
        onProgress?.(done, size);
      }
    }
    // Past the end: a file that grew while it was read is caught by its size or stamp.
    const after = stampOf(await fh.stat());
    if (done !== size || !sameStamp(stampOf(before), after)) {
      throw new LoadError({ file, message: `the file changed while it was being hashed (${done} of ${size} bytes read); hash it again when it is complete.` });
    }
    onProgress?.(done, size);
    return { sha256: hash.digest('hex'), stamp: after };
  } catch (e) {
    if (e instanceof LoadError) throw e;
    throw cannotHash(file, e);
  } finally {
    await Promise.allSettled(inflight.map((r) => r.read));
    await fh.close();
  }
}
