// Turns the setup form into a CompareRequest, or says what is missing, in the words the
// form shows next to each field: everything main would refuse is caught here first.
import { MAX_NEW_TOKENS_LIMIT, type CompareRequest } from '../../../shared/compare.js';
import type { AdapterInfo, EngineCapabilities, ModelInfo, TokenCount } from '../../../shared/rpc.js';
import { strategyProblem } from '../../../shared/strategies.js';
import { count } from './format.js';
import { selectedFit, selectedStrategies, type StrategySelection } from './strategy-selection.js';

export interface SetupAdapter {
  dir: string;
  name: string;
  info: AdapterInfo | null;
  error: string | null;
  loading: boolean;
}

export interface GenerationSettings {
  maxNewTokens: number;
  sampling: 'greedy' | 'sample';
  temperature: number;
  topP: number;
  seed: number;
  dtype: CompareRequest['dtype'];
  device: CompareRequest['device'];
  stopAtEos: boolean;
}

export interface SetupSnapshot {
  modelDir: string;
  model: ModelInfo | null;
  modelError: string | null;
  tokenizerDir: string;
  adapters: readonly SetupAdapter[];
  documentText: string;
  promptText: string;
  tokenCount: TokenCount | null;
  strategies: StrategySelection;
  settings: GenerationSettings;
}

/** The one wording for a model folder without a tokenizer (the model and document panels both show it). */
export const TOKENIZER_NEEDED = 'The model folder has no tokenizer.json: give a tokenizer folder under Base model.';

/** The model has no tokenizer of its own and none is given: nothing can be counted or run yet. */
export function needsTokenizer(s: Pick<SetupSnapshot, 'model' | 'tokenizerDir'>): boolean {
  return s.model !== null && !s.model.hasTokenizer && !s.tokenizerDir.trim();
}

/** Why max new tokens is not usable, or null (empty fields are NaN in the form). */
export function maxNewTokensProblem(n: number): string | null {
  if (!Number.isInteger(n) || n < 1 || n > MAX_NEW_TOKENS_LIMIT) return `Max new tokens: enter a whole number from 1 to ${count(MAX_NEW_TOKENS_LIMIT)}.`;
  return null;
}

export interface ContextUse {
  /** Document + prompt + new tokens (new tokens count 0 while the field is not a valid number). */
  used: number;
  limit: number;
  over: boolean;
  /** Above 90% of the limit. */
  near: boolean;
  /** Counting stopped at a limit: `used` is a lower bound. */
  atLeast: boolean;
}

export function contextUse(tokens: TokenCount | null, maxNewTokens: number): ContextUse | null {
  if (!tokens) return null;
  const newTokens = maxNewTokensProblem(maxNewTokens) === null ? maxNewTokens : 0;
  const used = tokens.documentTokens + tokens.promptTokens + newTokens;
  return { used, limit: tokens.contextLimit, over: used > tokens.contextLimit, near: used > 0.9 * tokens.contextLimit, atLeast: !tokens.complete };
}

/** "Over the model's context of 2,048 positions by (at least) 1,200 tokens: …". */
export function contextMessage(ctx: ContextUse): string {
  const by = `${ctx.atLeast ? 'at least ' : ''}${count(ctx.used - ctx.limit)}`;
  return `Over the model's context of ${count(ctx.limit)} positions by ${by} tokens: shorten the document or the prompt, or lower max new tokens.`;
}

/** The limit to count a document up to: past it, "over by at least N" is all the form needs to say. */
export function countLimit(model: Pick<ModelInfo, 'maxPositionEmbeddings'>, maxNewTokens: number): number {
  const newTokens = Number.isInteger(maxNewTokens) && maxNewTokens > 0 ? maxNewTokens : 0;
  return model.maxPositionEmbeddings + newTokens + 256;
}

