// The one place that loads the native addon. Everything else takes a NativeAddon.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { nativeBuildDir } from '../paths.js';
import type { NativeAddon } from './native-types.js';

const require = createRequire(import.meta.url);

export type BackendChoice = 'auto' | 'cpu' | 'cuda';

export interface LoadedAddon {
  addon: NativeAddon;
  /** Which build was loaded and, when it is not the one asked for, why. */
  backend: 'cpu' | 'cuda';
  fallbackReason: string | null;
}

const cache = new Map<string, NativeAddon>();

function requireAddon(file: string): NativeAddon {
  const hit = cache.get(file);
  if (hit) return hit;
  const addon = require(file) as NativeAddon;
  cache.set(file, addon);
  return addon;
}

/**
 * Loads the engine build for `choice`. Only the CPU build exists so far (the CUDA
 * build is the CUDA-backend issue's work): 'auto' therefore loads CPU and says why,
 * and 'cuda' fails loudly instead of falling back.
 */
export function loadAddon(choice: BackendChoice = 'auto'): LoadedAddon {
  const cpuFile = path.join(nativeBuildDir, 'adapterlens_cpu.node');
  const cudaFile = path.join(nativeBuildDir, 'adapterlens_cuda.node');
  if (choice !== 'cpu' && fs.existsSync(cudaFile)) {
    throw new Error('A CUDA build was found, but this version of AdapterLens cannot load it yet.');
  }
  if (choice === 'cuda') {
    throw new Error(
      `--device cuda: no CUDA build of the engine (${cudaFile} does not exist). ` +
        'Build on a machine with the CUDA toolkit and cuBLAS, or use --device cpu.',
    );
  }
  if (!fs.existsSync(cpuFile)) {
    throw new Error(`The engine is not built (${cpuFile} is missing). Run \`npm run build\` in ${path.dirname(path.dirname(path.dirname(cpuFile)))}.`);
  }
  return {
    addon: requireAddon(cpuFile),
    backend: 'cpu',
    fallbackReason: choice === 'auto' ? 'no CUDA build of the engine on this machine' : null,
  };
}
