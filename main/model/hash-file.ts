// SHA-256 of one file, as a worker of the 'hash' pool computes it (sha256.ts sends the
// work there). For a large file the reads are pipelined with the hashing: a reader thread of
// its own fills a ring of shared buffers with synchronous reads while this thread hashes, so
// the core that runs the (sequential) SHA-256 does nothing else. The reads stay off libuv's
// thread pool on purpose: that pool (4 threads a process) also runs the engine's jobs, and
// four of them at once would stall every read queued behind them. The file's stamp is taken
// before and after: a file that changed while it was read is refused rather than given a
// digest of a mixture.
import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import { MessageChannel, receiveMessageOnPort, Worker } from 'node:worker_threads';
import { LoadError } from './errors.js';
import { sameStamp, stampOf, type FileStamp } from './file-stamp.js';

/**
 * How the reads are cut. Measured on the H200 host (bench/research/hash-contention.ts --alone,
 * the largest 4.95 GB shard, one call): reads of 256 KiB on the hashing thread between updates
 * (the earlier way) 0.91 GB/s; 4 MiB reads there 1.06 GB/s; a reader thread with two 4 MiB
 * buffers 1.20 GB/s (three of 1 MiB 1.17, two of 16 MiB 1.14).
 * ADAPTERLENS_HASH_READ_KIB, ADAPTERLENS_HASH_BUFFERS and ADAPTERLENS_HASH_READER_MIN_MIB override them.
 */
export interface HashReadPlan {
  /** Bytes per read. */
  readBytes: number;
  /** Buffers in the ring: one being hashed, the others being filled. */
  buffers: number;
  /** Smaller files are read on this thread (a reader thread costs tens of ms to start). */
  readerThreadMinBytes: number;
}

export function hashReadPlan(env: NodeJS.ProcessEnv = process.env): HashReadPlan {
  const kib = Number(env.ADAPTERLENS_HASH_READ_KIB);
  const buffers = Number(env.ADAPTERLENS_HASH_BUFFERS);
  const readerMib = env.ADAPTERLENS_HASH_READER_MIN_MIB === undefined ? NaN : Number(env.ADAPTERLENS_HASH_READER_MIN_MIB);
  return {
    readBytes: Number.isInteger(kib) && kib >= 4 && kib <= 65536 ? kib << 10 : 4 << 20,
    buffers: Number.isInteger(buffers) && buffers >= 2 && buffers <= 8 ? buffers : 2,
    readerThreadMinBytes: Number.isInteger(readerMib) && readerMib >= 0 ? readerMib * 2 ** 20 : 64 << 20,
  };
}

/** Progress after every 4 MiB hashed (a few thousand messages for a 13 GB checkpoint). */
const PROGRESS_EVERY = 4 << 20;

// Slot states in the ring's control array (≥ 0: the bytes a read put there, 0 at the end).
const EMPTY = -1;
const FAILED = -2;
// How long either side sleeps before it looks again (the other side notifies; this bounds a
// missed wake-up, and lets the hashing thread's events run: a reader that died is seen).
const WAIT_MS = 200;

// The reader thread (CommonJS, evaluated: it needs no module of this project). It fills slot
// after slot with positional reads until the end of the file, a failed read (FAILED, the error
// on its port) or the stop flag at control[slots].
const READER_SOURCE = `
const { workerData } = require('node:worker_threads');
const fs = require('node:fs');
const { fd, data, control, chunk, slots, port } = workerData;
const state = new Int32Array(control);
const bytes = new Uint8Array(data);
(function run() {
  let pos = 0;
  for (let slot = 0; ; slot = (slot + 1) % slots) {
    for (;;) {
      if (Atomics.load(state, slots) !== 0) return;
      const v = Atomics.load(state, slot);
      if (v === ${EMPTY}) break;
      Atomics.wait(state, slot, v, ${WAIT_MS});
    }
    let n;
    try {
      n = fs.readSync(fd, bytes, slot * chunk, chunk, pos);
    } catch (e) {
      port.postMessage({ code: e && e.code, message: String(e && e.message) });
      Atomics.store(state, slot, ${FAILED});
      Atomics.notify(state, slot);
      return;
    }
    Atomics.store(state, slot, n);
    Atomics.notify(state, slot);
    if (n === 0) return;
    pos += n;
  }
})();
`;

