// A CUDA probe that succeeded, kept in the data folder (native-loader.ts). The probe starts a
// second Node, loads the CUDA build there and makes a CUDA context: most of a second of every
// fresh start on a GPU machine, spent before the work. The next process on the same CUDA
// build of the engine, the same driver and the same visible devices loads the build without
// it. Only successes are kept (a fixed driver or a freed GPU is seen at once), and a kept
// success that no longer holds falls back as a failed probe would.
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomicSync } from '../files/atomic-write.js';
import { stampKey } from '../model/file-stamp.js';
import type { CudaProbe } from './native-loader.js';

/** Where Linux's NVIDIA driver says which version it is. */
export const NVIDIA_DRIVER_VERSION_FILE = '/proc/driver/nvidia/version';

/** The file's name in a data folder. */
export function probeCacheIn(dataDir: string): string {
  return path.join(dataDir, 'cuda-probe.json');
}

interface KeptProbe {
  key: string;
  detail: string;
}

/**
 * What a kept probe is valid for: the CUDA build's file stamp, the driver's version text and
 * the devices the process may see. Null where the driver's version cannot be read (then every
 * start probes).
 */
export function probeKey(cudaFile: string, env: NodeJS.ProcessEnv = process.env, driverFile = NVIDIA_DRIVER_VERSION_FILE): string | null {
  let driver: string;
  let build: string;
  try {
    driver = fs.readFileSync(driverFile, 'utf8').trim();
    build = stampKey(fs.statSync(cudaFile));
  } catch {
    return null;
  }
  if (!driver) return null;
  return JSON.stringify([build, driver, env.CUDA_VISIBLE_DEVICES ?? null, env.CUDA_DEVICE_ORDER ?? null]);
}

/** The kept success for `key`, or null (none, another key, or an unreadable file). */
export function readKeptProbe(file: string, key: string): CudaProbe | null {
  try {
    const kept = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<KeptProbe>;
    if (kept.key !== key || typeof kept.detail !== 'string') return null;
    return { ok: true, detail: kept.detail };
  } catch {
    return null;
  }
}

/** Keeps a success under `key` (a failure is not kept). Never throws: the cache is an optimisation. */
export function keepProbe(file: string, key: string, probe: CudaProbe): void {
  if (!probe.ok) return;
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    writeFileAtomicSync(file, JSON.stringify({ key, detail: probe.detail } satisfies KeptProbe));
  } catch {
    // a read-only data folder: the next start probes again
  }
}

/** Drops a kept success that no longer holds. Never throws. */
export function forgetProbe(file: string): void {
  try {
    fs.rmSync(file, { force: true });
  } catch {
    // nothing kept, or nothing that can be removed
  }
}
