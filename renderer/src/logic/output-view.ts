// How the side-by-side outputs are looked at, as in comparison viewers (promptfoo's and
// the like): text search across the generations, adapters (columns) and strategies
// (rows) hidden or shown, rows sorted by a score. `exact` stays on top as the reference.
import type { StrategyId } from '../../../shared/strategies.js';
import type { Grid, GridCell, GridRow } from './grid.js';

export type OutputSort = 'run' | 'kl' | 'top1' | 'divergence' | 'bytes';

export const SORT_LABELS: Record<OutputSort, string> = {
  run: 'run order',
  kl: 'mean KL, lowest first',
  top1: 'top-1 agreement, highest first',
  divergence: 'first divergence, latest first',
  bytes: 'bytes stored, fewest first',
};

export interface OutputViewSettings {
  query: string;
  hiddenAdapters: readonly string[];
  hiddenStrategies: readonly StrategyId[];
  sort: OutputSort;
  onlyDiffs: boolean;
}

export interface ViewedGrid {
  grid: Grid;
  /** For each shown cell that matches the query: the token indexes the match covers. */
  hits: Map<GridCell, Set<number>>;
  /** Rows taken out by the query, and by "only what differs". */
  hiddenByQuery: number;
  hiddenAsEqual: number;
}

/** Token indexes whose text overlaps a case-insensitive match of `query` in the joined text. */
export function matchedTokens(pieces: readonly string[], query: string): Set<number> {
  const hits = new Set<number>();
  const q = query.toLowerCase();
  if (!q) return hits;
  const starts: number[] = [];
  let text = '';
  for (const p of pieces) {
    starts.push(text.length);
    text += p;
  }
  const hay = text.toLowerCase();
  // Matches come in increasing order: one pointer over the tokens serves them all (linear,
  // not tokens × matches, for a one-letter query over thousands of tokens).
  let first = 0;
  for (let at = hay.indexOf(q); at >= 0; at = hay.indexOf(q, at + 1)) {
    const end = at + q.length;
    while (first < pieces.length && starts[first]! + pieces[first]!.length <= at) first++;
    for (let i = first; i < pieces.length && starts[i]! < end; i++) if (starts[i]! + pieces[i]!.length > at) hits.add(i);
  }
  return hits;
}

function mean(xs: number[]): number {
  const finite = xs.filter((x) => Number.isFinite(x));
  return finite.length ? finite.reduce((a, b) => a + b, 0) / finite.length : Number.NaN;
}

/** A row's score for sorting (lower sorts first); NaN rows go last. */
function rowScore(row: GridRow, sort: OutputSort, bytes?: (strategy: StrategyId, adapter: number) => number | null): number {
  switch (sort) {
    case 'kl':
      return mean(row.cells.map((c) => c.meanKl ?? Number.NaN));
    case 'top1':
      return -mean(row.cells.map((c) => c.top1Agreement ?? Number.NaN));
    case 'divergence':
      // Never diverging is the best a strategy can do.
      return -mean(row.cells.map((c) => (c.firstDivergence === null ? Number.MAX_SAFE_INTEGER : c.firstDivergence)));
    case 'bytes':
      return mean(row.cells.map((c) => bytes?.(row.strategy, c.adapter) ?? Number.NaN));
    case 'run':
      return 0;
  }
}

export function viewGrid(grid: Grid, v: OutputViewSettings, bytes?: (strategy: StrategyId, adapter: number) => number | null): ViewedGrid {
  const hiddenA = new Set(v.hiddenAdapters);
  const hiddenS = new Set(v.hiddenStrategies);
  let rows = grid.rows
    .filter((r) => !hiddenS.has(r.strategy))
    .map((r) => {
      const cells = r.cells.filter((c) => !hiddenA.has(c.adapterName));
      return { ...r, cells, differs: cells.some((c) => c.differs) };
    });
  const before = rows.length;
  if (v.onlyDiffs) rows = rows.filter((r) => r.strategy === 'exact' || r.differs);
  const hiddenAsEqual = before - rows.length;
  const hits = new Map<GridCell, Set<number>>();
  const query = v.query.trim();
  let hiddenByQuery = 0;
  if (query) {
    for (const r of rows) for (const c of r.cells) {
      const h = matchedTokens(c.tokens.map((t) => t.piece), query);
      if (h.size) hits.set(c, h);
    }
    const kept = rows.filter((r) => r.cells.some((c) => hits.has(c)));
    hiddenByQuery = rows.length - kept.length;
    rows = kept;
  }
  if (v.sort !== 'run') {
    const scored = rows.map((r, i) => ({ r, i, s: rowScore(r, v.sort, bytes) }));
    scored.sort((a, b) => {
      if (a.r.strategy === 'exact' || b.r.strategy === 'exact') return a.r.strategy === 'exact' ? -1 : 1;
      const an = Number.isNaN(a.s);
      const bn = Number.isNaN(b.s);
      if (an || bn) return an === bn ? a.i - b.i : an ? 1 : -1;
      return a.s - b.s || a.i - b.i;
    });
    rows = scored.map((x) => x.r);
  }
  return {
    grid: { adapters: grid.adapters.filter((a) => !hiddenA.has(a)), rows },
    hits,
    hiddenByQuery,
    hiddenAsEqual,
  };
}