function cannotHash(file: string, e: unknown): LoadError {
  return new LoadError({ file, message: `cannot hash this file (${(e as NodeJS.ErrnoException).code ?? String(e)}).`, cause: e });
}

/** Hashes the file on this thread, reading between updates. Returns the bytes read. */
function hashHere(fd: number, hash: Hash, chunk: number, progress: (done: number) => void): number {
  const buf = Buffer.allocUnsafe(chunk);
  let done = 0;
  for (;;) {
    const n = fs.readSync(fd, buf, 0, chunk, done);
    if (n === 0) return done;
    hash.update(buf.subarray(0, n));
    done += n;
    progress(done);
  }
}

/** Hashes what a reader thread reads into a ring of shared buffers. Returns the bytes read. */
async function hashFromReader(fd: number, hash: Hash, plan: HashReadPlan, progress: (done: number) => void): Promise<number> {
  const chunk = plan.readBytes;
  const slots = plan.buffers;
  const data = new SharedArrayBuffer(chunk * slots);
  const control = new SharedArrayBuffer(4 * (slots + 1));
  const state = new Int32Array(control).fill(EMPTY);
  state[slots] = 0;
  const bytes = new Uint8Array(data);
  const { port1, port2 } = new MessageChannel();
  const reader = new Worker(READER_SOURCE, { eval: true, workerData: { fd, data, control, chunk, slots, port: port2 }, transferList: [port2] });
  let exited = false;
  let crash: unknown = null;
  reader.on('error', (e) => { crash = e; });
  reader.on('exit', () => { exited = true; });
  let done = 0;
  try {
    for (let slot = 0; ; slot = (slot + 1) % slots) {
      let v = Atomics.load(state, slot);
      while (v === EMPTY) {
        if (Atomics.wait(state, slot, EMPTY, WAIT_MS) === 'timed-out') {
          await new Promise((r) => setImmediate(r)); // the reader's exit, if it died
          if (exited && Atomics.load(state, slot) === EMPTY) throw crash ?? new Error('the reader thread stopped');
        }
        v = Atomics.load(state, slot);
      }
      if (v === FAILED) {
        const msg = receiveMessageOnPort(port1)?.message as { code?: string; message: string } | undefined;
        throw Object.assign(new Error(msg?.message ?? 'a read failed'), { code: msg?.code });
      }
      if (v === 0) return done;
      hash.update(bytes.subarray(slot * chunk, slot * chunk + v));
      done += v;
      Atomics.store(state, slot, EMPTY);
      Atomics.notify(state, slot);
      progress(done);
    }
  } finally {
    Atomics.store(state, slots, 1);
    for (let i = 0; i < slots; ++i) Atomics.notify(state, i);
    await reader.terminate();
    port1.close();
  }
}

export async function hashFile(
  file: string,
  onProgress?: (done: number, total: number) => void,
  plan: HashReadPlan = hashReadPlan(),
): Promise<{ sha256: string; stamp: FileStamp }> {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (e) {
    throw cannotHash(file, e);
  }
  try {
    const before = fs.fstatSync(fd);
    if (!before.isFile()) throw new LoadError({ file, message: 'cannot hash this file: it is not a regular file.' });
    const size = before.size;
    const hash = createHash('sha256');
    let reported = 0;
    const progress = (done: number): void => {
      if (done - reported < PROGRESS_EVERY) return;
      reported = done;
      onProgress?.(done, size);
    };
    onProgress?.(0, size);
    const done = size >= plan.readerThreadMinBytes
      ? await hashFromReader(fd, hash, plan, progress)
      : hashHere(fd, hash, Math.min(plan.readBytes, Math.max(1, size)), progress);
    // A file that grew, shrank or was rewritten while it was read is caught by its size or stamp.
    const after = stampOf(fs.fstatSync(fd));
    if (done !== size || !sameStamp(stampOf(before), after)) {
      throw new LoadError({ file, message: `the file changed while it was being hashed (${done} of ${size} bytes read); hash it again when it is complete.` });
    }
    onProgress?.(done, size);
    return { sha256: hash.digest('hex'), stamp: after };
  } catch (e) {
    if (e instanceof LoadError) throw e;
    throw cannotHash(file, e);
  } finally {
    fs.closeSync(fd);
  }
}
