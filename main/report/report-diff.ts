// Which numbers of a re-run moved from a saved report, beyond a tolerance. Pure: two
// Reports in, a list of moves out. `adapterlens verify` (verify.ts) is its user.
//
// Tolerances. The engine is deterministic on one machine (same inputs → bit-identical
// numbers), so a re-run there moves nothing at all. Across machines, threads or
// backends fp32 reductions run in another order and cache values differ at ~1e-6
// relative; errors, KL and probabilities inherit that, a little amplified by depth and
// softmax. A value is therefore "moved" when
//
//     |new − old| > tolerance × max(|old|, 0.01)
//
// i.e. a relative tolerance, with a floor so that values near zero (exact's errors,
// KL ≈ 0) are compared at an absolute 0.01 × tolerance instead of amplifying fp noise.
// The default, 1e-4, is ~100× the cross-machine noise and far below what a changed
// adapter, model, tokenizer or engine does (those move errors by 1e-2 and more).
// Discrete results (token ids, generated tokens, bytes, first divergence, hybrid's
// exact layers) must match exactly.
import type { AdapterResult, Report, StrategyResult } from '../../shared/report.js';

export type MetricFamily = 'errors' | 'scores' | 'probs';

/** Relative tolerance per metric family (see the header for the rule). */
export type Tolerances = Record<MetricFamily, number>;

export const DEFAULT_TOLERANCE = 1e-4;
export const DEFAULT_TOLERANCES: Tolerances = { errors: DEFAULT_TOLERANCE, scores: DEFAULT_TOLERANCE, probs: DEFAULT_TOLERANCE };

/** Which metrics each family covers (for help texts and docs). */
export const FAMILY_METRICS: Record<MetricFamily, string> = {
  errors: 'per-layer kRelErr, vRelErr, outsideSpan and the layer × head and layer × token grids',
  scores: 'teacher-forced KL per position, meanKl, top1Agreement, perplexityRatio',
  probs: "the probability each generated token had",
};

/** Below this magnitude a value is compared absolutely (see the header). */
const FLOOR = 0.01;

export interface Move {
  /** null for run-wide values (document/prompt tokens). */
  adapter: string | null;
  strategy: string | null;
  /** The layer the value belongs to, where it belongs to one. */
  layer: number | null;
  /** e.g. "vRelErr", "heads.v[head 1]", "generation.tokens", "bytes". */
  metric: string;
  old: string;
  new: string;
  /**
   * A cell of a grid or one position of a per-token series: true moves, but the per-layer
   * and per-strategy values above them say it first (a reader lists those first).
   */
  detail: boolean;
}

export function moved(oldV: number, newV: number, tolerance: number): boolean {
  if (Number.isNaN(oldV) || Number.isNaN(newV)) return Number.isNaN(oldV) !== Number.isNaN(newV);
  if (oldV === newV) return false;
  return Math.abs(newV - oldV) > tolerance * Math.max(Math.abs(oldV), FLOOR);
}

const show = (n: number): string => (Number.isFinite(n) ? String(Number(n.toPrecision(6))) : String(n));

/** Short text of a token list for a message: the first difference and a few tokens around it. */
function tokenText(xs: readonly number[], from: number): string {
  const part = xs.slice(from, from + 6).join(', ');
  return `[${from > 0 ? '…, ' : ''}${part}${xs.length > from + 6 ? ', …' : ''}] (${xs.length} tokens)`;
}

