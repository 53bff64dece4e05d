// What a comparison is asked to do, and what it reports while it runs. Used by the
// CLI, the app's RPC contract and the runner alike.
import type { StrategyId } from './strategies.js';

export interface AdapterChoice {
  /** Shown in results; defaults to the folder's basename. */
  name?: string;
  dir: string;
}

export interface CompareRequest {
  modelDir: string;
  /** Folder with tokenizer.json + tokenizer_config.json; default: the model folder. */
  tokenizerDir?: string;
  adapters: AdapterChoice[];
  documentText: string;
  /** Appended after the document without special tokens; may be empty. */
  promptText: string;
  /** `exact` is always computed (every other strategy is measured against it). */
  strategies: StrategyId[];
  maxNewTokens: number;
  /** 0: greedy. */
  temperature: number;
  topP: number;
  seed: number;
  dtype: 'fp32' | 'bf16' | 'fp16';
  device: 'auto' | 'cpu' | 'cuda';
  /** Stop a sequence at the tokenizer's EOS. */
  stopAtEos: boolean;
  /**
   * Teacher-force every strategy on this text (appended after the prompt; e.g. the document's
   * real continuation) instead of on exact's own generation. Empty or absent: exact's generation.
   */
  continuationText?: string;
  /** Fit to budget: per adapter, the cheapest pca mix meeting these (adds the `fit` strategy). */
  fit?: FitRequest;
}

/**
 * Fit to budget (README, "Compare adapters from the command line"): per adapter, each part's (layer, K or V) sensitivity is measured
 * (KL per unit of squared error, that part coded, the rest exact), then pca stores weighted by
 * it are encoded at a ladder of bit rates and scored; the cheapest one meeting the target is
 * the adapter's `fit` row. `plan` re-runs a saved choice (adapter name → pca id) without fitting.
 */
export interface FitRequest {
  /** Per adapter store bytes at most this. */
  budgetBytes?: number;
  /** Mean KL against exact at most this. */
  targetKl?: number;
  /** Top-1 agreement at least this (with targetKl). */
  minTop1?: number;
  plan?: Record<string, StrategyId>;
}

/** A saved fit (--save-plan / --plan): what each adapter's `fit` row was. */
export interface FitPlan {
  schema: 'adapterlens.plan/1';
  /** Adapter name → the pca id chosen for it. */
  adapters: Record<string, StrategyId>;
}

/** The most new tokens one run may ask for (main's schema and the form both hold to it). */
export const MAX_NEW_TOKENS_LIMIT = 4096;

export const DEFAULT_SETTINGS = {
  strategies: ['exact', 'base', 'seed-minikv'] as StrategyId[],
  maxNewTokens: 32,
  temperature: 0,
  topP: 1,
  seed: 0,
  dtype: 'fp32' as const,
  device: 'auto' as const,
  stopAtEos: true,
};

export type CompareStage = 'load' | 'tokenize' | 'base-prefill' | 'adapter-prefill' | 'encode' | 'measure' | 'generate' | 'fit' | 'score';

export const STAGE_LABELS: Record<CompareStage, string> = {
  load: 'Loading model and adapters',
  tokenize: 'Tokenizing',
  'base-prefill': 'Base prefill',
  'adapter-prefill': 'Adapter prefills',
  encode: 'Encoding stores',
  measure: 'Measuring errors',
  generate: 'Generating',
  fit: 'Fitting to budget',
  score: 'Teacher-forced scoring',
};

export interface CompareProgress {
  stage: CompareStage;
  /** In the stage's unit (tokens for prefills, items otherwise). */
  done: number;
  total: number;
  detail?: string;
}

export interface TokenEvent {
  adapter: number;
  strategy: StrategyId;
  step: number;
  token: number;
  piece: string;
  /** Probability the sequence gave this token. */
  prob: number;
}
