// Streaming SHA-256 of files and of a folder's relevant files, for reports.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { ProgressCallback } from '../engine/native-types.js';
import { LoadError } from './errors.js';

export interface HashOptions {
  signal?: AbortSignal;
  /** (done, total) in bytes. */
  onProgress?: ProgressCallback;
}

/** Hex SHA-256 of a file, read as a stream (never whole into memory). */
export async function sha256File(file: string, options: HashOptions = {}): Promise<string> {
  options.signal?.throwIfAborted();
  let total: number;
  try {
    total = (await stat(file)).size;
  } catch (e) {
    throw new LoadError({ file, message: `cannot hash this file (${(e as NodeJS.ErrnoException).code ?? String(e)}).`, cause: e });
  }
  return hashStream(file, total, 0, total, options);
}

async function hashStream(file: string, fileSize: number, doneBefore: number, total: number, options: HashOptions): Promise<string> {
  const { signal, onProgress } = options;
  const hash = createHash('sha256');
  const stream = createReadStream(file, { highWaterMark: 4 << 20, signal });
  let done = doneBefore;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    hash.update(chunk);
    done += chunk.length;
    onProgress?.(done, total);
  }
  if (done - doneBefore !== fileSize) {
    throw new LoadError({ file, message: `the file changed while it was being hashed (${done - doneBefore} of ${fileSize} bytes read).` });
  }
  return hash.digest('hex');
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

/**
 * SHA-256 of a folder's relevant files (top level only): the files named in `names`, or every
 * file isRelevantFile accepts. Progress is in bytes over all files.
 */
export async function sha256Dir(dirIn: string, options: HashOptions & { names?: readonly string[] } = {}): Promise<DirDigest> {
  const dir = resolve(dirIn);
  let names: string[];
  if (options.names) {
    names = [...options.names];
  } else {
    const entries = await readdir(dir, { withFileTypes: true });
    names = entries.filter((e) => e.isFile() && isRelevantFile(e.name)).map((e) => e.name);
  }
  names.sort();
  const sizes: number[] = [];
  for (const n of names) {
    try {
      sizes.push((await stat(join(dir, n))).size);
    } catch (e) {
      throw new LoadError({ file: join(dir, n), message: `cannot hash this file (${(e as NodeJS.ErrnoException).code ?? String(e)}).`, cause: e });
    }
  }
  const total = sizes.reduce((a, b) => a + b, 0);
  const files: FileDigest[] = [];
  let done = 0;
  for (const [i, name] of names.entries()) {
    options.signal?.throwIfAborted();
    const bytes = sizes[i]!;
    const sha256 = await hashStream(join(dir, name), bytes, done, total, options);
    done += bytes;
    files.push({ name, bytes, sha256 });
  }
  const combined = createHash('sha256')
    .update(files.map((f) => `${f.sha256}  ${f.name}\n`).join(''))
    .digest('hex');
  return { dir, files, combined };
}
