// An engine session: the loaded base model, its tokenizer and adapters, kept across
// comparison runs so that a second run on the same model loads nothing again.
//
// Loading, in order:
//  1. the loader's own checks (config.json, headers, adapter_config.json and its regexes)
//     run on a worker thread (open-async.ts): a missing or broken folder is a LoadError
//     naming it, before anything is hashed or allocated;
//  2. the folder's identity (its files' stamps, dirIdentity) decides whether what is
//     loaded can be reused, and keys the run's caches, without reading a byte; it is
//     looked at first, so a run over unchanged folders opens nothing again;
//  3. the SHA-256 digests come from a DigestCache (digest-cache.ts) when every file's stamp
//     is unchanged; otherwise hashing starts (worker threads, shards in parallel) beside the
//     engine's weight load and goes on in the background: `digest` is a promise that only
//     the report awaits, so a first run on a 13 GB checkpoint prefills while it is hashed.
//     A hash that fails (a file changed while it was read) fails the run at its report and
//     makes the next run load the folder again.
//
// Adapters live in the cache manager as entries of kind 'adapter', so their bytes count in
// the budget, least recently used ones are evicted (by the budget and beyond
// maxLoadedAdapters), and cache.clear frees them. The adapters a run uses stay pinned
// until the run ends: releaseRunHolds(), or the next loadModel (each run starts with one).
import { createHash } from 'node:crypto';
import path from 'node:path';
import { CacheManager, type CacheResource, type Lease } from '../cache/cache-manager.js';
import { cancellationError, isCancellation } from '../cancellation.js';
import { loadAddon, type BackendChoice, type LoadedAddon } from '../engine/native-loader.js';
import { cancelTokenFor } from '../engine/cancel.js';
import type { NativeAdapter, NativeModel, NativeModelConfig } from '../engine/native-types.js';
import type { CheckpointInfo } from '../model/checkpoint.js';
import type { AdapterSummary } from '../model/adapter.js';
import { DigestCache } from '../model/digest-cache.js';
import { DigestJobs, type DigestJob, type DigestPrefetch } from '../model/digest-jobs.js';
import { openAdapterInWorker, openCheckpointInWorker } from '../model/open-async.js';
import { TokenizerHandle } from '../model/tokenizer-handle.js';
import { tokenizerSummaryInWorker } from '../model/tokenize-async.js';
import type { TokenizerSummary } from '../model/tokenizer.js';
import { dirIdentity, type DirDigest } from '../model/sha256.js';
import { checkTokenizerVocab } from '../model/tokenizer-vocab.js';

/** The engine's compute dtype of weights, activations and KV caches. */
export type ComputeDtype = NonNullable<NativeModelConfig['dtype']>;

export interface LoadedModel {
  dir: string;
  checkpoint: CheckpointInfo;
  /** The compute dtype the model was loaded in. */
  dtype: ComputeDtype;
  native: NativeModel;
  /** The folder's files as loaded (stamps): keys this model's caches. */
  identity: string;
  /** SHA-256 of the files, for the report: settles in the background (see the file's head). */
  digest: Promise<DirDigest>;
}

export interface LoadedAdapter {
  dir: string;
  summary: AdapterSummary;
  native: NativeAdapter;
  /** The folder's files as loaded (stamps): keys this adapter's caches. */
  identity: string;
  /** SHA-256 of the files, for the report: settles in the background. */
  digest: Promise<DirDigest>;
  /** Layer → rank of v_proj's LoRA (0 where v_proj is not adapted). */
  vRanks: number[];
}

export interface LoadProgress {
  (what: string, done: number, total: number): void;
}

export interface SessionOptions {
  /**
   * The cache manager whose budget the loaded adapters count in (the one the runs use).
   * Without one the session keeps a private manager with no byte budget.
   */
  cache?: CacheManager;
  /** Digests that survive restarts (DigestCache.inDataDir); by default they last as long as the session. */
  digestCache?: DigestCache;
  /**
   * The folder hashing to join (made before the session, to start a run's hashing before the
   * engine starts up: start-session.ts); its cache is the session's digest cache.
   */
  digestJobs?: DigestJobs;
  /** Loaded adapters kept beyond those a run holds (least recently used go first). Default 16. */
  maxLoadedAdapters?: number;
  /** Where a successful CUDA probe is kept across restarts (native-loader.ts); none: every start probes. */
  probeCacheFile?: string;
}

interface AdapterSlot {
  key: string;
  loaded: LoadedAdapter;
  /** The model it was loaded into. */
  model: LoadedModel;
}

