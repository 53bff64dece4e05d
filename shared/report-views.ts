// Pure derivations from an `adapterlens.report/1` Report that every view of a comparison
// needs: the per-strategy summary, per-layer rows, memory series, quality points and the
// divergence of each generation from `exact`. The report renderers (main/report/) and
// the app's UI both use these, so the numbers in a table, a chart and an exported file
// are computed once, the same way. shared/ imports nothing outside shared/.
//
// API note: other code imports this module; add fields, do not rename or remove them.
import type { AdapterResult, Report, StrategyResult } from './report.js';
import type { StrategyId } from './strategies.js';

/** One (adapter, strategy): what a summary table row shows. */
export interface SummaryRow {
  adapter: string;
  strategy: StrategyId;
  /** Bytes the strategy's per-adapter store holds. */
  bytes: number;
  /** bytes / the adapter's exact cache bytes (1 for exact, 0 for base); null when exact's bytes are unknown or 0. */
  bytesVsExact: number | null;
  /** Means over layers of the per-layer relative errors (NaN when there are no layers). */
  meanKRelErr: number;
  meanVRelErr: number;
  /** The layer where V errs most (the drift the product measures), and its K/V errors; null when there are no layers. */
  worstLayer: { layer: number; kRelErr: number; vRelErr: number } | null;
  meanKl: number;
  top1Agreement: number;
  perplexityRatio: number;
  /** First generated token that differs from exact's; null when none differs. */
  firstDivergence: number | null;
  generatedTokens: number;
  /** hybrid:<n>: the layers kept exact. */
  exactLayers: number[] | null;
}

/** One (adapter, strategy, layer). */
export interface LayerRow {
  adapter: string;
  strategy: StrategyId;
  layer: number;
  kRelErr: number;
  vRelErr: number;
  /** seed-minikv only; null where not measured. */
  outsideSpan: number | null;
  /** hybrid: this layer is stored exactly. */
  keptExact: boolean;
  /** Per KV head of this layer (empty when the report has no head grid). */
  kHeads: number[];
  vHeads: number[];
}

/** Memory for one strategy: per adapter, and for all adapters sharing one base cache. */
export interface MemoryPoint {
  strategy: StrategyId;
  /** Store bytes per adapter, in report.adapters order (null where the adapter did not run the strategy). */
  perAdapter: (number | null)[];
  /**
   * What serving every adapter of the report from this strategy keeps in memory: the
   * shared base cache once (not for exact, which needs no base) plus each adapter's store.
   */
  total: number;
  /**
   * total / exact's total: METRIC_HELP.totalShare ("all adapters ÷ exact (base once)");
   * null when exact's total is unknown or 0.
   */
  totalVsExact: number | null;
}

/** One (adapter, strategy) on a cost/quality plane. */
export interface QualityPoint {
  adapter: string;
  strategy: StrategyId;
  bytes: number;
  meanVRelErr: number;
  meanKl: number;
  top1Agreement: number;
}

/** One generated token, marked by whether the generation still agrees with exact's there. */
export interface DivergenceToken {
  index: number;
  piece: string;
  token: number;
  prob: number;
  /** True from the first divergence on (positions after it are no longer comparable). */
  diverged: boolean;
}

