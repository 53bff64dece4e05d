// The typed surface of the native addon (native/src/addon/). This file is the
// contract between the C++ engine and the Node side: every shape and unit named
// here is what the addon accepts and returns. Only main/engine/ imports the addon.

/** Dtypes a checkpoint may store; the engine converts them to its compute dtype at load. */
export type StoredDType = 'F32' | 'F16' | 'BF16';

/** One tensor inside a safetensors file, located by the TS side (which parsed the header). */
export interface NativeTensorRef {
  /** HF name, e.g. "model.layers.3.self_attn.q_proj.weight" (for adapters: "a"/"b" role is in the module entry). */
  name: string;
  /** Absolute path of the .safetensors file. */
  file: string;
  /** Absolute byte offset of the tensor's first byte in the file (8 + header length + data_offsets[0]). */
  offset: number;
  /** Byte length (data_offsets[1] - data_offsets[0]). */
  nbytes: number;
  dtype: StoredDType;
  /** Row-major shape as stored, e.g. [out_features, in_features] for a Linear weight. */
  shape: number[];
}

/** RoPE frequency scaling, already resolved from config.json by the TS side. */
export type NativeRopeScaling =
  | { type: 'default' }
  | { type: 'linear'; factor: number }
  | {
      type: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositionEmbeddings: number;
    };

/** Every size the forward pass needs; nothing is hard-coded in the engine. */
export interface NativeModelConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: NativeRopeScaling;
  maxPositionEmbeddings: number;
  /** When true, lm_head reuses model.embed_tokens.weight and no lm_head tensor is passed. */
  tieWordEmbeddings: boolean;
  /**
   * Compute dtype of weights, activations and KV caches (default 'fp32'). The CPU build
   * computes in fp32 only and refuses the others; the CUDA build takes all three.
   */
  dtype?: 'fp32' | 'bf16' | 'fp16';
  /** q/k/v projections carry biases (Qwen2). */
  attentionBias: boolean;
}

export type LoraModuleName = 'q_proj' | 'k_proj' | 'v_proj' | 'o_proj' | 'gate_proj' | 'up_proj' | 'down_proj';

/** One adapted Linear: y = W x + scale * B (A x). */
export interface NativeLoraModule {
  layer: number;
  module: LoraModuleName;
  rank: number;
  /** alpha / r, or alpha / sqrt(r) for rsLoRA, with alpha_pattern / rank_pattern already applied. */
  scale: number;
  /** lora_A.weight, shape [rank, in_features]. */
  a: NativeTensorRef;
  /** lora_B.weight, shape [out_features, rank]. */
  b: NativeTensorRef;
}

export interface NativeAdapterSpec {
  modules: NativeLoraModule[];
}

/** (done, total) in the unit the call names: bytes for loads, tokens for prefill. */
export type ProgressCallback = (done: number, total: number) => void;

/** Cancellation flag shared with a running native job. */
export interface NativeCancelToken {
  cancel(): void;
  readonly cancelled: boolean;
}

export interface NativeSampling {
  /** 0 means greedy (argmax; ties resolve to the lowest token id, as torch.argmax does). */
  temperature: number;
  /** Nucleus mass in (0, 1]; 1 disables top-p. */
  topP: number;
  /** Sampling is a pure function of (seed, cache length), so runs reproduce exactly. */
  seed: number;
}

export interface NativeDecodeSequence {
  cache: NativeKvCache;
  adapter: NativeAdapter | null;
  /** The token fed at position cache.length; its K/V are appended to the cache. */
  token: number;
  sampling: NativeSampling;
}

export interface NativeDecodeResult {
  /** Next token per sequence, in input order. */
  tokens: Int32Array;
  /** The model's own probability of each chosen token (softmax of its logits at temperature 1), computed where the logits are. */
  probs: Float32Array;
  /** [batch, vocab] logits of the fed tokens, when requested. */
  logits: Float32Array | null;
}

export interface NativePrefillOptions {
  /** Tokens per forward chunk (progress and cancel are checked between chunks). */
  chunkSize: number;
  /** Which logits to return: none, the last position's [vocab], or all positions' [tokens, vocab]. */
  logits: 'none' | 'last' | 'all';
  /**
   * Keep, per layer whose v_proj the adapter adapts, the adapter's own low-rank V input
   * s·A_v·x ([tokens, r_v]) on the cache: what the `lragent` strategy stores.
   */
  captureLoraV?: boolean;
}

