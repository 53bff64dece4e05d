// The one place that loads the native addon. Everything else takes a NativeAddon.
//
// Two builds may exist: adapterlens_cpu.node (always) and adapterlens_cuda.node (where the
// toolkit had cuBLAS). The CUDA build is first loaded in a child process (the probe): a
// missing driver, a missing libcublas, a driver too old for the runtime or a GPU without
// free memory then costs a child, not this process, and the child's error says which.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { nativeBuildDir } from '../paths.js';
import { forgetProbe, keepProbe, probeKey, readKeptProbe } from './cuda-probe-cache.js';
import type { NativeAddon } from './native-types.js';

const require = createRequire(import.meta.url);

export type BackendChoice = 'auto' | 'cpu' | 'cuda';

export interface LoadedAddon {
  addon: NativeAddon;
  /** Which build was loaded and, when it is not the one asked for, why. */
  backend: 'cpu' | 'cuda';
  fallbackReason: string | null;
}

export interface CudaProbe {
  ok: boolean;
  /** The GPU (ok) or the reason the CUDA build cannot run here, in words. */
  detail: string;
}

const cache = new Map<string, NativeAddon>();
let probed: CudaProbe | null = null;

function requireAddon(file: string): NativeAddon {
  const hit = cache.get(file);
  if (hit) return hit;
  const addon = require(file) as NativeAddon;
  cache.set(file, addon);
  return addon;
}

/** Turns what the CUDA build said when it failed to start into a reason a person can act on. */
export function classifyCudaFailure(message: string): string {
  const m = message.replace(/\s+/g, ' ').trim();
  if (/libcublas/i.test(m) || /cuBLAS unavailable/i.test(m)) return `no cuBLAS: ${m}`;
  if (/libcuda\.so|no CUDA driver|CUDA driver version is insufficient/i.test(m) && !/too old/i.test(m)) return `no CUDA driver: ${m}`;
  if (/too old|insufficient/i.test(m)) return `CUDA driver too old: ${m}`;
  if (/no CUDA device|no CUDA-capable|cudaErrorNoDevice/i.test(m)) return `no CUDA device: ${m}`;
  if (/out of (device )?memory|cudaErrorMemoryAllocation/i.test(m)) return `out of GPU memory: ${m}`;
  if (/libcudart/i.test(m)) return `no CUDA runtime library: ${m}`;
  return `the CUDA build failed to start: ${m}`;
}

// Loads the CUDA build and asks it for its device, in a fresh process. Electron's binary
// behaves as Node with ELECTRON_RUN_AS_NODE.
const PROBE = `
try {
  const a = require(process.argv[1]);
  const i = a.info();
  process.stdout.write(JSON.stringify({ ok: true, detail: i.device }));
} catch (e) {
  process.stdout.write(JSON.stringify({ ok: false, detail: String((e && e.message) || e) }));
}`;

/** Whether the CUDA build starts on this machine (cached per process). */
export function probeCuda(cudaFile: string): CudaProbe {
  if (probed) return probed;
  const r = spawnSync(process.execPath, ['-e', PROBE, cudaFile], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
  });
  let result: CudaProbe;
  try {
    result = JSON.parse(r.stdout) as CudaProbe;
  } catch {
    const why = r.error ? r.error.message : r.signal ? `the probe process died (${r.signal})` : (r.stderr || `exit status ${r.status}`);
    result = { ok: false, detail: String(why) };
  }
  if (!result.ok) result = { ok: false, detail: classifyCudaFailure(result.detail) };
  probed = result;
  return result;
}

export interface LoadOptions {
  /**
   * Where a successful probe is kept (cuda-probe-cache.ts), e.g. in the data folder: a later
   * process on the same build, driver and devices then loads the CUDA build without probing.
   */
  probeCacheFile?: string;
}

/** The CUDA build in this process, without a probe (a kept success says it starts here). */
function loadKeptCuda(cudaFile: string, probeCacheFile: string): { addon: NativeAddon } | { reason: string } {
  try {
    const addon = requireAddon(cudaFile);
    addon.info();  // the CUDA context: fails here, as in the probe, where it cannot start now
    return { addon };
  } catch (e) {
    cache.delete(cudaFile);
    forgetProbe(probeCacheFile);
    return { reason: classifyCudaFailure(String((e as Error)?.message ?? e)) };
  }
}

/**
 * Loads the engine build for `choice`. 'auto' tries CUDA first (through the probe, or a kept
 * success of one) and falls back to CPU with the reason; 'cuda' fails loudly instead of
 * falling back; 'cpu' loads the CPU build. ADAPTERLENS_DEVICE (auto, cpu, cuda) overrides
 * 'auto' (tests).
 */
export function loadAddon(choice: BackendChoice = 'auto', options: LoadOptions = {}): LoadedAddon {
  const env = process.env.ADAPTERLENS_DEVICE;
  if (choice === 'auto' && (env === 'cpu' || env === 'cuda')) choice = env;
  const cpuFile = path.join(nativeBuildDir, 'adapterlens_cpu.node');
  const cudaFile = path.join(nativeBuildDir, 'adapterlens_cuda.node');
  let reason: string | null = null;
  if (choice !== 'cpu') {
    if (!fs.existsSync(cudaFile)) {
      reason = 'no CUDA build of the engine on this machine (built without a CUDA toolkit with cuBLAS)';
    } else {
      const key = options.probeCacheFile ? probeKey(cudaFile) : null;
      if (key && readKeptProbe(options.probeCacheFile!, key)) {
        const kept = loadKeptCuda(cudaFile, options.probeCacheFile!);
        if ('addon' in kept) return { addon: kept.addon, backend: 'cuda', fallbackReason: null };
        reason = kept.reason;
      } else {
        const p = probeCuda(cudaFile);
        if (p.ok) {
          if (key) keepProbe(options.probeCacheFile!, key, p);
          return { addon: requireAddon(cudaFile), backend: 'cuda', fallbackReason: null };
        }
        reason = p.detail;
      }
    }
    if (choice === 'cuda') {
      throw new Error(`--device cuda: ${reason}. Use --device cpu or --device auto.`);
    }
  }
  if (!fs.existsSync(cpuFile)) {
    throw new Error(`The engine is not built (${cpuFile} is missing). Run \`npm run build\` in ${path.dirname(path.dirname(path.dirname(cpuFile)))}.`);
  }
  return { addon: requireAddon(cpuFile), backend: 'cpu', fallbackReason: reason };
}
