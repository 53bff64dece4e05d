// How every chart of a comparison looks, in the app and in the exported reports alike:
// one colour per strategy, one per adapter, the shared base cache's grey, one marker
// shape per adapter and one colour ramp for errors. (Issue: the app and the HTML report
// coloured and oriented the same numbers differently.)
import type { StrategyId } from './strategies.js';

/** exact first, then the others in the order given (duplicates dropped). */
export function orderStrategies(ids: readonly StrategyId[]): StrategyId[] {
  const rest = ids.filter((s) => s !== 'exact');
  return [...(ids.includes('exact') ? (['exact'] as StrategyId[]) : []), ...new Set(rest)];
}

/** Okabe–Ito, readable with colour-vision deficiencies; exact is black. */
export const STRATEGY_PALETTE = ['#000000', '#E69F00', '#56B4E9', '#009E73', '#D55E00', '#0072B2', '#CC79A7', '#F0E442', '#999999'] as const;

/** A strategy's colour: its place in the run's order (exact first), so it is stable across charts of one run. */
export function strategyColor(id: StrategyId, all: readonly StrategyId[]): string {
  const ordered = orderStrategies(all);
  const i = Math.max(0, ordered.indexOf(id));
  return STRATEGY_PALETTE[i % STRATEGY_PALETTE.length] ?? '#999999';
}

/** Adapters in the stacked memory bars (by their index in the report). */
export const ADAPTER_COLORS = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#000000'] as const;

export function adapterColor(index: number): string {
  return ADAPTER_COLORS[index % ADAPTER_COLORS.length] ?? '#333333';
}

/** The shared base cache, held once, at the bottom of every stacked memory bar. */
export const BASE_COLOR = '#9aa0a6';

/** Marker shapes per adapter (echarts symbol names), so adapters differ without relying on colour. */
export const ADAPTER_SYMBOLS = ['circle', 'rect', 'triangle', 'diamond', 'pin', 'arrow', 'roundRect'] as const;

export function adapterSymbol(index: number): string {
  return ADAPTER_SYMBOLS[index % ADAPTER_SYMBOLS.length] ?? 'circle';
}

/** Viridis, 9 stops: perceptually uniform, for every error heatmap (low = dark). */
export const VIRIDIS = ['#440154', '#472d7b', '#3b528b', '#2c728e', '#21918c', '#28ae80', '#5ec962', '#addc30', '#fde725'] as const;

/**
 * Orientation of the layer heatmaps everywhere: layers are rows with layer 0 at the
 * bottom, tokens / heads / strategies are columns.
 */
export const HEATMAP_ORIENTATION = 'layers as rows (layer 0 at the bottom), strategies or tokens as columns' as const;
