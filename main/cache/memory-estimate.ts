// Estimates the memory a comparison needs before any work starts, so the runner can
// refuse a run that cannot fit (checkFits) or exceeds the model's context (checkContext).
//
// Formulas (L layers, H KV heads, D head dim, T document tokens, b bytes per value,
// A adapters, S strategies, C = T + prompt + maxNew context positions, V vocab):
//   full KV cache of n tokens  = n · L · 2 · H · D · b
//   base cache                 = full cache of T
//   exact cache (per adapter)  = full cache of T
//   stores, per adapter:
//     exact       0 extra: its store is the exact cache, counted above (storeBytes() gives its size)
//     base        0
//     seed-minikv Σ_l r_v(l) · T · 4            (r_v(l) = 0 where v_proj is not adapted)
//     lragent     Σ_l r_v(l) · T · 4
//     delta-int8  T · L · 2 · H · (D + 4)       (int8 payload + one fp32 scale per token per head)
//     delta-int4  T · L · 2 · H · (⌈D/2⌉ + 4)
//     lowrank:k   L · 2 · k · (T + H·D) · 4
//     hybrid:n    seed-minikv + min(n, L) layers of exact K/V (T · 2 · H · D · b each)
//     pca:b       at most b/8 bytes per cached value (its budget); a pass also holds one
//                 layer of it rebuilt (decode scratch)
//     fit         its ladder of pca stores and one pass of probes (main/compare/fit.ts)
//   sequence caches: A · S sequences, each holding only its own positions (prompt and new
//                   tokens, P + G + 1): its document positions are read from the shared
//                   base cache (or its adapter's exact cache) through its store, never copied
//   decode scratch: batch A·S; logits batch · V · 4, activations
//                   batch · b · (3·hidden + (2·heads + 2·H)·D + 2·intermediate),
//                   attention partial states batch · heads · 2 · (D + 2 + 64) · 4 per chunk
//   scoring logits: A · S sequences · G scored positions · V · 4 (on the device, at most 1 GiB)
//   encode scratch (only with a lowrank:k store; one store is encoded at a time): the fp32 Δ
//                   rows of one batch of its SVDs, n · T · H·D · 4, and their sketches,
//                   n · (T + 2·H·D) · min(k + 8, T, H·D) · 4; n = the engine's batch
//                   (kLowRankBatchBytes in native/src/engine/kv_store.h: as many deltas as
//                   fit 512 MiB, at least 1, at most 2L, in even batches)
// The model's weights are reported but are outside the cache budget; every other item is
// in it: adapters are cache entries (evicted least recently used), and the runner's
// RunScope owns the transients under the same budget.
// The sum is a conservative peak: everything is counted as live at once.
import type { NativeModelConfig } from '../engine/native-types.js';
import { FIT_LADDER, PROBES_PER_PASS } from '../compare/fit.js';
import { formatBytes } from '../../shared/format.js';
import { parseStrategy, strategyId, type ParsedStrategy, type StrategyId } from '../../shared/strategies.js';

export type MemoryModelShape = Pick<
  NativeModelConfig,
  'numLayers' | 'numKvHeads' | 'headDim' | 'vocabSize' | 'hiddenSize' | 'intermediateSize' | 'numHeads'
>;

export interface AdapterMemoryShape {
  /** Rank of the v_proj LoRA per layer (0 where v_proj is not adapted); length numLayers. */
  vRanks: readonly number[];
  /** Bytes of the adapter's parameters as loaded. */
  paramBytes: number;
}

export interface MemoryEstimateInput {
  model: MemoryModelShape;
  /** Bytes of the base model's weights as loaded. */
  weightsBytes: number;
  documentTokens: number;
  promptTokens: number;
  maxNewTokens: number;
  adapters: readonly AdapterMemoryShape[];
  /** Strategy ids; duplicates are ignored and `exact` is always included (every comparison needs it). */
  strategies: readonly string[];
  /** Bytes per cached K/V value and activation (4 for fp32, the default). */
  bytesPerValue?: number;
}

export type MemoryItemId =
  | 'weights'
  | 'adapter-weights'
  | 'base-cache'
  | 'exact-caches'
  | `store:${StrategyId}`
  | 'sequence-caches'
  | 'decode-scratch'
  | 'scoring-logits'
  | 'encode-scratch';

export interface MemoryItem {
  id: MemoryItemId;
  /** For people, e.g. "3 exact caches". */
  item: string;
  bytes: number;
  /** Whether the item counts against the cache budget (weights do not). */
  inCacheBudget: boolean;
}

export interface MemoryEstimate {
  /** Every item, weights included. */
  total: number;
  /** The items that count against the cache budget. */
  cacheBytes: number;
  breakdown: MemoryItem[];
}

