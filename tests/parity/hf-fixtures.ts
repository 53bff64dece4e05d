// Reads what tests/reference/make_fixtures.py wrote: the manifest and the per-case
// reference tensors (logits, every layer's K and V, fp32).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeToFloat32, readSafetensorsHeader, readTensorBytes, weightRef } from '../../main/model/safetensors.js';

export const fixturesDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');

export interface StrategyReference {
  layers: { kRelErr: number; vRelErr: number; outsideSpan?: number | null }[];
  generation: { newTokens: number[]; minMargin: number };
}

export interface ReferenceCase {
  id: string;
  model: string;
  adapter: string | null;
  documentTokens: number[];
  promptTokens: number[];
  logitsPositions: number[];
  tensors: string;
  greedy: { newTokens: number[]; minMargin: number };
  strategies?: Record<'exact' | 'base' | 'seed-minikv' | 'lragent', StrategyReference>;
}

export interface Manifest {
  generator: Record<string, string>;
  documentText: string;
  promptText: string;
  tokenizer: { text: string; withSpecial: number[]; withoutSpecial: number[]; decoded: string }[];
  models: Record<string, { dir: string; adapters: Record<string, string> }>;
  cases: ReferenceCase[];
}

export function readManifest(): Manifest {
  return JSON.parse(fs.readFileSync(path.join(fixturesDir, 'reference', 'manifest.json'), 'utf8')) as Manifest;
}

export function modelDir(m: Manifest, model: string): string {
  return path.join(fixturesDir, m.models[model]!.dir);
}

export function adapterDir(m: Manifest, model: string, adapter: string): string {
  return path.join(fixturesDir, m.models[model]!.adapters[adapter]!);
}

/** Every tensor of a case's reference file, as fp32 with its shape. */
export async function readReferenceTensors(c: ReferenceCase): Promise<Map<string, { data: Float32Array; shape: number[] }>> {
  const file = path.join(fixturesDir, c.tensors);
  const header = await readSafetensorsHeader(file);
  const out = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const [name, entry] of header.entries) {
    const ref = weightRef(header, entry);
    out.set(name, { data: decodeToFloat32(await readTensorBytes(ref), ref.dtype), shape: ref.shape });
  }
  return out;
}

/** ‖a − b‖₂ / ‖b‖₂ in double precision. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let d = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]! - b[i]!;
    d += x * x;
    n += b[i]! * b[i]!;
  }
  return Math.sqrt(d / n);
}
