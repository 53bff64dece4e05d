// Turns the setup form into a CompareRequest, or says what is missing.
import type { CompareRequest } from '../../../shared/compare.js';
import type { AdapterInfo, ModelInfo, TokenCount } from '../../../shared/rpc.js';
import { selectedStrategies, type StrategySelection } from './strategy-selection.js';

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

export interface ContextUse {
  used: number;
  limit: number;
  over: boolean;
  /** Above 90% of the limit. */
  near: boolean;
}

export function contextUse(count: TokenCount | null, maxNewTokens: number): ContextUse | null {
  if (!count) return null;
  const used = count.documentTokens + count.promptTokens + Math.max(0, maxNewTokens);
  return { used, limit: count.contextLimit, over: used > count.contextLimit, near: used > 0.9 * count.contextLimit };
}

export function buildRequest(s: SetupSnapshot): { request: CompareRequest | null; problems: string[] } {
  const problems: string[] = [];
  if (!s.modelDir.trim()) problems.push('Choose a model folder.');
  else if (s.modelError) problems.push(`The model cannot be used: ${s.modelError}`);
  else if (!s.model) problems.push('The model is still being inspected.');
  if (s.adapters.length === 0) problems.push('Add at least one adapter.');
  for (const a of s.adapters) {
    if (a.loading) problems.push(`Adapter ${a.name} is still being checked.`);
    else if (a.error) problems.push(`Adapter ${a.name} cannot be used: ${a.error}`);
  }
  const names = s.adapters.map((a) => a.name.trim());
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) problems.push(`Two adapters are named "${dup}"; rename one.`);
  if (names.some((n) => !n)) problems.push('Every adapter needs a name.');
  if (!s.documentText.trim()) problems.push('Paste or type a document.');
  const { ids, errors } = selectedStrategies(s.strategies);
  problems.push(...errors);
  const g = s.settings;
  if (!Number.isInteger(g.maxNewTokens) || g.maxNewTokens < 1) problems.push('Max new tokens must be a whole number ≥ 1.');
  if (g.sampling === 'sample') {
    if (!(g.temperature > 0)) problems.push('Temperature must be above 0 when sampling.');
    if (!(g.topP > 0 && g.topP <= 1)) problems.push('Top-p must be in (0, 1].');
    if (!Number.isInteger(g.seed) || g.seed < 0) problems.push('The seed must be a whole number ≥ 0.');
  }
  const ctx = contextUse(s.tokenCount, g.maxNewTokens);
  if (ctx?.over) problems.push(`Document, prompt and new tokens need ${ctx.used} positions; the model's context is ${ctx.limit}.`);
  if (problems.length) return { request: null, problems };
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
  };
  if (s.tokenizerDir.trim()) request.tokenizerDir = s.tokenizerDir.trim();
  return { request, problems };
}

/** The folder's last path component (the default adapter name). */
export function baseName(dir: string): string {
  const parts = dir.replace(/[\\/]+$/, '').split(/[\\/]/);
  return parts[parts.length - 1] ?? dir;
}
