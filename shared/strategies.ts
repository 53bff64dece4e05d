// Strategy ids (DESIGN.md, "KV strategies"): the one parser every layer uses.

export type StrategyId =
  | 'exact'
  | 'base'
  | 'seed-minikv'
  | 'lragent'
  | 'delta-int8'
  | 'delta-int4'
  | 'fit'
  | `lowrank:${number}`
  | `hybrid:${number}`
  | `pca:${string}`;

export type ParsedStrategy =
  | { kind: 'exact' | 'base' | 'seed-minikv' | 'lragent' | 'delta-int8' | 'delta-int4' | 'fit' }
  | { kind: 'lowrank'; rank: number }
  | { kind: 'hybrid'; exactLayers: number }
  /**
   * pca:<b> or pca:<b>@<e0>.<e1>…: b bits per cached value; the optional weights, one per
   * (layer, K then V), are half-octaves below the heaviest: weight = 2^(−e/2) (what the fit
   * measured; main/compare/fit.ts).
   */
  | { kind: 'pca'; bitsPerValue: number; weightExponents: number[] | null };

const SIMPLE = ['exact', 'base', 'seed-minikv', 'lragent', 'delta-int8', 'delta-int4', 'fit'] as const;

export const STRATEGY_DESCRIPTIONS: Record<ParsedStrategy['kind'], string> = {
  exact: "the adapter's own K and V (the reference)",
  base: 'nothing: K and V from the base model',
  'seed-minikv': 'pinv(B_v)·(V_lora − V_base), r values per token per layer; K from base',
  lragent: "the adapter's own low-rank V input s·A_v·x, r per token per layer; K from base",
  'delta-int8': 'ΔK, ΔV quantized to int8, one scale per token per head',
  'delta-int4': 'ΔK, ΔV quantized to int4, one scale per token per head',
  lowrank: 'truncated SVD of ΔK, ΔV per layer (rank k)',
  hybrid: 'seed-minikv plus exact K/V for the n layers where it errs most',
  fit: 'the pca mix fitted per adapter to a byte budget or a target KL (weights from measured per-layer sensitivity)',
  pca: 'ΔK (before RoPE) and ΔV per layer in principal bases of their own, bits per component allocated under b bits per cached value (optionally weighted by measured sensitivity)',
};

/** The most bits per value pca:<b> may ask for (a 16-bit cache's own width). */
export const PCA_MAX_BITS = 16;
/** The largest weight exponent a pca id may carry (2^(−40/2): a millionth of the heaviest part). */
export const PCA_MAX_EXPONENT = 40;

/** The weights a pca id's exponents stand for: 2^(−e/2). */
export function pcaWeights(exponents: readonly number[]): number[] {
  return exponents.map((e) => 2 ** (-e / 2));
}

/** Exponents (half-octaves below the heaviest, capped at PCA_MAX_EXPONENT) of positive weights. */
export function pcaExponents(weights: readonly number[]): number[] {
  const max = Math.max(...weights);
  return weights.map((w) => Math.min(PCA_MAX_EXPONENT, Math.max(0, Math.round(-2 * Math.log2(w / max)))));
}

/** The canonical pca id: bits with at most 3 decimals, then the exponents when given. */
export function pcaId(bitsPerValue: number, exponents: readonly number[] | null): StrategyId {
  const b = Number(bitsPerValue.toFixed(3));
  return exponents && exponents.length > 0 ? `pca:${b}@${exponents.join('.')}` : `pca:${b}`;
}

/** Parses "lowrank:8" etc.; throws an Error naming the bad id and the valid forms. */
export function parseStrategy(id: string): ParsedStrategy {
  const s = id.trim();
  if ((SIMPLE as readonly string[]).includes(s)) return { kind: s as (typeof SIMPLE)[number] };
  const pca = /^pca:(\d+(?:\.\d+)?)(?:@(\d+(?:\.\d+)*))?$/.exec(s);
  if (pca) {
    const b = Number(pca[1]);
    if (!(b > 0 && b <= PCA_MAX_BITS)) throw new Error(`strategy "${id}": bits per value must be above 0 and at most ${PCA_MAX_BITS}`);
    const exps = pca[2] ? pca[2].split('.').map(Number) : null;
    if (exps && exps.some((e) => e > PCA_MAX_EXPONENT)) throw new Error(`strategy "${id}": a weight exponent can be at most ${PCA_MAX_EXPONENT}`);
    return { kind: 'pca', bitsPerValue: Number(b.toFixed(3)), weightExponents: exps };
  }
  const m = /^(lowrank|hybrid):(\d+)$/.exec(s);
  if (m) {
    const n = Number(m[2]);
    if (m[1] === 'lowrank') {
      if (n < 1) throw new Error(`strategy "${id}": the rank must be at least 1`);
      return { kind: 'lowrank', rank: n };
    }
    return { kind: 'hybrid', exactLayers: n };
  }
  throw new Error(
    `unknown strategy "${id}": expected one of ${SIMPLE.join(', ')}, lowrank:<k>, hybrid:<n> or pca:<bits per value>[@<weights>]` +
      (s === ALL_STRATEGIES_WORD ? ' ("all" is a word of a strategy list, not a strategy)' : ''),
  );
}

