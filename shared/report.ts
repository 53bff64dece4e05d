// The `adapterlens.report/1` document (DESIGN.md, "Reports"): what a comparison run
// produces, and the only input of every report format.
import type { StrategyId } from './strategies.js';

export const REPORT_SCHEMA = 'adapterlens.report/1';

export interface LayerErrors {
  layer: number;
  /** ‖K_s − K_exact‖_F / ‖K_exact‖_F over all document tokens and KV heads. */
  kRelErr: number;
  vRelErr: number;
  /** seed-minikv only: ‖(I − B Bᐩ) ΔV‖² / ‖ΔV‖²; null where v_proj is not adapted. */
  outsideSpan?: number | null;
}

/** Relative errors on a grid: rows are layers. */
export interface ErrorGrid {
  /** [layer][column] */
  k: number[][];
  v: number[][];
}

export interface TokenErrorGrid extends ErrorGrid {
  /** Document tokens per column: columns are consecutive token ranges of this size (the last may be shorter). */
  binSize: number;
}

export interface Generation {
  tokens: number[];
  text: string;
  /** Per generated token, its text as the tokenizer shows it. */
  pieces: string[];
  /** Probability the sequence gave its own token at each step (NaN where not measured). */
  probs: number[];
  /** Index of the first token that differs from `exact`'s generation; null when none differs. */
  firstDivergence: number | null;
}

/** Teacher-forced over the exact cache's continuation. */
export interface Scores {
  /** KL(p_exact ‖ p_strategy) per continuation position, in nats. */
  kl: number[];
  /** 1 where argmax p_strategy equals argmax p_exact, else 0, per position. */
  top1: number[];
  meanKl: number;
  top1Agreement: number;
  /** exp(mean NLL under the strategy) / exp(mean NLL under exact) of the continuation tokens. */
  perplexityRatio: number;
}

export interface StrategyResult {
  strategy: StrategyId;
  /** Bytes the strategy's per-adapter store really holds (exact: the adapter's whole K/V cache; base: 0). */
  bytes: number;
  layers: LayerErrors[];
  /** Layer × KV head. */
  heads: ErrorGrid;
  /** Layer × document token range. */
  tokens: TokenErrorGrid;
  generation: Generation;
  scores: Scores;
  /** hybrid:<n>: the layers kept exact. */
  exactLayers?: number[];
  /** fit: the pca id it stands for (re-runnable as a strategy of its own). */
  fitted?: StrategyId;
}

/** One budget point of a fit: a weighted pca store at one bit rate, measured. */
export interface FitPoint {
  strategy: StrategyId;
  bytes: number;
  meanKl: number;
  top1Agreement: number;
}

/** What fit to budget measured and chose for one adapter (CompareRequest.fit). */
export interface FitResult {
  budgetBytes: number | null;
  targetKl: number | null;
  minTop1: number | null;
  /** Per part (layer, K or V): that part alone coded, the rest exact. Empty for a planned fit. */
  probes: { layer: number; kv: 'K' | 'V'; meanKl: number; sqErr: number }[];
  /** Every store tried, cheapest first. */
  points: FitPoint[];
  chosen: StrategyId;
  /** Whether the chosen store meets every target given. */
  met: boolean;
  /** In words: why this one. */
  reason: string;
}

export interface FileHashes {
  /** File name (relative to the folder) → SHA-256 hex. */
  [file: string]: string;
}

export interface AdapterResult {
  name: string;
  dir: string;
  sha256: FileHashes;
  rank: number;
  alpha: number;
  targetModules: string[];
  strategies: StrategyResult[];
  fit?: FitResult;
}

export interface ModelSummary {
  name: string;
  dir: string;
  architecture: string;
  sha256: FileHashes;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  hiddenSize: number;
  vocabSize: number;
  maxPositionEmbeddings: number;
  parameters: number;
  storedDtype: string;
}

export interface RunSettings {
  strategies: StrategyId[];
  maxNewTokens: number;
  /** Compute dtype the engine ran in. */
  dtype: 'fp32' | 'bf16' | 'fp16';
  device: 'auto' | 'cpu' | 'cuda';
  temperature: number;
  topP: number;
  seed: number;
  stopAtEos: boolean;
  /** Teacher-forced on the request's continuation text rather than exact's generation. */
  continuation?: 'exact-generation' | 'text';
  fit?: { budgetBytes: number | null; targetKl: number | null; minTop1: number | null; planned: boolean };
}

export interface Report {
  schema: typeof REPORT_SCHEMA;
  createdAt: string;
  versions: { adapterlens: string; engine: string; node: string };
  backend: { kind: 'cpu' | 'cuda'; device: string; fallbackReason: string | null };
  settings: RunSettings;
  model: ModelSummary;
  tokenizer: { dir: string; sha256: FileHashes };
  document: { text: string };
  prompt: { text: string };
  /** Document ids, BOS included. */
  documentTokens: number[];
  /** Prompt ids, appended after the document without special tokens. */
  promptTokens: number[];
  memory: {
    /** The shared base cache of the document, counted once. */
    baseCacheBytes: number;
    /** What one adapter's exact cache costs (the reference every store is compared with). */
    exactCacheBytes: number;
  };
  /** Milliseconds per stage, in the order the stages ran. */
  timings: { stage: string; ms: number }[];
  adapters: AdapterResult[];
}
