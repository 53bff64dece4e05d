// Quality against memory: one point per (adapter, strategy).
import type { Report } from '../../../shared/report.js';
import { summaryRows } from '../../../shared/report-views.js';
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
}

/** From shared/report-views' summary rows (the numbers the exported reports show). */
export function scatterPoints(report: Report, metric: QualityMetric): ScatterPoint[] {
  const order = orderStrategies(report.settings.strategies);
  const rank = (s: StrategyId): number => (order.includes(s) ? order.indexOf(s) : order.length);
  const index = new Map(report.adapters.map((a, i) => [a.name, i]));
  return summaryRows(report)
    .map((r) => ({ adapter: index.get(r.adapter) ?? 0, adapterName: r.adapter, strategy: r.strategy, bytes: r.bytes, value: r[metric] }))
    .sort((a, b) => a.adapter - b.adapter || rank(a.strategy) - rank(b.strategy));
}

/** Points no other point beats on both bytes (lower) and quality (lower KL/perplexity, higher top-1). */
export function paretoFront(points: readonly ScatterPoint[], metric: QualityMetric): ScatterPoint[] {
  const better = (a: number, b: number): boolean => (metric === 'top1Agreement' ? a > b : a < b);
  const betterOrEqual = (a: number, b: number): boolean => a === b || better(a, b);
  return points.filter(
    (p) =>
      !points.some(
        (q) => q !== p && q.bytes <= p.bytes && betterOrEqual(q.value, p.value) && (q.bytes < p.bytes || better(q.value, p.value)),
      ),
  );
}