/** Problems with the chosen strategies' parameters on this model (hybrid:n ≤ layers, lowrank:k ≤ what an SVD can give). */
export function strategyProblems(sel: StrategySelection, model: ModelInfo | null, tokens: TokenCount | null): string[] {
  const { ids, errors } = selectedStrategies(sel);
  if (!model) return errors;
  const documentTokens = tokens && tokens.complete ? tokens.documentTokens : null;
  return [...errors, ...ids.map((id) => strategyProblem(id, model, documentTokens)).filter((p): p is string => p !== null)];
}

/** Why the engine cannot take the chosen dtype or device, or null. */
export function engineProblems(g: Pick<GenerationSettings, 'dtype' | 'device'>, engine: EngineCapabilities | null): string[] {
  if (!engine) return [];
  const out: string[] = [];
  const dtype = engine.dtypes.find((d) => d.id === g.dtype);
  if (dtype && !dtype.available) out.push(`Compute dtype ${g.dtype}: ${dtype.reason ?? 'not available'}.`);
  const device = engine.devices.find((d) => d.id === g.device);
  if (device && !device.available) out.push(`Device ${g.device}: ${device.reason ?? 'not available'}.`);
  return out;
}

export function buildRequest(s: SetupSnapshot, engine: EngineCapabilities | null = null): { request: CompareRequest | null; problems: string[] } {
  const problems: string[] = [];
  if (!s.modelDir.trim()) problems.push('Choose a model folder.');
  else if (s.modelError) problems.push(`The model cannot be used: ${s.modelError}`);
  else if (!s.model) problems.push('The model is still being inspected.');
  if (needsTokenizer(s)) problems.push(TOKENIZER_NEEDED);
  if (s.adapters.length === 0) problems.push('Add at least one adapter.');
  for (const a of s.adapters) {
    if (a.loading) problems.push(`Adapter ${a.name} is still being checked.`);
    else if (a.error) problems.push(`Adapter ${a.name} cannot be used: ${a.error}`);
  }
  const names = s.adapters.map((a) => a.name.trim());
  const dup = names.find((n, i) => n && names.indexOf(n) !== i);
  if (dup) problems.push(`Two adapters are named "${dup}"; rename one.`);
  if (names.some((n) => !n)) problems.push('Every adapter needs a name.');
  if (!s.documentText.trim()) problems.push('Paste or type a document.');
  problems.push(...strategyProblems(s.strategies, s.model, s.tokenCount));
  const g = s.settings;
  const maxNew = maxNewTokensProblem(g.maxNewTokens);
  if (maxNew) problems.push(maxNew);
  if (g.sampling === 'sample') {
    if (!(g.temperature > 0)) problems.push('Temperature must be above 0 when sampling.');
    if (!(g.topP > 0 && g.topP <= 1)) problems.push('Top-p must be in (0, 1].');
    if (!Number.isInteger(g.seed) || g.seed < 0) problems.push('The seed must be a whole number ≥ 0.');
  }
  problems.push(...engineProblems(g, engine));
  const ctx = contextUse(s.tokenCount, g.maxNewTokens);
  if (ctx?.over) problems.push(contextMessage(ctx));
  if (problems.length) return { request: null, problems };
  const { ids } = selectedStrategies(s.strategies);
  const { fit } = selectedFit(s.strategies);
  const request: CompareRequest = {
    modelDir: s.modelDir.trim(),
    adapters: s.adapters.map((a) => ({ dir: a.dir, name: a.name.trim() })),
    documentText: s.documentText,
    promptText: s.promptText,
    strategies: ids,
    maxNewTokens: g.maxNewTokens,
    temperature: g.sampling === 'greedy' ? 0 : g.temperature,
    topP: g.sampling === 'greedy' ? 1 : g.topP,
    seed: g.seed,
    dtype: g.dtype,
    device: g.device,
    stopAtEos: g.stopAtEos,
    ...(fit ? { fit } : {}),
  };
  if (s.tokenizerDir.trim()) request.tokenizerDir = s.tokenizerDir.trim();
  return { request, problems };
}

/** The folder's last path component (the default adapter name). */
export function baseName(dir: string): string {
  const parts = dir.replace(/[\\/]+$/, '').split(/[\\/]/);
  return parts[parts.length - 1] ?? dir;
}
