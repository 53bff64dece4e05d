// openCheckpoint and openAdapter on a worker of the 'inspect' pool, with a time limit
// and cancel: parsing user files (a 100 MB safetensors header, a hostile regex in
// adapter_config.json) never runs on the main thread of `serve` or the app. A worker that
// runs out of time or memory becomes a LoadError naming the folder.
import { resolve } from 'node:path';
import type { NativeModelConfig } from '../engine/native-types.js';
import { pool } from '../worker/pool.js';
import { WorkerCrashError, WorkerTimeoutError } from '../worker/errors.js';
import type { OpenedAdapter } from './adapter.js';
import type { CheckpointInfo } from './checkpoint.js';
import { LoadError } from './errors.js';

export interface OpenOptions {
  signal?: AbortSignal;
  /** Default OPEN_TIMEOUT_MS. */
  timeoutMs?: number;
}

/**
 * Config files and headers of a real checkpoint parse in well under a second; two minutes
 * leaves room for hundreds of shards on slow network storage.
 */
export const OPEN_TIMEOUT_MS = 120_000;

function explain(dir: string, what: string, e: unknown): unknown {
  if (e instanceof WorkerTimeoutError) {
    return new LoadError({ file: dir, message: `reading this ${what}'s files took longer than ${e.timeoutMs / 1000} s and was stopped; its config or headers are not those of a real ${what}.`, cause: e });
  }
  if (e instanceof WorkerCrashError) {
    return new LoadError({ file: dir, message: `reading this ${what}'s files failed: ${e.reason}; its config or headers declare sizes far beyond a real ${what}.`, cause: e });
  }
  return e;
}

export async function openCheckpointInWorker(dirIn: string, options: OpenOptions = {}): Promise<CheckpointInfo> {
  const dir = resolve(dirIn);
  try {
    return await pool('inspect').run('open-checkpoint', { dir }, { signal: options.signal, timeoutMs: options.timeoutMs ?? OPEN_TIMEOUT_MS });
  } catch (e) {
    throw explain(dir, 'checkpoint', e);
  }
}

export async function openAdapterInWorker(dirIn: string, base: NativeModelConfig, options: OpenOptions = {}): Promise<OpenedAdapter> {
  const dir = resolve(dirIn);
  try {
    return await pool('inspect').run('open-adapter', { dir, base }, { signal: options.signal, timeoutMs: options.timeoutMs ?? OPEN_TIMEOUT_MS });
  } catch (e) {
    throw explain(dir, 'adapter', e);
  }
}
