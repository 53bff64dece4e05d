// A small hand-made report for the renderer's unit tests.
import type { CompareRequest } from '../../shared/compare.js';
import { REPORT_SCHEMA, type Report, type StrategyResult } from '../../shared/report.js';
import type { StrategyId } from '../../shared/strategies.js';

export function strategyResult(strategy: StrategyId, bytes: number, tokens: number[], over: Partial<StrategyResult> = {}): StrategyResult {
  const L = 2;
  return {
    strategy,
    bytes,
    layers: Array.from({ length: L }, (_, l) => ({ layer: l, kRelErr: strategy === 'exact' ? 0 : 0.1 * (l + 1), vRelErr: strategy === 'exact' ? 0 : 0.2 * (l + 1) })),
    heads: { k: [[0, 0.1], [0.2, 0.3]], v: [[0, 0.4], [0.5, 0.6]] },
    tokens: { binSize: 2, k: [[0, 0.1, 0.2], [0.3, 0.4, 0.5]], v: [[0.1, 0.2, 0.3], [0.4, 0.5, 0.9]] },
    generation: {
      tokens,
      text: tokens.map((t) => `t${t}`).join(''),
      pieces: tokens.map((t) => `t${t}`),
      probs: tokens.map(() => 0.5),
      firstDivergence: null,
    },
    scores: { kl: tokens.map((_, i) => i * 0.01), top1: tokens.map(() => 1), meanKl: 0.01, top1Agreement: 1, perplexityRatio: 1 },
    ...over,
  };
}

export function makeReport(): Report {
  const exactBytes = 1000;
  return {
    schema: REPORT_SCHEMA,
    createdAt: '2026-11-28T16:00:00.000Z',
    versions: { adapterlens: '0.1.0', engine: '0.1.0', node: '20' },
    backend: { kind: 'cpu', device: 'test CPU', fallbackReason: null },
    settings: { strategies: ['exact', 'base', 'seed-minikv'], maxNewTokens: 3, dtype: 'fp32', device: 'auto', temperature: 0, topP: 1, seed: 0, stopAtEos: true },
    model: {
      name: 'tiny',
      dir: '/m',
      architecture: 'LlamaForCausalLM',
      sha256: {},
      numLayers: 2,
      numHeads: 4,
      numKvHeads: 2,
      headDim: 8,
      hiddenSize: 32,
      vocabSize: 100,
      maxPositionEmbeddings: 64,
      parameters: 1000,
      storedDtype: 'F32',
    },
    tokenizer: { dir: '/m', sha256: {} },
    document: { text: 'doc' },
    prompt: { text: ' p' },
    documentTokens: [1, 2, 3, 4, 5],
    promptTokens: [6],
    memory: { baseCacheBytes: 800, exactCacheBytes: exactBytes },
    timings: [{ stage: 'load', ms: 10 }],
    adapters: [
      {
        name: 'a',
        dir: '/a',
        sha256: {},
        rank: 4,
        alpha: 8,
        targetModules: ['q_proj', 'v_proj'],
        strategies: [
          strategyResult('exact', exactBytes, [1, 2, 3]),
          strategyResult('base', 0, [1, 9, 9], { generation: { tokens: [1, 9, 9], text: '', pieces: ['x', 'y', 'z'], probs: [0.9, 0.2, 0.3], firstDivergence: 1 }, scores: { kl: [0, 2, 3], top1: [1, 0, 0], meanKl: 5 / 3, top1Agreement: 1 / 3, perplexityRatio: 2 } }),
          strategyResult('seed-minikv', 100, [1, 2, 3]),
        ],
      },
      {
        name: 'b',
        dir: '/b',
        sha256: {},
        rank: 8,
        alpha: 16,
        targetModules: ['v_proj'],
        strategies: [
          strategyResult('exact', exactBytes, [4, 5]),
          strategyResult('base', 0, [4, 5]),
          strategyResult('seed-minikv', 300, [4, 5], { tokens: { binSize: 2, k: [[0, 0, 0], [0, 0, 2]], v: [[0, 0, 0], [0, 0, 0]] } }),
        ],
      },
    ],
  };
}

/** A comparison request for the run store's tests (nothing reads its files). */
export function makeRequest(over: Partial<CompareRequest> = {}): CompareRequest {
  return {
    modelDir: '/m',
    adapters: [{ dir: '/a/qv', name: 'qv' }, { dir: '/a/all' }],
    documentText: 'doc',
    promptText: '',
    strategies: ['exact', 'base'],
    maxNewTokens: 4,
    temperature: 0,
    topP: 1,
    seed: 0,
    dtype: 'fp32',
    device: 'auto',
    stopAtEos: true,
    ...over,
  };
}