/** The canonical id of a parsed strategy. */
export function strategyId(s: ParsedStrategy): StrategyId {
  if (s.kind === 'lowrank') return `lowrank:${s.rank}`;
  if (s.kind === 'hybrid') return `hybrid:${s.exactLayers}`;
  if (s.kind === 'pca') return pcaId(s.bitsPerValue, s.weightExponents);
  return s.kind;
}

/** The parameter `lowrank` takes when a list asks for every strategy (`all`). */
export const DEFAULT_LOWRANK_RANK = 8;
/** The parameter `hybrid` takes when a list asks for every strategy (`all`). */
export const DEFAULT_HYBRID_LAYERS = 2;
/** The bits per value `pca` takes when a list asks for every strategy: an eighth of a 16-bit cache. */
export const DEFAULT_PCA_BITS = 2;

/**
 * Every strategy once, the parameterised ones with their default parameter: what
 * `--strategies all` selects, what the demo compares, what a UI offers as "all".
 */
export const ALL_STRATEGIES: readonly StrategyId[] = [
  'exact',
  'base',
  'seed-minikv',
  'lragent',
  'delta-int8',
  'delta-int4',
  `lowrank:${DEFAULT_LOWRANK_RANK}`,
  `hybrid:${DEFAULT_HYBRID_LAYERS}`,
  `pca:${DEFAULT_PCA_BITS}`,
];

/** The word in a strategy list that stands for ALL_STRATEGIES. */
export const ALL_STRATEGIES_WORD = 'all';

/**
 * Parses a comma list, de-duplicates, and puts `exact` first (every comparison needs it).
 * `all` stands for ALL_STRATEGIES and may be combined with others ("all,lowrank:16").
 */
export function parseStrategyList(list: string): StrategyId[] {
  const ids = list
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)
    .flatMap((x) => (x === ALL_STRATEGIES_WORD ? [...ALL_STRATEGIES] : [strategyId(parseStrategy(x))]));
  const unique = [...new Set<StrategyId>(['exact', ...ids])];
  return unique;
}

/** The part of a model's shape that bounds strategy parameters. */
export interface StrategyModelShape {
  numLayers: number;
  numKvHeads: number;
  headDim: number;
}

/**
 * The largest rank lowrank:<k> can use: ΔK and ΔV of a layer are (document tokens) ×
 * (KV heads · head dim) matrices, so no SVD of them has a higher rank.
 */
export function maxLowrankRank(model: StrategyModelShape, documentTokens: number | null): number {
  const kvWidth = model.numKvHeads * model.headDim;
  return documentTokens !== null && documentTokens > 0 ? Math.min(kvWidth, documentTokens) : kvWidth;
}

/**
 * Why a strategy cannot run on this model, in words for people (no flag, no field path);
 * null when it can. `documentTokens` is null while the document is not counted yet.
 */
export function strategyProblem(id: StrategyId, model: StrategyModelShape, documentTokens: number | null): string | null {
  let s: ParsedStrategy;
  try {
    s = parseStrategy(id);
  } catch (e) {
    return (e as Error).message;
  }
  if (s.kind === 'hybrid' && s.exactLayers > model.numLayers) {
    return `hybrid:${s.exactLayers} keeps ${s.exactLayers} layers exact, but the model has only ${model.numLayers} layer${model.numLayers === 1 ? '' : 's'}: use at most hybrid:${model.numLayers}.`;
  }
  if (s.kind === 'pca' && s.weightExponents && s.weightExponents.length !== 2 * model.numLayers) {
    return `${id} carries ${s.weightExponents.length} weights, but the model has ${model.numLayers} layers: a pca id needs one weight for K and one for V of every layer (${2 * model.numLayers}); fit it again on this model.`;
  }
  if (s.kind === 'lowrank') {
    const max = maxLowrankRank(model, documentTokens);
    if (s.rank > max) {
      const kvWidth = model.numKvHeads * model.headDim;
      const why =
        documentTokens !== null && documentTokens < kvWidth
          ? `the document has ${documentTokens} tokens`
          : `a layer's K and V are ${kvWidth} wide (${model.numKvHeads} KV head${model.numKvHeads === 1 ? '' : 's'} × ${model.headDim})`;
      return `lowrank:${s.rank} asks for rank ${s.rank}, but ${why}, so the rank can be at most ${max}: use lowrank:${max} or less.`;
    }
  }
  return null;
}
