// Strategy ids (DESIGN.md, "KV strategies"): the one parser every layer uses.

export type StrategyId =
  | 'exact'
  | 'base'
  | 'seed-minikv'
  | 'lragent'
  | 'delta-int8'
  | 'delta-int4'
  | `lowrank:${number}`
  | `hybrid:${number}`;

export type ParsedStrategy =
  | { kind: 'exact' | 'base' | 'seed-minikv' | 'lragent' | 'delta-int8' | 'delta-int4' }
  | { kind: 'lowrank'; rank: number }
  | { kind: 'hybrid'; exactLayers: number };

const SIMPLE = ['exact', 'base', 'seed-minikv', 'lragent', 'delta-int8', 'delta-int4'] as const;

export const STRATEGY_DESCRIPTIONS: Record<ParsedStrategy['kind'], string> = {
  exact: "the adapter's own K and V (the reference)",
  base: 'nothing: K and V from the base model',
  'seed-minikv': 'pinv(B_v)·(V_lora − V_base), r values per token per layer; K from base',
  lragent: "the adapter's own low-rank V input s·A_v·x, r per token per layer; K from base",
  'delta-int8': 'ΔK, ΔV quantized to int8, one scale per token per head',
  'delta-int4': 'ΔK, ΔV quantized to int4, one scale per token per head',
  lowrank: 'truncated SVD of ΔK, ΔV per layer (rank k)',
  hybrid: 'seed-minikv plus exact K/V for the n layers where it errs most',
};

/** Parses "lowrank:8" etc.; throws an Error naming the bad id and the valid forms. */
export function parseStrategy(id: string): ParsedStrategy {
  const s = id.trim();
  if ((SIMPLE as readonly string[]).includes(s)) return { kind: s as (typeof SIMPLE)[number] };
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
    `unknown strategy "${id}": expected one of ${SIMPLE.join(', ')}, lowrank:<k> or hybrid:<n>` +
      (s === ALL_STRATEGIES_WORD ? ' ("all" is a word of a strategy list, not a strategy)' : ''),
  );
}

/** The canonical id of a parsed strategy. */
export function strategyId(s: ParsedStrategy): StrategyId {
  if (s.kind === 'lowrank') return `lowrank:${s.rank}`;
  if (s.kind === 'hybrid') return `hybrid:${s.exactLayers}`;
  return s.kind;
}

/** The parameter `lowrank` takes when a list asks for every strategy (`all`). */
export const DEFAULT_LOWRANK_RANK = 8;
/** The parameter `hybrid` takes when a list asks for every strategy (`all`). */
export const DEFAULT_HYBRID_LAYERS = 2;

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