/**
 * A KV cache: per layer K (after RoPE) and V, each [numKvHeads, capacity, headDim] in the
 * compute dtype on the engine's device. A view (model.newView) reads its first positions from
 * a shared cache through a store's correction without copying them; it holds only later ones.
 */
export interface NativeKvCache {
  readonly length: number;
  readonly capacity: number;
  /** Bytes this cache holds. */
  readonly bytes: number;
  /** Copy of one layer, both [numKvHeads, length, headDim] row-major (HF's cache layout without batch). */
  readLayer(layer: number): { k: Float32Array; v: Float32Array };
  /** Replace one layer's first `tokens` positions (arrays [numKvHeads, tokens, headDim]); length becomes `tokens` for every layer written. */
  writeLayer(layer: number, k: Float32Array, v: Float32Array, tokens: number): void;
  /** A deep copy with its own capacity (>= length). */
  fork(capacity: number): NativeKvCache;
  /** Forget positions >= length. */
  truncate(length: number): void;
  dispose(): void;
}

/**
 * How a strategy turns (base cache, exact cache, adapter) into a compact store.
 * `exact` needs no store (the exact cache is the reference) and is not listed.
 * hybrid's layers are chosen on the TS side (from seed-minikv's per-layer errors).
 */
export type NativeStrategySpec =
  | { kind: 'base' }
  | { kind: 'seed-minikv' }
  | { kind: 'lragent' }
  | { kind: 'delta-int8' }
  | { kind: 'delta-int4' }
  | { kind: 'lowrank'; rank: number }
  | { kind: 'hybrid'; exactLayers: number[] }
  /**
   * ΔK (before RoPE) and ΔV of every layer in principal bases of their own, components'
   * coefficients quantized with bits allocated under a budget of `bitsPerValue` bits per cached
   * value (everything the store holds counted). `weights` (2 per layer: K then V; default all 1)
   * scale each part's squared error in the allocation: measured KL per unit of squared error.
   * `exactParts` (part 2·layer + 0 for K, 1 for V) are kept exactly, outside the budget (probes).
   */
  | { kind: 'pca'; bitsPerValue: number; weights?: number[]; exactParts?: number[] };

/** A strategy's compact per-adapter store; the base cache it refers to is not part of it. */
export interface NativeKvStore {
  /** Bytes the store really holds (quantized payloads, scales, low-rank factors, exact layers). */
  readonly bytes: number;
  readonly tokens: number;
  /** Rebuilds a full cache (base + stored delta) with room for `capacity` tokens. */
  decode(base: NativeKvCache, capacity: number): Promise<NativeKvCache>;
  dispose(): void;
}

/**
 * Squared-error sums of a rebuilt cache against the exact one, from which every
 * relative error of DESIGN.md is formed: rel = sqrt(Σdiff² / Σexact²).
 */
export interface NativeErrorSums {
  numLayers: number;
  numKvHeads: number;
  tokens: number;
  /** Consecutive tokens summed into each entry of the *ByToken arrays (1: one entry per token). */
  tokenBin: number;
  /** Per (layer, kv head), row-major [numLayers * numKvHeads]. */
  kDiffByHead: Float64Array;
  kNormByHead: Float64Array;
  vDiffByHead: Float64Array;
  vNormByHead: Float64Array;
  /** Per (layer, token bin), row-major [numLayers * ceil(tokens / tokenBin)]. */
  kDiffByToken: Float64Array;
  kNormByToken: Float64Array;
  vDiffByToken: Float64Array;
  vNormByToken: Float64Array;
}

export interface NativeAdapter {
  readonly rank: number;
  readonly bytes: number;
  dispose(): void;
}

/** The shared part of a view: positions [0, length) of a plain cache, corrected by a store (or as they are). */
export interface NativeViewPrefix {
  cache: NativeKvCache;
  store?: NativeKvStore | null;
  length: number;
}

/** One sequence of a batch call: tokens fed at positions cache.length.. through its adapter. */
export interface NativeBatchItem {
  cache: NativeKvCache;
  adapter: NativeAdapter | null;
  tokens: Int32Array;
}

/**
 * Teacher-forced scoring of one sequence: row j (token tokens[j]) predicts targets[j]; its
 * distribution is compared with row j of item `reference` (the exact cache's sequence).
 */
export interface NativeScoreItem extends NativeBatchItem {
  targets: Int32Array;
  reference: number;
}

