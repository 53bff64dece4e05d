// SHA-256 of files and of a folder's relevant files, for reports and cache keys.
//
// The hashing runs on worker threads (the 'hash' pool, hash-file.ts), one file per worker,
// so the shards of a checkpoint are read in parallel and the main thread never spends a
// moment on them. With a DigestCache (digest-cache.ts) a file whose stamp has not changed
// since it was last hashed is not read at all, across restarts.
import { createHash } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { ProgressCallback } from '../engine/native-types.js';
import { cancellationError } from '../cancellation.js';
import { pool } from '../worker/pool.js';
import { WorkerCrashError } from '../worker/errors.js';
import type { DigestCache } from './digest-cache.js';
import { LoadError } from './errors.js';
import { stampOf, type FileStamp } from './file-stamp.js';

export interface HashOptions {
  signal?: AbortSignal;
  /** (done, total) in bytes. */
  onProgress?: ProgressCallback;
  /** Digests known from earlier runs; new ones are added to it. */
  cache?: DigestCache | null;
}

export interface FileDigest {
  /** Path relative to the folder. */
  name: string;
  bytes: number;
  sha256: string;
}

export interface DirDigest {
  dir: string;
  files: FileDigest[];
  /** SHA-256 of the lines "<sha256>  <name>\n" (sha256sum's format), sorted by name. */
  combined: string;
}

/** Files that define a model, adapter or tokenizer: weights, JSON configs, SentencePiece models. */
export function isRelevantFile(name: string): boolean {
  return /\.(safetensors|json|model|tiktoken)$/.test(name);
}

function cannotHash(file: string, e: unknown): LoadError {
  return new LoadError({ file, message: `cannot hash this file (${(e as NodeJS.ErrnoException).code ?? String(e)}).`, cause: e });
}

async function stampFile(file: string): Promise<FileStamp> {
  try {
    const st = await stat(file);
    if (!st.isFile()) throw new LoadError({ file, message: 'cannot hash this file: it is not a regular file.' });
    return stampOf(st);
  } catch (e) {
    if (e instanceof LoadError) throw e;
    throw cannotHash(file, e);
  }
}

/** Hashes one file in a hash worker (progress in bytes of this file). */
async function hashInWorker(file: string, signal: AbortSignal | undefined, onProgress: (done: number) => void): Promise<{ sha256: string; stamp: FileStamp }> {
  try {
    return await pool('hash').run('hash-file', { file }, { signal, onProgress: (d) => onProgress(d) });
  } catch (e) {
    if (e instanceof WorkerCrashError) throw cannotHash(file, e.reason);
    throw e;
  }
}

/** Hex SHA-256 of a file. */
export async function sha256File(file: string, options: HashOptions = {}): Promise<string> {
  if (options.signal?.aborted) throw cancellationError();
  const stamp = await stampFile(file);
  const known = await options.cache?.get(resolve(file), stamp);
  if (known) {
    options.onProgress?.(stamp.size, stamp.size);
    return known;
  }
  const { sha256, stamp: hashed } = await hashInWorker(file, options.signal, (d) => options.onProgress?.(d, stamp.size));
  await options.cache?.set(resolve(file), hashed, sha256);
  await options.cache?.flush();
  return sha256;
}

/** The folder's file names that sha256Dir hashes (top level only), sorted. */
async function relevantNames(dir: string, names: readonly string[] | undefined): Promise<string[]> {
  if (names) return [...names].sort();
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new LoadError({
      file: dir,
      message: code === 'ENOENT' ? 'this folder does not exist.' : code === 'ENOTDIR' ? 'this is not a folder.' : `cannot list this folder (${code ?? String(e)}).`,
      cause: e,
    });
  }
  // Symlinks count (Hugging Face cache snapshots link every file to a blob); stamping checks they lead to files.
  return entries.filter((e) => (e.isFile() || e.isSymbolicLink()) && isRelevantFile(e.name)).map((e) => e.name).sort();
}

function combine(dir: string, files: FileDigest[]): DirDigest {
  const combined = createHash('sha256')
    .update(files.map((f) => `${f.sha256}  ${f.name}\n`).join(''))
    .digest('hex');
  return { dir, files, combined };
}

