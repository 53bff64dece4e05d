// Fit to budget (README, "Compare adapters from the command line"; CompareRequest.fit): the pure part of it. The
// runner measures; this module turns what it measured into weights, the bit rates to try and
// the choice, so that every rule here is testable without an engine.
//
//   1. probes: each part p (a layer's K or V) coded alone by pca at the probe rate, every other
//      part exact; its mean KL against exact and its squared error (the rebuilt K or V of that
//      layer against exact's) give the part's sensitivity w_p = KL_p / sqErr_p. KL is close to
//      additive over parts at these error levels (measured on the demo model: the sum of the
//      parts' KLs is within a few % of the KL with every part coded), so w_p is what the
//      allocation should weigh each part's squared error by.
//   2. points: pca stores with those weights at a ladder of bit rates, each scored.
//   3. the choice: the cheapest point meeting the targets (within the budget).
import type { FitRequest } from '../../shared/compare.js';
import type { FitPoint } from '../../shared/report.js';
import { PCA_MAX_BITS, DEFAULT_PCA_BITS, pcaExponents, pcaId, type StrategyId } from '../../shared/strategies.js';

/** Bit rates a target-KL fit tries (bits per cached value; 2 is an eighth of a 16-bit cache). */
export const FIT_LADDER = [0.25, 0.375, 0.5, 0.75, 1, 1.25, 1.5, 2, 2.5, 3, 4, 6, 8] as const;

/** Sensitivity probes a fit runs (and holds caches for) at once. */
export const PROBES_PER_PASS = 4;

/** Cached values of one adapter's K/V over `tokens` document tokens (what bits per value count). */
export function cachedValues(shape: { numLayers: number; numKvHeads: number; headDim: number }, tokens: number): number {
  return shape.numLayers * 2 * shape.numKvHeads * shape.headDim * tokens;
}

/** The bits per value a byte budget allows (3 decimals, rounded down), capped at PCA_MAX_BITS. */
export function bitsForBudget(budgetBytes: number, values: number): number {
  return Math.min(PCA_MAX_BITS, Math.floor(((8 * budgetBytes) / values) * 1000) / 1000);
}

/** The rate the probes code their part at: the budget's, or the default pca rate. */
export function probeBits(fit: FitRequest, values: number): number {
  return fit.budgetBytes !== undefined ? Math.max(0.125, bitsForBudget(fit.budgetBytes, values)) : DEFAULT_PCA_BITS;
}

/** The bit rates to encode and score: the ladder (within the budget), and the budget's own rate. */
export function fitRates(fit: FitRequest, values: number): number[] {
  if (fit.budgetBytes === undefined) return [...FIT_LADDER];
  const top = bitsForBudget(fit.budgetBytes, values);
  const rates: number[] = FIT_LADDER.filter((b) => b < top);
  if (top > 0) rates.push(top);
  return rates;
}

/**
 * Per-part weights from the probes: KL per unit of squared error. A part with no error to
 * measure (its delta is 0: nothing to code) or no measurable KL gets the smallest weight seen,
 * so the allocation still orders it (it then costs nothing or almost nothing).
 */
export function probeWeights(probes: readonly { meanKl: number; sqErr: number }[]): number[] {
  const raw = probes.map((p) => (p.sqErr > 0 && p.meanKl > 0 ? p.meanKl / p.sqErr : 0));
  const positive = raw.filter((w) => w > 0);
  const floor = positive.length ? Math.min(...positive) : 1;
  return raw.map((w) => (w > 0 ? w : floor));
}

/** The pca ids of the points to try for these weights. */
export function fitIds(rates: readonly number[], weights: readonly number[]): StrategyId[] {
  const exps = pcaExponents(weights);
  return [...new Set(rates.map((b) => pcaId(b, exps)))];
}

export interface FitChoice {
  chosen: StrategyId;
  met: boolean;
  reason: string;
}

function fmt(x: number): string {
  return x.toPrecision(3);
}

/** The cheapest point meeting the targets within the budget; otherwise the closest one, not met. */
export function chooseFit(points: readonly FitPoint[], fit: FitRequest): FitChoice {
  if (points.length === 0) throw new Error('fit: no point was measured');
  const byBytes = [...points].sort((a, b) => a.bytes - b.bytes || a.meanKl - b.meanKl);
  const within = fit.budgetBytes === undefined ? byBytes : byBytes.filter((p) => p.bytes <= fit.budgetBytes!);
  const budgetWords = fit.budgetBytes === undefined ? '' : ` within ${fit.budgetBytes} bytes`;
  if (fit.targetKl === undefined) {
    // A budget alone: the most the budget buys.
    if (within.length === 0) {
      return { chosen: byBytes[0]!.strategy, met: false, reason: `no store fits${budgetWords}; the smallest one` };
    }
    const best = within[within.length - 1]!;
    return { chosen: best.strategy, met: true, reason: `the most bits per value${budgetWords}` };
  }
  const wantTop1 = fit.minTop1 ?? 0;
  const targetWords = `mean KL ≤ ${fmt(fit.targetKl)}${fit.minTop1 !== undefined ? ` and top-1 ≥ ${fit.minTop1}` : ''}`;
  const ok = within.find((p) => p.meanKl <= fit.targetKl! && p.top1Agreement >= wantTop1);
  if (ok) return { chosen: ok.strategy, met: true, reason: `the cheapest store with ${targetWords}${budgetWords}` };
  const pool = within.length ? within : byBytes;
  const closest = [...pool].sort((a, b) => a.meanKl - b.meanKl || a.bytes - b.bytes)[0]!;
  return {
    chosen: closest.strategy,
    met: false,
    reason: `no store tried reaches ${targetWords}${budgetWords}; the one with the lowest KL (${fmt(closest.meanKl)})`,
  };
}
