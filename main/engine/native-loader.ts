// The one place that loads the native addon. Everything else takes a NativeAddon.
//
// Two builds may exist: adapterlens_cpu.node (always) and adapterlens_cuda.node (where the
// toolkit had cuBLAS). The CUDA build is first loaded in a child process (the probe): a
// missing driver, a missing libcublas, a driver too old for the runtime or a GPU without
// free memory then costs a child, not this process, and the child's error says which.
// prepareAddon runs that probe without holding this thread (the app and `serve` go on
// answering while a child starts CUDA), so the loadAddon after it only loads.
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
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
/** Probes done in this process, by build file. */
const probed = new Map<string, CudaProbe>();
/** Probes under way (prepareAddon), by build file: one child however many ask. */
const probing = new Map<string, Promise<CudaProbe>>();
/** Why a build's start() failed in this process, by build file: loadAddon says so without starting it again here. */
const startFailures = new Map<string, string>();

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

const PROBE_TIMEOUT_MS = 120_000;

/** What a probe child said, or why it said nothing, as a CudaProbe. */
function probeOutcome(stdout: string, failure: () => string): CudaProbe {
  let result: CudaProbe;
  try {
    result = JSON.parse(stdout) as CudaProbe;
  } catch {
    result = { ok: false, detail: failure() };
  }
  return result.ok ? result : { ok: false, detail: classifyCudaFailure(result.detail) };
}

function probeArgs(cudaFile: string): [string, string[], { env: NodeJS.ProcessEnv }] {
  return [process.execPath, ['-e', PROBE, cudaFile], { env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' } }];
}

/** Whether the CUDA build starts on this machine (once per process and build), waiting for the child here. */
export function probeCuda(cudaFile: string): CudaProbe {
  const known = probed.get(cudaFile);
  if (known) return known;
  const [cmd, args, opts] = probeArgs(cudaFile);
  const r = spawnSync(cmd, args, { ...opts, encoding: 'utf8', timeout: PROBE_TIMEOUT_MS });
  const result = probeOutcome(r.stdout, () => String(r.error ? r.error.message : r.signal ? `the probe process died (${r.signal})` : (r.stderr || `exit status ${r.status}`)));
  probed.set(cudaFile, result);
  return result;
}

/** probeCuda without holding this thread: the child is awaited, and loadAddon then finds its answer. */
export function probeCudaAsync(cudaFile: string): Promise<CudaProbe> {
  const known = probed.get(cudaFile);
  if (known) return Promise.resolve(known);
  let running = probing.get(cudaFile);
  if (running) return running;
  running = new Promise<CudaProbe>((resolve) => {
    const done = (result: CudaProbe): void => {
      probed.set(cudaFile, result);
      probing.delete(cudaFile);
      resolve(result);
    };
    try {
      const [cmd, args, opts] = probeArgs(cudaFile);
      const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      let spawnError: Error | null = null;
      let timedOut = false;
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, PROBE_TIMEOUT_MS);
      child.on('error', (e) => (spawnError = e));
      child.on('close', (status, signal) => {
        clearTimeout(timer);
        done(probeOutcome(stdout, () => {
          if (spawnError) return spawnError.message;
          if (timedOut) return `the probe process did not answer within ${PROBE_TIMEOUT_MS / 1000} s`;
          return signal ? `the probe process died (${signal})` : stderr || `exit status ${status}`;
        }));
      });
    } catch (e) {
      // No child at all (e.g. out of file descriptors): a failed probe, as spawnSync's error would be.
      done(probeOutcome('', () => String((e as Error)?.message ?? e)));
    }
  });
  probing.set(cudaFile, running);
  return running;
}

export interface LoadOptions {
  /**
   * Where a successful probe is kept (cuda-probe-cache.ts), e.g. in the data folder: a later
   * process on the same build, driver and devices then loads the CUDA build without probing.
   */
  probeCacheFile?: string;
}

/**
 * The CUDA build in this process, its device started (after a probe, or a kept success of
 * one). A failure here forgets the kept probe: the next start probes again.
 */
function startCuda(cudaFile: string, probeCacheFile: string | undefined): { addon: NativeAddon } | { reason: string } {
  const failed = startFailures.get(cudaFile);
  if (failed) {
    if (probeCacheFile) forgetProbe(probeCacheFile);
    return { reason: failed };
  }
  try {
    const addon = requireAddon(cudaFile);
    addon.info();  // the CUDA context (started already after prepareAddon): fails here, as in the probe, where it cannot start now
    return { addon };
  } catch (e) {
    cache.delete(cudaFile);
    if (probeCacheFile) forgetProbe(probeCacheFile);
    return { reason: classifyCudaFailure(String((e as Error)?.message ?? e)) };
  }
}

function effectiveChoice(choice: BackendChoice): BackendChoice {
  const env = process.env.ADAPTERLENS_DEVICE;
  return choice === 'auto' && (env === 'cpu' || env === 'cuda') ? env : choice;
}

function buildFiles(): { cpuFile: string; cudaFile: string } {
  return { cpuFile: path.join(nativeBuildDir, 'adapterlens_cpu.node'), cudaFile: path.join(nativeBuildDir, 'adapterlens_cuda.node') };
}

/**
 * What loadAddon(choice, options) would wait for, done now without holding this thread: the
 * CUDA probe (a child) where there is a CUDA build and no kept success of one, then the
 * build's device started in this process on a libuv thread (addon.start). Never throws: a
 * failure is loadAddon's to report. Only the build's dlopen stays on this thread.
 */
export async function prepareAddon(choiceIn: BackendChoice = 'auto', options: LoadOptions = {}): Promise<void> {
  const choice = effectiveChoice(choiceIn);
  const { cudaFile } = buildFiles();
  if (choice === 'cpu' || !fs.existsSync(cudaFile)) return;
  const key = options.probeCacheFile ? probeKey(cudaFile) : null;
  if (!(key && readKeptProbe(options.probeCacheFile!, key)) && !(await probeCudaAsync(cudaFile)).ok) return;
  try {
    await requireAddon(cudaFile).start();
  } catch (e) {
    // loadAddon says why, without starting the device again on this thread.
    startFailures.set(cudaFile, classifyCudaFailure(String((e as Error)?.message ?? e)));
  }
}

/**
 * Loads the engine build for `choice`. 'auto' tries CUDA first (through the probe, or a kept
 * success of one) and falls back to CPU with the reason; 'cuda' fails loudly instead of
 * falling back; 'cpu' loads the CPU build. ADAPTERLENS_DEVICE (auto, cpu, cuda) overrides
 * 'auto' (tests).
 */
export function loadAddon(choiceIn: BackendChoice = 'auto', options: LoadOptions = {}): LoadedAddon {
  const choice = effectiveChoice(choiceIn);
  const { cpuFile, cudaFile } = buildFiles();
  let reason: string | null = null;
  if (choice !== 'cpu') {
    if (!fs.existsSync(cudaFile)) {
      reason = 'no CUDA build of the engine on this machine (built without a CUDA toolkit with cuBLAS)';
    } else {
      const key = options.probeCacheFile ? probeKey(cudaFile) : null;
      const kept = key !== null && readKeptProbe(options.probeCacheFile!, key) !== null;
      const p = kept ? null : probeCuda(cudaFile);
      if (p && !p.ok) {
        reason = p.detail;
      } else {
        if (p && key) keepProbe(options.probeCacheFile!, key, p);
        const started = startCuda(cudaFile, options.probeCacheFile);
        if ('addon' in started) return { addon: started.addon, backend: 'cuda', fallbackReason: null };
        reason = started.reason;
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