function mean(xs: readonly number[]): number {
  return xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** The adapter's `exact` result, the reference of every other strategy; undefined if missing. */
export function exactOf(adapter: AdapterResult): StrategyResult | undefined {
  return adapter.strategies.find((s) => s.strategy === 'exact');
}

/** The strategies of a report in the order the run used (settings first, then any others found). */
export function reportStrategies(report: Report): StrategyId[] {
  const ids = new Set<StrategyId>(report.settings.strategies);
  for (const a of report.adapters) for (const s of a.strategies) ids.add(s.strategy);
  return [...ids];
}

export function summaryRow(adapter: AdapterResult, s: StrategyResult): SummaryRow {
  const exactBytes = exactOf(adapter)?.bytes ?? 0;
  let worst: SummaryRow['worstLayer'] = null;
  for (const l of s.layers) if (!worst || l.vRelErr > worst.vRelErr) worst = { layer: l.layer, kRelErr: l.kRelErr, vRelErr: l.vRelErr };
  return {
    adapter: adapter.name,
    strategy: s.strategy,
    bytes: s.bytes,
    bytesVsExact: exactBytes > 0 ? s.bytes / exactBytes : null,
    meanKRelErr: mean(s.layers.map((l) => l.kRelErr)),
    meanVRelErr: mean(s.layers.map((l) => l.vRelErr)),
    worstLayer: worst,
    meanKl: s.scores.meanKl,
    top1Agreement: s.scores.top1Agreement,
    perplexityRatio: s.scores.perplexityRatio,
    firstDivergence: s.generation.firstDivergence,
    generatedTokens: s.generation.tokens.length,
    exactLayers: s.exactLayers ?? null,
  };
}

/** One row per (adapter, strategy), adapters in report order, strategies in run order. */
export function summaryRows(report: Report): SummaryRow[] {
  return report.adapters.flatMap((a) => a.strategies.map((s) => summaryRow(a, s)));
}

/** One adapter's rows, one per (strategy, layer), strategies in run order. */
export function adapterLayerRows(a: AdapterResult): LayerRow[] {
  const rows: LayerRow[] = [];
  for (const s of a.strategies) {
    const kept = new Set(s.exactLayers ?? []);
    for (const l of s.layers) {
      rows.push({
        adapter: a.name,
        strategy: s.strategy,
        layer: l.layer,
        kRelErr: l.kRelErr,
        vRelErr: l.vRelErr,
        outsideSpan: l.outsideSpan ?? null,
        keptExact: kept.has(l.layer),
        kHeads: s.heads.k[l.layer] ?? [],
        vHeads: s.heads.v[l.layer] ?? [],
      });
    }
  }
  return rows;
}

/** One row per (adapter, strategy, layer). */
export function layerRows(report: Report): LayerRow[] {
  return report.adapters.flatMap(adapterLayerRows);
}

/** Memory per strategy, in run order. */
export function memorySeries(report: Report): MemoryPoint[] {
  const points = reportStrategies(report).map((strategy) => {
    const perAdapter = report.adapters.map((a) => a.strategies.find((s) => s.strategy === strategy)?.bytes ?? null);
    const stores = perAdapter.reduce<number>((sum, b) => sum + (b ?? 0), 0);
    return { strategy, perAdapter, total: (strategy === 'exact' ? 0 : report.memory.baseCacheBytes) + stores, totalVsExact: null as number | null };
  });
  const exactTotal = points.find((p) => p.strategy === 'exact')?.total ?? 0;
  for (const p of points) p.totalVsExact = exactTotal > 0 ? p.total / exactTotal : null;
  return points;
}

/** The quality numbers a cost/quality view can plot. */
export type QualityMetric = 'meanKl' | 'top1Agreement' | 'perplexityRatio' | 'meanVRelErr';

/**
 * How far a value is from exact's own (0 = exact): what "better" means on a Pareto front.
 * A perplexity ratio below 1 is a difference from exact as much as one above 1.
 */
export function distanceFromExact(metric: QualityMetric, value: number): number {
  if (metric === 'top1Agreement') return 1 - value;
  if (metric === 'perplexityRatio') return Math.abs(Math.log(value));
  return value;
}

/**
 * The Pareto front of each adapter on its own (METRIC_HELP.pareto): the points no other
 * point of the same adapter beats on both bytes (fewer) and distance from exact (smaller).
 * Points with an unmeasured value are on no front.
 */
export function paretoPerAdapter<P extends { adapter: string | number; bytes: number }>(points: readonly P[], distance: (p: P) => number): Set<P> {
  const front = new Set<P>();
  for (const p of points) {
    const dp = distance(p);
    if (!Number.isFinite(dp)) continue;
    const beaten = points.some((q) => {
      if (q === p || q.adapter !== p.adapter) return false;
      const dq = distance(q);
      return Number.isFinite(dq) && q.bytes <= p.bytes && dq <= dp && (q.bytes < p.bytes || dq < dp);
    });
    if (!beaten) front.add(p);
  }
  return front;
}

/** Every (adapter, strategy) with its cost and its quality, for a scatter plot. */
export function qualityPoints(report: Report): QualityPoint[] {
  return summaryRows(report).map((r) => ({
    adapter: r.adapter,
    strategy: r.strategy,
    bytes: r.bytes,
    meanVRelErr: r.meanVRelErr,
    meanKl: r.meanKl,
    top1Agreement: r.top1Agreement,
  }));
}

/** One point of an adapter's quality/bytes frontier: a strategy's row or a fit's budget point. */
export interface FrontierRow {
  adapter: string;
  /** The strategy (for a budget point: the pca id it was encoded with). */
  strategy: StrategyId;
  kind: 'strategy' | 'budget point';
  bytes: number;
  meanKl: number;
  top1Agreement: number;
  /** On its adapter's Pareto front of bytes against mean KL (METRIC_HELP.pareto). */
  pareto: boolean;
}

/**
 * Every strategy and every budget point a fit measured, per adapter, cheapest first, with
 * each adapter's Pareto front of bytes against mean KL marked: the frontier of issue 15 as the
 * reports and the app show it.
 */
export function frontierRows(report: Report): FrontierRow[] {
  const rows: FrontierRow[] = [];
  for (const a of report.adapters) {
    const own: FrontierRow[] = a.strategies.map((s) => ({ adapter: a.name, strategy: s.strategy, kind: 'strategy' as const, bytes: s.bytes, meanKl: s.scores.meanKl, top1Agreement: s.scores.top1Agreement, pareto: false }));
    for (const p of a.fit?.points ?? []) own.push({ adapter: a.name, strategy: p.strategy, kind: 'budget point', bytes: p.bytes, meanKl: p.meanKl, top1Agreement: p.top1Agreement, pareto: false });
    const front = paretoPerAdapter(own, (r) => distanceFromExact('meanKl', r.meanKl));
    for (const r of own) r.pareto = front.has(r);
    rows.push(...own.sort((x, y) => x.bytes - y.bytes || x.meanKl - y.meanKl));
  }
  return rows;
}

/** A generation's tokens, each marked as still agreeing with exact's or past the first divergence. */
export function divergenceTokens(s: StrategyResult): DivergenceToken[] {
  const g = s.generation;
  const first = g.firstDivergence;
  return g.tokens.map((token, index) => ({
    index,
    token,
    piece: g.pieces[index] ?? '',
    prob: g.probs[index] ?? Number.NaN,
    diverged: first !== null && index >= first,
  }));
}
