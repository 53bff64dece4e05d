// Quality against memory: one point per (adapter, strategy), a Pareto front per adapter,
// a log axis for KL and the perplexity ratio (they span decades), and side offsets for
// markers that would hide each other.
import type { Report } from '../../../shared/report.js';
import { distanceFromExact, paretoPerAdapter, summaryRows } from '../../../shared/report-views.js';
import type { StrategyId } from '../../../shared/strategies.js';
import { orderStrategies } from './strategy-order.js';

export type QualityMetric = 'meanKl' | 'top1Agreement' | 'perplexityRatio';

export const METRIC_LABELS: Record<QualityMetric, string> = {
  meanKl: 'mean KL vs exact (nats)',
  top1Agreement: 'top-1 agreement with exact',
  perplexityRatio: 'perplexity ratio vs exact',
};

export interface ScatterPoint {
  adapter: number;
  adapterName: string;
  strategy: StrategyId;
  bytes: number;
  value: number;
  /** A budget point of the adapter's fit (a weighted pca store it measured), not a strategy row. */
  budgetPoint?: boolean;
}

/** From shared/report-views' summary rows (the numbers the exported reports show). */
export function scatterPoints(report: Report, metric: QualityMetric): ScatterPoint[] {
  const order = orderStrategies(report.settings.strategies);
  const rank = (s: StrategyId): number => (order.includes(s) ? order.indexOf(s) : order.length);
  const index = new Map(report.adapters.map((a, i) => [a.name, i]));
  const rows: ScatterPoint[] = summaryRows(report)
    .map((r) => ({ adapter: index.get(r.adapter) ?? 0, adapterName: r.adapter, strategy: r.strategy, bytes: r.bytes, value: r[metric] }))
    .sort((a, b) => a.adapter - b.adapter || rank(a.strategy) - rank(b.strategy));
  // The fits' budget points (the frontier of issue 15): KL and top-1 were measured for them.
  if (metric !== 'perplexityRatio') {
    for (const [ai, a] of report.adapters.entries()) {
      for (const p of a.fit?.points ?? []) {
        rows.push({ adapter: ai, adapterName: a.name, strategy: p.strategy, bytes: p.bytes, value: metric === 'meanKl' ? p.meanKl : p.top1Agreement, budgetPoint: true });
      }
    }
  }
  return rows;
}

/**
 * The points on their own adapter's Pareto front: no other strategy of the same adapter
 * stores fewer bytes and is at least as close to exact (a perplexity ratio's distance is
 * |ln ratio|, so exact's 1 is never beaten by a ratio below 1).
 */
export function paretoFront(points: readonly ScatterPoint[], metric: QualityMetric): ScatterPoint[] {
  const front = paretoPerAdapter(points, (p) => distanceFromExact(metric, p.value));
  return points.filter((p) => front.has(p));
}

export function usesLogAxis(metric: QualityMetric): boolean {
  return metric !== 'top1Agreement';
}

/** Where a value of 0 (exact's KL) is drawn on a log axis: a decade under the smallest positive value. */
export function logFloor(values: readonly number[]): number {
  const positive = values.filter((v) => Number.isFinite(v) && v > 0);
  return positive.length ? Math.min(...positive) / 10 : 1e-6;
}

/** A value as drawn: clamped to the floor on a log axis; null where not measured. */
export function plotted(metric: QualityMetric, value: number, floor: number): number | null {
  if (!Number.isFinite(value)) return null;
  return usesLogAxis(metric) ? Math.max(floor, value) : value;
}

/**
 * Horizontal pixel offsets for markers that would cover each other (within about a
 * marker's width on both axes), spread evenly around their true position.
 */
export function overlapOffsets(points: readonly ScatterPoint[], metric: QualityMetric, spacingPx = 12): Map<ScatterPoint, number> {
  const floor = logFloor(points.map((p) => p.value));
  const xs = points.map((p) => p.bytes);
  const xMax = Math.max(1, ...xs);
  const ys = points.map((p) => plotted(metric, p.value, floor));
  const finite = ys.filter((y): y is number => y !== null);
  const log = usesLogAxis(metric);
  const t = (y: number): number => (log ? Math.log10(y) : y);
  const yLo = finite.length ? Math.min(...finite.map(t)) : 0;
  const yHi = finite.length ? Math.max(...finite.map(t)) : 1;
  const span = yHi - yLo || 1;
  const norm = points.map((p, i) => ({ p, x: p.bytes / xMax, y: ys[i] === null || ys[i] === undefined ? Number.NaN : (t(ys[i]!) - yLo) / span }));
  const offsets = new Map<ScatterPoint, number>();
  const placed = new Set<number>();
  norm.forEach((a, i) => {
    if (placed.has(i) || Number.isNaN(a.y)) return;
    const group = [i];
    norm.forEach((b, j) => {
      if (j <= i || placed.has(j) || Number.isNaN(b.y)) return;
      if (Math.abs(a.x - b.x) < 0.02 && Math.abs(a.y - b.y) < 0.03) group.push(j);
    });
    group.forEach((g, k) => {
      placed.add(g);
      offsets.set(norm[g]!.p, group.length > 1 ? (k - (group.length - 1) / 2) * spacingPx : 0);
    });
  });
  return offsets;
}
