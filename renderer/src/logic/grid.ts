// The side-by-side output grid: adapters as columns, strategies as rows (`exact` on
// top), from a finished report or from tokens streamed during a run.
import type { TokenEvent } from '../../../shared/compare.js';
import type { Report } from '../../../shared/report.js';
import { divergenceTokens } from '../../../shared/report-views.js';
import type { StrategyId } from '../../../shared/strategies.js';
import { firstDivergence, firstDivergenceSoFar } from './divergence.js';
import { orderStrategies } from './strategy-order.js';

export interface TokenView {
  index: number;
  token: number;
  piece: string;
  /** Probability the sequence gave this token (NaN where not measured). */
  prob: number;
  /** Teacher-forced KL(p_exact ‖ p_strategy) at this position; null while streaming or past the scored positions. */
  kl: number | null;
  /** At or after the first divergence from `exact`. */
  diverged: boolean;
}

export interface GridCell {
  adapter: number;
  adapterName: string;
  strategy: StrategyId;
  tokens: TokenView[];
  firstDivergence: number | null;
  /** Differs from exact's output (always false for exact). */
  differs: boolean;
  meanKl: number | null;
  top1Agreement: number | null;
}

export interface GridRow {
  strategy: StrategyId;
  cells: GridCell[];
  /** Some adapter's output differs from exact in this row. */
  differs: boolean;
}

export interface Grid {
  adapters: string[];
  rows: GridRow[];
}

export function cellKey(adapter: number, strategy: StrategyId): string {
  return `${adapter}|${strategy}`;
}

function rowsOf(cells: GridCell[][], strategies: StrategyId[]): GridRow[] {
  return strategies.map((strategy, r) => {
    const rowCells = cells[r] ?? [];
    return { strategy, cells: rowCells, differs: rowCells.some((c) => c.differs) };
  });
}

export function gridFromReport(report: Report): Grid {
  const strategies = orderStrategies(report.settings.strategies);
  const cells = strategies.map((strategy) =>
    report.adapters.flatMap((a, ai): GridCell[] => {
      const s = a.strategies.find((x) => x.strategy === strategy);
      if (!s) return [];
      const div = strategy === 'exact' ? null : s.generation.firstDivergence;
      const kl = s.scores.kl;
      return [
        {
          adapter: ai,
          adapterName: a.name,
          strategy,
          tokens: divergenceTokens(s).map((t) => ({ ...t, kl: kl[t.index] ?? null, diverged: strategy !== 'exact' && t.diverged })),
          firstDivergence: div,
          differs: div !== null,
          meanKl: s.scores.meanKl,
          top1Agreement: s.scores.top1Agreement,
        },
      ];
    }),
  );
  return { adapters: report.adapters.map((a) => a.name), rows: rowsOf(cells, strategies) };
}

/** Tokens streamed so far, per cellKey, in step order. */
export type StreamedTokens = Record<string, TokenEvent[]>;

/** Appends one decode step's events (steps arrive in order; a repeated step is ignored). */
export function appendTokens(streams: StreamedTokens, events: readonly TokenEvent[]): StreamedTokens {
  const next: StreamedTokens = { ...streams };
  const copied = new Set<string>();
  for (const ev of events) {
    const key = cellKey(ev.adapter, ev.strategy);
    if (!copied.has(key)) {
      next[key] = [...(streams[key] ?? [])];
      copied.add(key);
    }
    const list = next[key] ?? [];
    const last = list[list.length - 1];
    if (last && last.step >= ev.step) continue;
    list.push(ev);
  }
  return next;
}

// One view per streamed event and divergence flag, kept while the event lives: the live grid
// is rebuilt on every flush, and a token that did not change keeps its object, so its
// memoised <TokenSpan> is not rendered again (12 rows × 2,000 tokens would be 24k spans a flush).
const liveViews = new WeakMap<TokenEvent, { plain?: TokenView; diverged?: TokenView }>();

function liveView(ev: TokenEvent, index: number, diverged: boolean): TokenView {
  let entry = liveViews.get(ev);
  if (!entry) liveViews.set(ev, (entry = {}));
  const slot = diverged ? 'diverged' : 'plain';
  const cached = entry[slot];
  if (cached && cached.index === index) return cached;
  const view: TokenView = { index, token: ev.token, piece: ev.piece, prob: ev.prob, kl: null, diverged };
  entry[slot] = view;
  return view;
}

export function gridFromStream(adapterNames: readonly string[], strategyIds: readonly StrategyId[], streams: StreamedTokens): Grid {
  const strategies = orderStrategies(['exact', ...strategyIds]);
  const cells = strategies.map((strategy) =>
    adapterNames.map((name, ai): GridCell => {
      const evs = streams[cellKey(ai, strategy)] ?? [];
      const tokens = evs.map((e) => e.token);
      const exact = (streams[cellKey(ai, 'exact')] ?? []).map((e) => e.token);
      const div = strategy === 'exact' ? null : firstDivergenceSoFar(tokens, exact);
      return {
        adapter: ai,
        adapterName: name,
        strategy,
        tokens: evs.map((e, i) => liveView(e, i, div !== null && i >= div)),
        firstDivergence: div,
        differs: div !== null,
        meanKl: null,
        top1Agreement: null,
      };
    }),
  );
  return { adapters: [...adapterNames], rows: rowsOf(cells, strategies) };
}

/** "Show only what differs": exact stays (the reference), rows equal to exact everywhere go. */
export function onlyDiffering(grid: Grid): Grid {
  return { ...grid, rows: grid.rows.filter((r) => r.strategy === 'exact' || r.differs) };
}

export { firstDivergence };
