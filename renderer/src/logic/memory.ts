// Memory views: per strategy, the shared base cache plus every adapter's store
// (stacked), and total cache memory against the number of adapters.
import type { Report } from '../../../shared/report.js';
import { memorySeries, summaryRows } from '../../../shared/report-views.js';
import type { StrategyId } from '../../../shared/strategies.js';
import { strategyResult } from './heatmap.js';
import { orderStrategies } from './strategy-order.js';

export interface MemoryBarSeries {
  /** 'base' for the shared base cache, else the adapter's index. */
  id: 'base' | number;
  name: string;
  /** Bytes per strategy, in `strategies` order. */
  values: number[];
}

export interface MemoryBars {
  strategies: StrategyId[];
  series: MemoryBarSeries[];
  totals: number[];
  /** METRIC_HELP.totalShare per strategy: total ÷ exact's total (1 for exact; NaN without exact). */
  ratioToExact: number[];
  /** METRIC_HELP.storeShare per strategy and adapter: store ÷ that adapter's exact cache (NaN without exact). */
  storeShare: number[][];
}

/**
 * `exact` needs no base cache (each adapter keeps its own K/V); every other strategy
 * rebuilds from the shared base cache, counted once.
 */
export function needsBase(strategy: StrategyId): boolean {
  return strategy !== 'exact';
}

/** Built on shared/report-views' memorySeries, so the chart and the exported reports agree. */
export function memoryBars(report: Report): MemoryBars {
  const byStrategy = new Map(memorySeries(report).map((p) => [p.strategy, p]));
  const strategies = orderStrategies([...byStrategy.keys()]);
  const base: MemoryBarSeries = {
    id: 'base',
    name: 'shared base cache',
    values: strategies.map((s) => (needsBase(s) ? report.memory.baseCacheBytes : 0)),
  };
  const adapters: MemoryBarSeries[] = report.adapters.map((a, i) => ({
    id: i,
    name: a.name,
    values: strategies.map((s) => byStrategy.get(s)?.perAdapter[i] ?? 0),
  }));
  const series = [base, ...adapters];
  const totals = strategies.map((s) => byStrategy.get(s)?.total ?? 0);
  const ratioToExact = strategies.map((s) => byStrategy.get(s)?.totalVsExact ?? Number.NaN);
  // The same numbers as the reports' summary (shared/report-views summaryRow.bytesVsExact).
  const shares = new Map(summaryRows(report).map((r) => [`${r.adapter}|${r.strategy}`, r.bytesVsExact ?? Number.NaN]));
  const storeShare = strategies.map((s) => report.adapters.map((a) => shares.get(`${a.name}|${s}`) ?? Number.NaN));
  return { strategies, series, totals, ratioToExact, storeShare };
}

export interface ScalingLine {
  strategy: StrategyId;
  /** Bytes every configuration of this strategy pays once (the shared base cache). */
  fixedBytes: number;
  /** Mean bytes one more adapter adds (mean over the report's adapters). */
  perAdapterBytes: number;
  /** Adapters that fit in the budget; Infinity when one adds nothing; 0 when even the fixed part does not fit. */
  fits: number;
}

/** Total cache bytes of n adapters under a line. */
export function totalFor(line: ScalingLine, n: number): number {
  return line.fixedBytes + n * line.perAdapterBytes;
}

export function adaptersThatFit(fixedBytes: number, perAdapterBytes: number, budgetBytes: number): number {
  if (budgetBytes < fixedBytes) return 0;
  if (perAdapterBytes <= 0) return Number.POSITIVE_INFINITY;
  return Math.floor((budgetBytes - fixedBytes) / perAdapterBytes);
}

export function scalingLines(report: Report, budgetBytes: number): ScalingLine[] {
  const n = Math.max(1, report.adapters.length);
  return orderStrategies(report.settings.strategies).map((strategy) => {
    const fixedBytes = needsBase(strategy) ? report.memory.baseCacheBytes : 0;
    const perAdapterBytes = report.adapters.reduce((sum, a) => sum + (strategyResult(a, strategy)?.bytes ?? 0), 0) / n;
    return { strategy, fixedBytes, perAdapterBytes, fits: adaptersThatFit(fixedBytes, perAdapterBytes, budgetBytes) };
  });
}

/** The smallest 1, 2 or 5 × 10^k at or above n (a round place for an axis to end). */
export function niceCeil(n: number): number {
  if (!(n > 1)) return 1;
  const pow = 10 ** Math.floor(Math.log10(n));
  return ([1, 2, 5, 10].map((f) => f * pow).find((x) => x >= n) ?? 10 * pow);
}

/**
 * How far the adapter axis of the scaling chart goes: past the point where exact leaves
 * the budget, ending on a round whole number of adapters that is also the last point drawn.
 */
export function scalingAxisMax(lines: readonly ScalingLine[], adapters: number): number {
  const finite = lines.map((l) => l.fits).filter((f) => Number.isFinite(f) && f > 0);
  const smallest = finite.length ? Math.min(...finite) : 0;
  const want = Math.max(adapters * 2, Math.ceil(smallest * 1.5), 8);
  return niceCeil(Math.min(want, 1_000_000));
}

/** Whole adapter counts from 1 to max, at most ~`points` of them, always ending at max. */
export function adapterCounts(max: number, points = 40): number[] {
  const step = Math.max(1, Math.ceil(max / points));
  const out: number[] = [];
  for (let n = 1; n < max; n += step) out.push(n);
  out.push(max);
  return out;
}