const FP32 = 4;
/** lowrank's encode holds this many bytes of Δ rows at once: kLowRankBatchBytes in native/src/engine/kv_store.h. */
export const LOWRANK_BATCH_BYTES = 512 * 2 ** 20;

function count(name: string, n: number): number {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`${name} must be a non-negative integer, got ${n}`);
  return n;
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** Bytes of a full KV cache of `tokens` positions. */
export function kvCacheBytes(model: MemoryModelShape, tokens: number, bytesPerValue = FP32): number {
  return tokens * model.numLayers * 2 * model.numKvHeads * model.headDim * bytesPerValue;
}

function checkRanks(model: MemoryModelShape, adapter: AdapterMemoryShape, index: number): void {
  if (adapter.vRanks.length !== model.numLayers) {
    throw new RangeError(`adapter ${index + 1}: vRanks has ${adapter.vRanks.length} entries, the model has ${model.numLayers} layers`);
  }
  adapter.vRanks.forEach((r, l) => count(`adapter ${index + 1}: vRanks[${l}]`, r));
}

/** Bits per value of every budget point a target-KL fit tries, summed. */
const FIT_LADDER_BITS = FIT_LADDER.reduce((a, b) => a + b, 0);

/**
 * Bytes one adapter's store for `strategy` holds over `tokens` document tokens (the
 * strategy's `bytes`; for `exact`, the exact cache itself).
 */
export function storeBytes(
  strategy: ParsedStrategy | string,
  model: MemoryModelShape,
  adapter: Pick<AdapterMemoryShape, 'vRanks'>,
  tokens: number,
  bytesPerValue = FP32,
): number {
  const s = typeof strategy === 'string' ? parseStrategy(strategy) : strategy;
  const { numLayers: L, numKvHeads: H, headDim: D } = model;
  const seed = () => adapter.vRanks.reduce((sum, r) => sum + r, 0) * tokens * FP32;
  switch (s.kind) {
    case 'exact':
      return kvCacheBytes(model, tokens, bytesPerValue);
    case 'base':
      return 0;
    case 'seed-minikv':
    case 'lragent':
      return seed();
    case 'delta-int8':
      return tokens * L * 2 * H * (D + 4);
    case 'delta-int4':
      return tokens * L * 2 * H * (Math.ceil(D / 2) + 4);
    case 'lowrank':
      return L * 2 * s.rank * (tokens + H * D) * FP32;
    case 'hybrid':
      return seed() + Math.min(s.exactLayers, L) * tokens * 2 * H * D * bytesPerValue;
    case 'pca':
      // At most its budget: b bits per cached value, everything it holds counted.
      return Math.floor((s.bitsPerValue / 8) * L * 2 * H * D * tokens);
    case 'fit':
      // What a fit holds at its peak: every budget point of the ladder, and one pass of
      // probes (each nearly an exact cache: one part coded, the rest exact).
      return Math.floor((FIT_LADDER_BITS / 8) * L * 2 * H * D * tokens) + PROBES_PER_PASS * kvCacheBytes(model, tokens, bytesPerValue);
  }
}

/** Bytes lowrank:k's encode holds while it runs (the engine's batch of Δ rows and their sketches). */
export function lowrankEncodeScratchBytes(model: MemoryModelShape, tokens: number, rank: number): number {
  const width = model.numKvHeads * model.headDim;
  const deltaBytes = tokens * width * FP32;
  const problems = 2 * model.numLayers;
  if (problems === 0 || deltaBytes === 0) return 0;
  const perBatch = Math.min(problems, Math.max(1, Math.floor(LOWRANK_BATCH_BYTES / deltaBytes)));
  const batch = Math.ceil(problems / Math.ceil(problems / perBatch));
  const sketch = Math.min(rank + 8, tokens, width);
  return batch * (deltaBytes + (tokens + 2 * width) * sketch * FP32);
}

