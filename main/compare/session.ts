// An engine session: the loaded base model, its tokenizer and adapters, kept across
// comparison runs so that a second run on the same model loads nothing again. The
// session also remembers file digests (keyed by path, size and mtime) so a 13 GB
// checkpoint is hashed once, not per run.
import fs from 'node:fs/promises';
import path from 'node:path';
import { loadAddon, type BackendChoice, type LoadedAddon } from '../engine/native-loader.js';
import { cancelTokenFor } from '../engine/cancel.js';
import type { NativeAdapter, NativeModel, NativeModelConfig } from '../engine/native-types.js';
import { openCheckpoint, type CheckpointInfo } from '../model/checkpoint.js';
import { openAdapter, type AdapterSummary } from '../model/adapter.js';
import { loadTokenizer, type LensTokenizer } from '../model/tokenizer.js';
import { sha256Dir, type DirDigest } from '../model/sha256.js';

/** The engine's compute dtype of weights, activations and KV caches. */
export type ComputeDtype = NonNullable<NativeModelConfig['dtype']>;

export interface LoadedModel {
  dir: string;
  checkpoint: CheckpointInfo;
  /** The compute dtype the model was loaded in. */
  dtype: ComputeDtype;
  native: NativeModel;
  digest: DirDigest;
}

export interface LoadedAdapter {
  dir: string;
  summary: AdapterSummary;
  native: NativeAdapter;
  digest: DirDigest;
  /** Layer → rank of v_proj's LoRA (0 where v_proj is not adapted). */
  vRanks: number[];
}

export interface LoadProgress {
  (what: string, done: number, total: number): void;
}

export class EngineSession {
  readonly engine: LoadedAddon;
  private model: LoadedModel | null = null;
  private readonly adapters = new Map<string, LoadedAdapter>();
  private readonly tokenizers = new Map<string, LensTokenizer>();
  private readonly digests = new Map<string, { stamp: string; digest: DirDigest }>();

  constructor(device: BackendChoice = 'auto') {
    this.engine = loadAddon(device);
  }

  /**
   * The loaded model for `dir` in compute dtype `dtype`, loading it (and dropping any
   * other model, or the same model in another dtype, and its adapters) when needed.
   * The CPU engine refuses any dtype but fp32 (the native load throws).
   */
  async loadModel(dirIn: string, signal?: AbortSignal, onProgress?: LoadProgress, dtype: ComputeDtype = 'fp32'): Promise<LoadedModel> {
    const dir = path.resolve(dirIn);
    const digest = await this.digest(dir, signal, (d, t) => onProgress?.('hashing model files', d, t));
    if (this.model && this.model.dir === dir && this.model.digest.combined === digest.combined && this.model.dtype === dtype) return this.model;
    this.disposeModel();
    const checkpoint = await openCheckpoint(dir, { signal });
    const native = await this.engine.addon.loadModel(
      { ...checkpoint.config.native, dtype },
      checkpoint.tensors,
      (d, t) => onProgress?.('loading weights', d, t),
      cancelTokenFor(this.engine.addon, signal),
    );
    this.model = { dir, checkpoint, dtype, native, digest };
    return this.model;
  }

  async loadAdapter(model: LoadedModel, dirIn: string, signal?: AbortSignal, onProgress?: LoadProgress): Promise<LoadedAdapter> {
    const dir = path.resolve(dirIn);
    const digest = await this.digest(dir, signal, (d, t) => onProgress?.('hashing adapter files', d, t));
    const hit = this.adapters.get(dir);
    if (hit && hit.digest.combined === digest.combined) return hit;
    hit?.native.dispose();
    this.adapters.delete(dir);
    const opened = await openAdapter(dir, model.checkpoint.config.native, { signal });
    const native = await model.native.loadAdapter(
      opened.spec,
      (d, t) => onProgress?.(`loading adapter ${opened.summary.name}`, d, t),
      cancelTokenFor(this.engine.addon, signal),
    );
    const vRanks = new Array<number>(model.checkpoint.config.native.numLayers).fill(0);
    for (const m of opened.summary.perModule) if (m.module === 'v_proj') vRanks[m.layer] = m.rank;
    const loaded: LoadedAdapter = { dir, summary: opened.summary, native, digest, vRanks };
    this.adapters.set(dir, loaded);
    return loaded;
  }

  async loadTokenizer(dirIn: string): Promise<LensTokenizer> {
    const dir = path.resolve(dirIn);
    let tok = this.tokenizers.get(dir);
    if (!tok) {
      tok = await loadTokenizer(dir);
      this.tokenizers.set(dir, tok);
    }
    return tok;
  }

  /** SHA-256 of a folder's relevant files, reusing the last result while no file changed. */
  async digest(dir: string, signal?: AbortSignal, onProgress?: (done: number, total: number) => void): Promise<DirDigest> {
    const stamp = await folderStamp(dir);
    const hit = this.digests.get(dir);
    if (hit && hit.stamp === stamp) return hit.digest;
    const digest = await sha256Dir(dir, { signal, onProgress });
    this.digests.set(dir, { stamp, digest });
    return digest;
  }

  private disposeModel(): void {
    for (const a of this.adapters.values()) a.native.dispose();
    this.adapters.clear();
    this.model?.native.dispose();
    this.model = null;
  }

  dispose(): void {
    this.disposeModel();
  }
}

/** Names, sizes and mtimes of a folder's files: changes whenever a file does. */
async function folderStamp(dir: string): Promise<string> {
  const entries = await fs.readdir(dir, { withFileTypes: true });
  const parts: string[] = [];
  for (const e of entries.filter((x) => x.isFile()).sort((a, b) => a.name.localeCompare(b.name))) {
    const st = await fs.stat(path.join(dir, e.name));
    parts.push(`${e.name}:${st.size}:${st.mtimeMs}`);
  }
  return parts.join('|');
}