export class EngineSession {
  readonly engine: LoadedAddon;
  /** Folder digests being computed, by folder: one hashing per folder however many ask. */
  readonly digests: DigestJobs;
  private readonly cache: CacheManager;
  private readonly ownsCache: boolean;
  private readonly maxLoadedAdapters: number;
  private model: LoadedModel | null = null;
  /** By folder, least recently used first. */
  private readonly adapters = new Map<string, AdapterSlot>();
  /** Pins on the adapters the current run uses. */
  private runHolds = new Set<Lease<CacheResource>>();
  /** By folder, with the workers' summary each was made from (a new one when the folder changed). */
  private readonly tokenizers = new Map<string, { summary: TokenizerSummary; handle: TokenizerHandle }>();
  /** Digests that failed: what was loaded from those folders is not reused. */
  private readonly failedDigests = new WeakSet<Promise<DirDigest>>();

  constructor(device: BackendChoice = 'auto', options: SessionOptions = {}) {
    this.engine = loadAddon(device, { probeCacheFile: options.probeCacheFile });
    this.ownsCache = !options.cache;
    this.cache = options.cache ?? new CacheManager({ budgetBytes: Number.MAX_SAFE_INTEGER });
    if (options.digestJobs && options.digestCache && options.digestJobs.cache !== options.digestCache) {
      throw new Error('EngineSession: digestJobs and digestCache name two digest caches');
    }
    this.digests = options.digestJobs ?? new DigestJobs(options.digestCache ?? new DigestCache(null));
    this.maxLoadedAdapters = options.maxLoadedAdapters ?? 16;
  }

  /**
   * The loaded model for `dir` in compute dtype `dtype`, loading it (and dropping any
   * other model, or the same model in another dtype, and its adapters) when needed.
   * The CPU engine refuses any dtype but fp32 (the native load throws). Each call starts a
   * new run as far as adapter pins go: the previous run's adapters become evictable.
   */
  async loadModel(dirIn: string, signal?: AbortSignal, onProgress?: LoadProgress, dtype: ComputeDtype = 'fp32'): Promise<LoadedModel> {
    const dir = path.resolve(dirIn);
    this.releaseRunHolds();
    // The model loaded now (read after each wait: another load may have replaced it), if it is
    // this folder's files as they are.
    const reusable = (identity: string | null): LoadedModel | null => {
      const current = this.model;
      return current && current.dir === dir && current.dtype === dtype && current.identity === identity && !this.failedDigests.has(current.digest) ? current : null;
    };
    // Files unchanged since the model was loaded: nothing to open again (a worker's round trip
    // on every run). A folder that cannot be listed falls through to the loader's own check.
    const early = reusable(await dirIdentity(dir).catch(() => null));
    if (signal?.aborted) throw cancellationError();  // as the worker's open would have
    if (early) return early;
    const checkpoint = await openCheckpointInWorker(dir, { signal });
    const identity = await dirIdentity(dir);
    const same = reusable(identity);
    if (same) return same;
    this.disposeModel(dir);
    const digest = this.backgroundDigest(dir, 'hashing model files', onProgress);
    const native = await loadWhileHashing(signal, digest, (sig) =>
      this.engine.addon.loadModel(
        { ...checkpoint.config.native, dtype },
        checkpoint.tensors,
        (d, t) => onProgress?.('loading weights', d, t),
        cancelTokenFor(this.engine.addon, sig),
      ),
    );
    this.model = { dir, checkpoint, dtype, native, identity, digest: digest.promise };
    return this.model;
  }

  /**
   * The model folder's config and tensor index: the loaded model's own when the folder's
   * files are unchanged since it was loaded, else read again on a worker (the loader's checks).
   */
  async openCheckpoint(dirIn: string, signal?: AbortSignal): Promise<CheckpointInfo> {
    const dir = path.resolve(dirIn);
    const current = this.model;
    const unchanged = current && current.dir === dir && current.identity === (await dirIdentity(dir).catch(() => null));
    if (signal?.aborted) throw cancellationError();
    if (unchanged) return current.checkpoint;
    return openCheckpointInWorker(dir, { signal });
  }

