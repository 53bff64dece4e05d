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

export type CompareStage = 'load' | 'tokenize' | 'base-prefill' | 'adapter-prefill' | 'encode' | 'measure' | 'generate' | 'score';

export const STAGE_LABELS: Record<CompareStage, string> = {
  load: 'Loading model and adapters',
  tokenize: 'Tokenizing',
  'base-prefill': 'Base prefill',
  'adapter-prefill': 'Adapter prefills',
  encode: 'Encoding stores',
  measure: 'Measuring errors',
  generate: 'Generating',
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