/** Per fed token: KL(p_reference ‖ p), whether both argmaxes agree, and −log p(target) of both. */
export interface NativeScoreResult {
  kl: Float64Array;
  top1: Uint8Array;
  nll: Float64Array;
  nllReference: Float64Array;
}

export interface NativeModel {
  readonly bytes: number;
  newCache(capacity: number): NativeKvCache;
  /**
   * A sequence whose first prefix.length positions are those of prefix.cache (a plain cache,
   * e.g. the document's base cache), read through prefix.store's correction and never copied;
   * it holds its own K/V only for later positions, up to `capacity` in all.
   */
  newView(prefix: NativeViewPrefix, capacity: number): NativeKvCache;
  /** Feeds every item's tokens (appending their K/V), all items' rows in shared passes of at most maxRows rows. */
  prefillBatch(items: NativeBatchItem[], options: { maxRows: number }, onProgress: ProgressCallback | null, cancel: NativeCancelToken | null): Promise<void>;
  /** Feeds every item's tokens like prefillBatch and scores each row against its reference row, on the device. */
  score(items: NativeScoreItem[], cancel: NativeCancelToken | null): Promise<NativeScoreResult[]>;
  loadAdapter(spec: NativeAdapterSpec, onProgress: ProgressCallback | null, cancel: NativeCancelToken | null): Promise<NativeAdapter>;
  /** Runs tokens through the model at positions cache.length.., appending their K/V to the cache. */
  prefill(
    cache: NativeKvCache,
    tokens: Int32Array,
    adapter: NativeAdapter | null,
    options: NativePrefillOptions,
    onProgress: ProgressCallback | null,
    cancel: NativeCancelToken | null,
  ): Promise<Float32Array | null>;
  /** Encodes one adapter's exact cache against the shared base cache (same tokens). */
  encodeStore(strategy: NativeStrategySpec, base: NativeKvCache, exact: NativeKvCache, adapter: NativeAdapter): Promise<NativeKvStore>;
  /** Error sums of `rebuilt` (a cache or a view: base + store) against `exact` over their common length. */
  compareCaches(rebuilt: NativeKvCache, exact: NativeKvCache, options?: { tokenBin?: number }): Promise<NativeErrorSums>;
  /**
   * seed-minikv's diagnostic per layer: ‖(I − B Bᐩ) ΔV‖² / ‖ΔV‖² with ΔV = V_exact − V_base;
   * NaN for layers whose v_proj the adapter does not adapt.
   */
  outsideSpan(base: NativeKvCache, exact: NativeKvCache, adapter: NativeAdapter): Promise<Float64Array>;
  /** One step for a batch of sequences, each with its own cache and adapter (or none). */
  decode(sequences: NativeDecodeSequence[], options: { logits: boolean }): Promise<NativeDecodeResult>;
  dispose(): void;
}

export interface NativeEngineInfo {
  engineVersion: string;
  backend: 'cpu' | 'cuda';
  /** Threads the CPU backend uses. */
  threads: number;
  /** e.g. "x86_64 CPU, 2 threads" or the GPU's name. */
  device: string;
  /** Compute dtypes the engine runs ('fp32' on the CPU build; 'fp32', 'bf16', 'fp16' on CUDA). */
  dtypes: ('fp32' | 'bf16' | 'fp16')[];
  /** Tokens per prefill chunk this engine is fastest with (progress and cancel between chunks). */
  prefillChunk: number;
  /** Device memory this process holds now, its peak since start or resetDevicePeak(), and the device's total (0 on the CPU build). */
  deviceMemoryUsed: number;
  deviceMemoryPeak: number;
  deviceMemoryTotal: number;
  /** Bytes copied from the device to the host since start: results only (errors, scores, tokens), never a cache. */
  deviceToHostBytes: number;
}

export interface NativeAddon {
  /**
   * Starts the device off the JS thread (on CUDA: the context, streams and cuBLAS handles);
   * rejects with why it cannot start. Without it the first call that needs the device starts it.
   */
  start(): Promise<void>;
  info(): NativeEngineInfo;
  CancelToken: new () => NativeCancelToken;
  loadModel(
    config: NativeModelConfig,
    tensors: NativeTensorRef[],
    onProgress: ProgressCallback | null,
    cancel: NativeCancelToken | null,
  ): Promise<NativeModel>;
  /** Restart the peak device-memory count (benchmarks; a no-op on the CPU build). */
  resetDevicePeak(): void;
}