/**
 * What identifies the folder's relevant files as they are now, without reading a byte:
 * the folder and each file's name and stamp (size, mtime, ctime, inode, device). It changes
 * exactly when a digest stored under those stamps would stop being valid (file-stamp.ts),
 * so it keys what is loaded and cached in this process while the SHA-256 is still being
 * computed: a run need not wait for gigabytes of hashing before its first prefill.
 */
export async function dirIdentity(dirIn: string, names?: readonly string[]): Promise<string> {
  const dir = resolve(dirIn);
  const list = await relevantNames(dir, names);
  const stamps = await Promise.all(list.map((n) => stampFile(join(dir, n))));
  const lines = list.map((n, i) => {
    const s = stamps[i]!;
    return `${n}\t${s.size}\t${s.mtimeMs}\t${s.ctimeMs}\t${s.ino}\t${s.dev}\n`;
  });
  return createHash('sha256').update(`adapterlens.identity/1\n${dir}\n${lines.join('')}`).digest('hex');
}

/**
 * The folder's digest when every relevant file is known to `cache` under its current
 * stamp, without reading a byte; null when any file would have to be hashed.
 */
export async function cachedDirDigest(dirIn: string, cache: DigestCache, names?: readonly string[]): Promise<DirDigest | null> {
  const dir = resolve(dirIn);
  let list: string[];
  try {
    list = await relevantNames(dir, names);
  } catch {
    return null;
  }
  const files: FileDigest[] = [];
  for (const name of list) {
    let stamp: FileStamp;
    try {
      stamp = await stampFile(join(dir, name));
    } catch {
      return null;
    }
    const sha256 = await cache.get(join(dir, name), stamp);
    if (!sha256) return null;
    files.push({ name, bytes: stamp.size, sha256 });
  }
  return combine(dir, files);
}

/**
 * SHA-256 of a folder's relevant files (top level only): the files named in `names`, or every
 * file isRelevantFile accepts. Files are hashed in parallel in worker threads, the largest
 * first (on a first run the largest shard is the longest job); progress is in bytes over all
 * files (known digests count as done at once).
 */
export async function sha256Dir(dirIn: string, options: HashOptions & { names?: readonly string[]; onDispatched?: () => void } = {}): Promise<DirDigest> {
  const { signal, onProgress, cache } = options;
  if (signal?.aborted) throw cancellationError();
  const dir = resolve(dirIn);
  const names = await relevantNames(dir, options.names);
  const stamps = await Promise.all(names.map((n) => stampFile(join(dir, n))));
  const known = await Promise.all(names.map((n, i) => (cache ? cache.get(join(dir, n), stamps[i]!) : null)));
  const total = stamps.reduce((a, s) => a + s.size, 0);
  const doneByFile = names.map((_, i) => (known[i] ? stamps[i]!.size : 0));
  const report = (): void => onProgress?.(doneByFile.reduce((a, b) => a + b, 0), total);
  if (known.some(Boolean)) report();

  // One controller for the folder: the first failure stops the other files' workers.
  const controller = new AbortController();
  const onAbort = (): void => controller.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  const hashOne = async (i: number): Promise<FileDigest> => {
    const name = names[i]!;
    const file = join(dir, name);
    try {
      // hashInWorker hands the file to the pool before its first await: the loop below dispatches in its order.
      const { sha256, stamp: hashed } = await hashInWorker(file, controller.signal, (d) => {
        doneByFile[i] = d;
        report();
      });
      await cache?.set(file, hashed, sha256);
      return { name, bytes: hashed.size, sha256 };
    } catch (e) {
      controller.abort();
      throw e;
    }
  };
  try {
    const pending: Promise<FileDigest>[] = new Array(names.length);
    const bySizeDown = names.map((_, i) => i).sort((a, b) => stamps[b]!.size - stamps[a]!.size);
    for (const i of bySizeDown) pending[i] = known[i] ? Promise.resolve({ name: names[i]!, bytes: stamps[i]!.size, sha256: known[i]! }) : hashOne(i);
    options.onDispatched?.();
    const files = await Promise.all(pending);
    report();
    return combine(dir, files);
  } catch (e) {
    // The other files' workers reject as cancelled once the controller fires; report what stopped them.
    if (signal?.aborted) throw cancellationError();
    throw e;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    await cache?.flush();
  }
}
