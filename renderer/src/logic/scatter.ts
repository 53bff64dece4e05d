// Quality against memory: one point per (adapter, strategy).
import type { Report } from '../../../shared/report.js';
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

export function scatterPoints(report: Report, metric: QualityMetric): ScatterPoint[] {
  const order = orderStrategies(report.settings.strategies);
  const out: ScatterPoint[] = [];
  report.adapters.forEach((a, i) => {
    for (const id of order) {
      const s = a.strategies.find((x) => x.strategy === id);
      if (!s) continue;
      out.push({ adapter: i, adapterName: a.name, strategy: id, bytes: s.bytes, value: s.scores[metric] });
    }
  });
  return out;
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