  async loadAdapter(model: LoadedModel, dirIn: string, signal?: AbortSignal, onProgress?: LoadProgress): Promise<LoadedAdapter> {
    const dir = path.resolve(dirIn);
    const reusable = (identity: string | null): AdapterSlot | null => {
      const hit = this.adapters.get(dir);
      return hit && hit.model === model && identity === hit.loaded.identity && !this.failedDigests.has(hit.loaded.digest) && this.cache.has(hit.key) ? hit : null;
    };
    // As loadModel: files unchanged since this adapter was loaded into this model need no new open.
    const early = reusable(await dirIdentity(dir).catch(() => null));
    if (signal?.aborted) throw cancellationError();
    if (early) {
      await this.hold(early);
      return early.loaded;
    }
    const opened = await openAdapterInWorker(dir, model.checkpoint.config.native, { signal });
    const identity = await dirIdentity(dir);
    const hit = this.adapters.get(dir);
    const same = reusable(identity);
    if (same) {
      await this.hold(same);
      return same.loaded;
    }
    if (hit) this.forget(hit);
    const digest = this.backgroundDigest(dir, 'hashing adapter files', onProgress);
    const native = await loadWhileHashing(signal, digest, (sig) =>
      model.native.loadAdapter(
        opened.spec,
        (d, t) => onProgress?.(`loading adapter ${opened.summary.name}`, d, t),
        cancelTokenFor(this.engine.addon, sig),
      ),
    );
    if (this.model !== model) {
      // The model was replaced while this adapter loaded into it.
      native.dispose();
      throw cancellationError();
    }
    const vRanks = new Array<number>(model.checkpoint.config.native.numLayers).fill(0);
    for (const m of opened.summary.perModule) if (m.module === 'v_proj') vRanks[m.layer] = m.rank;
    const loaded: LoadedAdapter = { dir, summary: opened.summary, native, identity, digest: digest.promise, vRanks };
    const slot: AdapterSlot = { key: adapterKey(model, loaded), loaded, model };
    this.adapters.set(dir, slot);
    await this.hold(slot, native);
    this.trimAdapters();
    return loaded;
  }

  /**
   * Unpins the adapters the current run holds: they stay loaded, counted in the cache
   * budget, until the budget, the adapter bound or cache.clear evicts them. Called when a
   * run ends (AppService, the CLI); the next loadModel does it too.
   */
  releaseRunHolds(): void {
    const holds = this.runHolds;
    this.runHolds = new Set();
    for (const lease of holds) lease.release();
  }

  /** Loaded adapters (tests, diagnostics). */
  loadedAdapterCount(): number {
    return this.adapters.size;
  }

  /**
   * The tokenizer of `dirIn`, loaded and checked on a worker thread (time-limited); the main
   * thread keeps only its summary (tokenizer-handle.ts). With a model loaded, a tokenizer whose
   * ids go beyond the model's vocabulary is refused now rather than failing at prefill.
   */
  async loadTokenizer(dirIn: string, signal?: AbortSignal): Promise<TokenizerHandle> {
    const dir = path.resolve(dirIn);
    // The same summary object while the folder's files are unchanged (tokenize-async.ts).
    const summary = await tokenizerSummaryInWorker(dir, { signal });
    let kept = this.tokenizers.get(dir);
    if (!kept || kept.summary !== summary) {
      if (this.tokenizers.size >= 8) this.tokenizers.clear();
      kept = { summary, handle: new TokenizerHandle(summary) };
      this.tokenizers.set(dir, kept);
    }
    const model = this.model;
    if (model) checkTokenizerVocab(kept.handle, { configFile: model.checkpoint.config.file, vocabSize: model.checkpoint.config.native.vocabSize });
    return kept.handle;
  }

  /**
   * SHA-256 of a folder's relevant files; files whose stamp is unchanged are not read again
   * (DigestCache), and a folder being hashed already (the model's, in the background) is
   * waited for rather than read a second time. `signal` stops the wait, not that hashing.
   */
  digest(dirIn: string, signal?: AbortSignal): Promise<DirDigest> {
    return this.digests.digest(dirIn, signal);
  }

  /**
   * Starts hashing these folders now, ahead of their loads (which join the jobs): on a first
   * run the SHA-256 of the largest shard, one core's work, is the longest job, so it begins
   * before the preflight rather than after it. Until `release()` (the caller's loads are
   * done), stopping `signal` stops these jobs too; after it, a digest is the loaded model's or
   * adapter's and goes on as any other.
   */
  prefetchDigests(dirs: string[], signal?: AbortSignal): DigestPrefetch {
    const prefetch = this.digests.prefetch(dirs, signal);
    for (const job of prefetch.jobs) job.promise.catch(() => this.failedDigests.add(job.promise));
    return prefetch;
  }