export function estimateMemory(input: MemoryEstimateInput): MemoryEstimate {
  const { model } = input;
  for (const k of ['numLayers', 'numKvHeads', 'headDim', 'vocabSize', 'hiddenSize', 'intermediateSize', 'numHeads'] as const) {
    count(`model.${k}`, model[k]);
  }
  const T = count('documentTokens', input.documentTokens);
  const P = count('promptTokens', input.promptTokens);
  const G = count('maxNewTokens', input.maxNewTokens);
  const b = input.bytesPerValue ?? FP32;
  if (!(b > 0)) throw new RangeError(`bytesPerValue must be positive, got ${b}`);
  if (!(input.weightsBytes >= 0)) throw new RangeError(`weightsBytes must be non-negative, got ${input.weightsBytes}`);
  input.adapters.forEach((a, i) => checkRanks(model, a, i));

  const parsed = new Map<StrategyId, ParsedStrategy>([['exact', { kind: 'exact' }]]);
  for (const id of input.strategies) {
    const s = parseStrategy(id);
    parsed.set(strategyId(s), s);
  }
  const A = input.adapters.length;
  const S = parsed.size;
  const sequences = A * S;
  const C = T + P + G;

  const items: MemoryItem[] = [];
  const add = (id: MemoryItemId, item: string, bytes: number, inCacheBudget = true) => items.push({ id, item, bytes, inCacheBudget });

  add('weights', 'model weights', input.weightsBytes, false);
  add('adapter-weights', 'adapter weights', input.adapters.reduce((s, a) => s + a.paramBytes, 0));
  add('base-cache', 'base cache', kvCacheBytes(model, T, b));
  add('exact-caches', plural(A, 'exact cache'), A * kvCacheBytes(model, T, b));
  for (const [id, s] of parsed) {
    if (s.kind === 'exact') continue; // its store is the exact cache, counted above
    const bytes = input.adapters.reduce((sum, a) => sum + storeBytes(s, model, a, T, b), 0);
    add(`store:${id}`, plural(A, `${id} store`), bytes);
  }
  add('sequence-caches', `${plural(sequences, 'sequence cache')} (prompt and new tokens)`, sequences * kvCacheBytes(model, P + G + 1, b));
  const logits = sequences * model.vocabSize * FP32;
  const activations =
    sequences *
    b *
    (3 * model.hiddenSize + (2 * model.numHeads + 2 * model.numKvHeads) * model.headDim + 2 * model.intermediateSize);
  // Each row reads at most two parts (its document and its own positions), split into chunks
  // of ~256 keys on the GPU; the partial states are bounded by the engine (256 MiB).
  const chunks = Math.max(1, Math.ceil(C / 256));
  const partials = Math.min(256 * 2 ** 20, sequences * model.numHeads * 2 * chunks * (model.headDim + 2 + 64) * FP32);
  // A pca store is read from its layers rebuilt one at a time while a pass runs: per pca
  // store, one layer's K and V in the compute dtype, plus the rebuild's fp32 scratch.
  const kvWidth = model.numKvHeads * model.headDim;
  const pcaStores = [...parsed.values()].filter((s) => s.kind === 'pca').length * A;
  const rebuilt = pcaStores * (2 * T * kvWidth * b + (kvWidth * kvWidth + 2 * T * kvWidth) * FP32);
  add('decode-scratch', 'decode scratch', logits + activations + partials + rebuilt);
  add('scoring-logits', `scoring logits (${plural(sequences, 'sequence')})`, Math.min(2 ** 30, sequences * G * model.vocabSize * FP32));
  const lowrankRanks = [...parsed.values()].flatMap((s) => (s.kind === 'lowrank' ? [s.rank] : []));
  if (lowrankRanks.length > 0 && A > 0) {
    add('encode-scratch', 'lowrank encode scratch', lowrankEncodeScratchBytes(model, T, Math.max(...lowrankRanks)));
  }

  const total = items.reduce((s, i) => s + i.bytes, 0);
  const cacheBytes = items.filter((i) => i.inCacheBudget).reduce((s, i) => s + i.bytes, 0);
  return { total, cacheBytes, breakdown: items };
}

/**
 * null when the estimate's cache-budget items fit in `availableBytes`; otherwise a
 * message naming the total, each non-zero item and the budget, and what to do.
 */
export function checkFits(estimate: MemoryEstimate, availableBytes: number): string | null {
  if (estimate.cacheBytes <= availableBytes) return null;
  const parts = estimate.breakdown
    .filter((i) => i.inCacheBudget && i.bytes > 0)
    .map((i) => `${i.item} ${formatBytes(i.bytes)}`);
  return (
    `This comparison needs about ${formatBytes(estimate.cacheBytes)} (${parts.join(', ')}) ` +
    `but the cache budget is ${formatBytes(availableBytes)}: ` +
    'shorten the document, use fewer adapters or strategies, or raise the budget.'
  );
}

/**
 * null when `positions` (document + prompt + new tokens) fit the model's context;
 * otherwise a message naming both numbers.
 */
export function checkContext(positions: number, maxPositionEmbeddings: number): string | null {
  count('positions', positions);
  count('maxPositionEmbeddings', maxPositionEmbeddings);
  if (positions <= maxPositionEmbeddings) return null;
  return (
    `This comparison needs ${positions} positions (document + prompt + new tokens) ` +
    `but the model supports at most ${maxPositionEmbeddings}: ` +
    'shorten the document or the prompt, or lower the number of new tokens.'
  );
}
