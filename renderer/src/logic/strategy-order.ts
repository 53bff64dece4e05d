// The order strategies are shown in: `exact` first, then as requested.
import type { StrategyId } from '../../../shared/strategies.js';

export function orderStrategies(ids: readonly StrategyId[]): StrategyId[] {
  const rest = ids.filter((s) => s !== 'exact');
  return [...(ids.includes('exact') ? (['exact'] as StrategyId[]) : []), ...new Set(rest)];
}

/** A fixed, colour-blind-safe colour per strategy (Okabe–Ito), stable across charts. */
const PALETTE = ['#000000', '#E69F00', '#56B4E9', '#009E73', '#D55E00', '#0072B2', '#CC79A7', '#F0E442', '#999999'];

export function strategyColor(id: StrategyId, all: readonly StrategyId[]): string {
  const ordered = orderStrategies(all);
  const i = Math.max(0, ordered.indexOf(id));
  return PALETTE[i % PALETTE.length] ?? '#999999';
}

/** Marker shapes per adapter (so adapters differ without relying on colour). */
export const ADAPTER_SYMBOLS = ['circle', 'rect', 'triangle', 'diamond', 'pin', 'arrow', 'roundRect'] as const;