function firstDifference(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

type Where = Pick<Move, 'adapter' | 'strategy' | 'layer'>;

class Differ {
  readonly moves: Move[] = [];
  constructor(private readonly tol: Tolerances) {}

  num(where: Where, metric: string, family: MetricFamily, a: number | null | undefined, b: number | null | undefined, detail = false): void {
    const x = a ?? Number.NaN;
    const y = b ?? Number.NaN;
    if (moved(x, y, this.tol[family])) this.moves.push({ ...where, metric, old: show(x), new: show(y), detail });
  }

  exact(where: Where, metric: string, a: unknown, b: unknown): void {
    if (JSON.stringify(a) !== JSON.stringify(b)) this.moves.push({ ...where, metric, old: JSON.stringify(a) ?? 'none', new: JSON.stringify(b) ?? 'none', detail: false });
  }

  tokens(where: Where, metric: string, a: readonly number[], b: readonly number[]): void {
    const i = firstDifference(a, b);
    if (i >= 0) this.moves.push({ ...where, metric: `${metric} (from index ${i})`, old: tokenText(a, i), new: tokenText(b, i), detail: false });
  }

  series(where: Where, metric: string, family: MetricFamily, a: readonly number[], b: readonly number[]): void {
    if (a.length !== b.length) {
      this.moves.push({ ...where, metric: `${metric} length`, old: String(a.length), new: String(b.length), detail: false });
      return;
    }
    a.forEach((x, i) => this.num(where, `${metric}[${i}]`, family, x, b[i], true));
  }

  grid(adapter: string, strategy: string, metric: string, a: readonly (readonly number[])[], b: readonly (readonly number[])[], column: string): void {
    for (const [layer, row] of a.entries()) {
      const other = b[layer] ?? [];
      if (row.length !== other.length) {
        this.moves.push({ adapter, strategy, layer, metric: `${metric} columns`, old: String(row.length), new: String(other.length), detail: false });
        continue;
      }
      row.forEach((x, c) => this.num({ adapter, strategy, layer }, `${metric}[${column} ${c}]`, 'errors', x, other[c], true));
    }
    if (b.length !== a.length) this.moves.push({ adapter, strategy, layer: null, metric: `${metric} rows`, old: String(a.length), new: String(b.length), detail: false });
  }

  strategyResult(adapter: string, s: StrategyResult, f: StrategyResult): void {
    const at = { adapter, strategy: s.strategy, layer: null };
    this.exact(at, 'bytes', s.bytes, f.bytes);
    this.exact(at, 'exactLayers', s.exactLayers ?? null, f.exactLayers ?? null);
    for (const l of s.layers) {
      const fl = f.layers[l.layer];
      const here = { adapter, strategy: s.strategy, layer: l.layer };
      if (!fl) {
        this.moves.push({ ...here, metric: 'layer', old: 'present', new: 'missing', detail: false });
        continue;
      }
      this.num(here, 'kRelErr', 'errors', l.kRelErr, fl.kRelErr);
      this.num(here, 'vRelErr', 'errors', l.vRelErr, fl.vRelErr);
      if (l.outsideSpan !== undefined || fl.outsideSpan !== undefined) this.num(here, 'outsideSpan', 'errors', l.outsideSpan, fl.outsideSpan);
    }
    this.grid(adapter, s.strategy, 'heads.k', s.heads.k, f.heads.k, 'head');
    this.grid(adapter, s.strategy, 'heads.v', s.heads.v, f.heads.v, 'head');
    this.exact(at, 'tokens.binSize', s.tokens.binSize, f.tokens.binSize);
    this.grid(adapter, s.strategy, 'tokens.k', s.tokens.k, f.tokens.k, 'bin');
    this.grid(adapter, s.strategy, 'tokens.v', s.tokens.v, f.tokens.v, 'bin');
    this.tokens(at, 'generation.tokens', s.generation.tokens, f.generation.tokens);
    this.exact(at, 'generation.firstDivergence', s.generation.firstDivergence, f.generation.firstDivergence);
    // Probabilities and per-position scores only compare position by position while the
    // generations agree; a moved token is already reported above.
    if (firstDifference(s.generation.tokens, f.generation.tokens) < 0) {
      this.series(at, 'generation.probs', 'probs', s.generation.probs, f.generation.probs);
      this.series(at, 'scores.kl', 'scores', s.scores.kl, f.scores.kl);
      this.series(at, 'scores.top1', 'scores', s.scores.top1, f.scores.top1);
    }
    this.num(at, 'scores.meanKl', 'scores', s.scores.meanKl, f.scores.meanKl);
    this.num(at, 'scores.top1Agreement', 'scores', s.scores.top1Agreement, f.scores.top1Agreement);
    this.num(at, 'scores.perplexityRatio', 'scores', s.scores.perplexityRatio, f.scores.perplexityRatio);
  }

  adapterResult(a: AdapterResult, f: AdapterResult): void {
    for (const s of a.strategies) {
      const fs = f.strategies.find((x) => x.strategy === s.strategy);
      if (!fs) this.moves.push({ adapter: a.name, strategy: s.strategy, layer: null, metric: 'result', old: 'present', new: 'missing', detail: false });
      else this.strategyResult(a.name, s, fs);
    }
  }
}

/** Every value of `fresh` that moved from `saved` beyond the tolerances, in report order. */
export function diffReports(saved: Report, fresh: Report, tolerances: Tolerances = DEFAULT_TOLERANCES): Move[] {
  const d = new Differ(tolerances);
  const run = { adapter: null, strategy: null, layer: null };
  d.tokens(run, 'documentTokens', saved.documentTokens, fresh.documentTokens);
  d.tokens(run, 'promptTokens', saved.promptTokens, fresh.promptTokens);
  d.exact(run, 'memory.baseCacheBytes', saved.memory.baseCacheBytes, fresh.memory.baseCacheBytes);
  for (const [i, a] of saved.adapters.entries()) {
    const f = fresh.adapters.find((x) => x.name === a.name) ?? fresh.adapters[i];
    if (!f) d.moves.push({ adapter: a.name, strategy: null, layer: null, metric: 'adapter', old: 'present', new: 'missing', detail: false });
    else d.adapterResult(a, f);
  }
  return d.moves;
}
