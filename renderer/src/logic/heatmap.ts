// Per-layer error heatmaps: layer × token range and layer × head grids, K or V, and a
// layer × strategy summary per adapter; one colour domain shared across adapters.
import type { AdapterResult, Report, StrategyResult } from '../../../shared/report.js';
import type { StrategyId } from '../../../shared/strategies.js';
import { orderStrategies } from './strategy-order.js';

export type KvKind = 'k' | 'v';
export type GridKind = 'tokens' | 'heads';

export interface HeatmapMatrix {
  /** Row labels (layers, bottom to top as the chart draws them: row 0 = layer 0). */
  rows: string[];
  columns: string[];
  /** values[row][column]; NaN where not measured. */
  values: number[][];
}

/** Viridis (perceptually uniform, readable with colour-vision deficiencies): the reports use the same ramp. */
export { VIRIDIS } from '../../../shared/chart-style.js';

/** [min, max] over every finite value of every matrix; [0, 1] when there is none; max > min always. */
export function sharedDomain(matrices: readonly (readonly (readonly number[])[])[]): [number, number] {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const m of matrices)
    for (const row of m)
      for (const v of row)
        if (Number.isFinite(v)) {
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
  if (!Number.isFinite(lo)) return [0, 1];
  // Relative errors start at 0: anchor there so colours mean the same across views.
  lo = Math.min(0, lo);
  if (hi <= lo) hi = lo + 1e-12;
  return [lo, hi];
}

/** Column labels of the token grid: "0–15", "16–31", … (document token positions). */
export function tokenColumnLabels(binSize: number, columns: number, documentTokens: number): string[] {
  return Array.from({ length: columns }, (_, c) => {
    const start = c * binSize;
    const end = Math.min(documentTokens, start + binSize) - 1;
    return binSize <= 1 || end <= start ? String(start) : `${start}–${end}`;
  });
}

function layerLabels(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `L${i}`);
}

export function strategyResult(adapter: AdapterResult, strategy: StrategyId): StrategyResult | undefined {
  return adapter.strategies.find((s) => s.strategy === strategy);
}

export function errorMatrix(report: Report, adapter: AdapterResult, strategy: StrategyId, grid: GridKind, kind: KvKind): HeatmapMatrix | null {
  const s = strategyResult(adapter, strategy);
  if (!s) return null;
  const values = grid === 'tokens' ? s.tokens[kind] : s.heads[kind];
  const cols = values[0]?.length ?? 0;
  const columns =
    grid === 'tokens'
      ? tokenColumnLabels(s.tokens.binSize, cols, report.documentTokens.length)
      : Array.from({ length: cols }, (_, h) => `H${h}`);
  return { rows: layerLabels(values.length), columns, values: values.map((r) => [...r]) };
}

/** Layer × strategy of per-layer relative error, for one adapter (exact omitted: it is 0 by definition). */
export function summaryMatrix(report: Report, adapter: AdapterResult, kind: KvKind): HeatmapMatrix {
  const strategies = orderStrategies(report.settings.strategies).filter((s) => s !== 'exact');
  const L = report.model.numLayers;
  const values = Array.from({ length: L }, (_, l) =>
    strategies.map((id) => {
      const e = strategyResult(adapter, id)?.layers.find((x) => x.layer === l);
      if (!e) return Number.NaN;
      return kind === 'k' ? e.kRelErr : e.vRelErr;
    }),
  );
  return { rows: layerLabels(L), columns: strategies, values };
}

/** The strategies worth a detailed heatmap (exact is all zeros). */
export function heatmapStrategies(report: Report): StrategyId[] {
  return orderStrategies(report.settings.strategies).filter((s) => s !== 'exact');
}

/** echarts heatmap data: [column, row, value] (NaN cells left out). */
export function heatmapData(m: HeatmapMatrix): [number, number, number][] {
  const out: [number, number, number][] = [];
  m.values.forEach((row, r) =>
    row.forEach((v, c) => {
      if (Number.isFinite(v)) out.push([c, r, v]);
    }),
  );
  return out;
}

/**
 * The colour domain of the detailed heatmaps: with `oneScale`, over every non-exact
 * strategy of every adapter (so a good strategy does not look as bad as a poor one);
 * otherwise over the adapters of the shown strategy only.
 */
export function detailDomain(report: Report, strategy: StrategyId, grid: GridKind, kind: KvKind, oneScale: boolean, log: boolean): [number, number] {
  const strategies = oneScale ? heatmapStrategies(report) : [strategy];
  const values: number[][][] = [];
  for (const a of report.adapters)
    for (const s of strategies) {
      const m = errorMatrix(report, a, s, grid, kind);
      if (m) values.push(m.values);
    }
  return log ? logDomain(values) : sharedDomain(values);
}

/** [floor, max] over the positive values for a log colour scale; the floor is what 0 is drawn as. */
export function logDomain(matrices: readonly (readonly (readonly number[])[])[]): [number, number] {
  let lo = Number.POSITIVE_INFINITY;
  let hi = 0;
  for (const m of matrices)
    for (const row of m)
      for (const v of row)
        if (Number.isFinite(v) && v > 0) {
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
  if (!(hi > 0)) return [1e-6, 1];
  // Four decades at most below the largest error: smaller differences are all "none".
  const floor = Math.max(lo, hi * 1e-4);
  return [floor, hi > floor ? hi : floor * 10];
}

/** A matrix as coloured: log10 of each value (0 and below drawn at the floor) on a log scale. */
export function colourMatrix(m: HeatmapMatrix, log: boolean, floor: number): HeatmapMatrix {
  if (!log) return m;
  return { ...m, values: m.values.map((row) => row.map((v) => (Number.isFinite(v) ? Math.log10(Math.max(v, floor)) : Number.NaN))) };
}

/** The colour domain as drawn (log10 of it on a log scale). */
export function colourDomain(domain: [number, number], log: boolean): [number, number] {
  return log ? [Math.log10(domain[0]), Math.log10(domain[1])] : domain;
}

/** Token ids per column of a token grid (the first `perColumn` of each bin), to decode as axis and hover text. */
export function columnTokenGroups(report: Report, binSize: number, columns: number, perColumn = 12): number[][] {
  return Array.from({ length: columns }, (_, c) => report.documentTokens.slice(c * binSize, Math.min(report.documentTokens.length, c * binSize + Math.min(binSize, perColumn))));
}

/** Pixel height of a heatmap: rows sized to the number of layers (taller rows for few layers, never 80 px bands). */
export function heatmapHeight(rows: number, extra = 56): number {
  const rowPx = Math.max(8, Math.min(22, Math.floor(360 / Math.max(1, rows))));
  return rows * rowPx + extra;
}