  /**
   * The folder's digest as a background job: known digests at once; otherwise hashing starts
   * now and `onProgress` hears of it until `detach()` (the load it ran beside has returned).
   */
  private backgroundDigest(dir: string, what: string, onProgress?: LoadProgress): DigestJob & { detach(): void } {
    let listening = true;
    const job = this.digests.start(dir);
    const off = job.listen((d, t) => {
      if (listening) onProgress?.(what, d, t);
    });
    job.promise.catch(() => this.failedDigests.add(job.promise));
    return {
      ...job,
      detach: () => {
        listening = false;
        off();
      },
    };
  }

  /** Pins `slot`'s cache entry for the current run, creating the entry from `native` when it is new. */
  private async hold(slot: AdapterSlot, native?: NativeAdapter): Promise<void> {
    let disposed = false;
    const resource: CacheResource | null = native
      ? {
          bytes: native.bytes,
          dispose: () => {
            if (disposed) return;
            disposed = true;
            native.dispose();
            if (this.adapters.get(slot.loaded.dir) === slot) this.adapters.delete(slot.loaded.dir);
          },
        }
      : null;
    if (!resource) {
      // Re-pinning a loaded adapter: its entry must still be cached (acquire is then a hit and creates nothing).
      if (!this.cache.has(slot.key)) throw new Error(`adapter ${slot.loaded.dir} is no longer loaded`);
    }
    const create = async (): Promise<CacheResource> => resource ?? { bytes: 0, dispose: () => {} };
    let lease: Lease<CacheResource>;
    try {
      lease = await this.cache.acquire(slot.key, 'adapter', `adapter ${slot.loaded.summary.name}`, create);
    } catch (e) {
      resource?.dispose();
      throw e;
    }
    if (resource && lease.hit) resource.dispose(); // an entry of that key existed already (not expected)
    this.runHolds.add(lease);
    // Most recently used last.
    this.adapters.delete(slot.loaded.dir);
    if (this.cache.has(slot.key)) this.adapters.set(slot.loaded.dir, slot);
  }

  /** Evicts least recently used adapters beyond maxLoadedAdapters (pinned ones are retired, freed at release). */
  private trimAdapters(): void {
    const excess = this.adapters.size - this.maxLoadedAdapters;
    if (excess <= 0) return;
    const pinned = new Set([...this.runHolds].map((l) => l.key));
    let n = excess;
    for (const slot of [...this.adapters.values()]) {
      if (n <= 0) break;
      if (pinned.has(slot.key)) continue;
      this.forget(slot);
      n--;
    }
  }

  private forget(slot: AdapterSlot): void {
    if (this.adapters.get(slot.loaded.dir) === slot) this.adapters.delete(slot.loaded.dir);
    this.cache.evict(slot.key);
  }

  /** Drops the model and its adapters; `reloading`'s hashing (the same files in another dtype) goes on. */
  private disposeModel(reloading?: string): void {
    this.releaseRunHolds();
    // Hashing for what is dropped is wasted work (a later load of the folder starts again).
    this.digests.abortAll(reloading);
    for (const slot of [...this.adapters.values()]) this.forget(slot);
    this.adapters.clear();
    this.model?.native.dispose();
    this.model = null;
  }

  dispose(): void {
    this.disposeModel();
    if (this.ownsCache) this.cache.dispose();
  }
}

function adapterKey(model: LoadedModel, adapter: LoadedAdapter): string {
  return createHash('sha256').update(`adapterlens.adapter/2\n${model.identity}@${model.dtype}\n${adapter.dir}\n${adapter.identity}`).digest('hex');
}

/**
 * Loads beside the folder's hashing and returns what was loaded without waiting for the
 * digest. A hash that fails during the load stops it (a folder that cannot be read is
 * reported as such); once loaded, the hash goes on alone and only the report waits for it.
 * A failed or cancelled load stops the hashing it started.
 */
async function loadWhileHashing<N>(signal: AbortSignal | undefined, digest: DigestJob & { detach(): void }, load: (signal: AbortSignal) => Promise<N>): Promise<N> {
  const controller = new AbortController();
  const onAbort = (): void => controller.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  let hashError: unknown = null;
  digest.promise.catch((e: unknown) => {
    hashError = e;
    controller.abort();
  });
  try {
    if (signal?.aborted) throw cancellationError();
    return await load(controller.signal);
  } catch (e) {
    digest.abort();
    if (signal?.aborted) throw cancellationError();
    // The load was stopped by the hash's failure: that failure is the one to report.
    throw hashError !== null && !isCancellation(hashError) ? hashError : e;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    digest.detach();
  }
}
