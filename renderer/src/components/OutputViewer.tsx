// The finished run's outputs with a comparison viewer's tools: search the generations,
// show or hide adapters (columns) and strategies (rows), sort rows by a score. The
// choices live in the results store, which mirrors them in the URL's hash.
import { useMemo } from 'react';
import type { StrategyId } from '../../../shared/strategies.js';
import type { Grid } from '../logic/grid.js';
import { SORT_LABELS, viewGrid, type OutputSort } from '../logic/output-view.js';
import { DEFAULT_VIEW, useResults } from '../store/results.js';
import { OutputGrid } from './OutputGrid.js';

interface Props {
  grid: Grid;
  bytes: (strategy: StrategyId, adapter: number) => number | null;
}

function toggled<T>(list: readonly T[], item: T, hide: boolean): T[] {
  return hide ? [...new Set([...list, item])] : list.filter((x) => x !== item);
}

export function OutputViewer({ grid, bytes }: Props): React.JSX.Element {
  const query = useResults((s) => s.query);
  const hiddenAdapters = useResults((s) => s.hiddenAdapters);
  const hiddenStrategies = useResults((s) => s.hiddenStrategies);
  const sort = useResults((s) => s.sort);
  const onlyDiffs = useResults((s) => s.onlyDiffs);
  const setView = useResults((s) => s.setView);
  const viewed = useMemo(
    () => viewGrid(grid, { query, hiddenAdapters, hiddenStrategies, sort, onlyDiffs }, bytes),
    [grid, query, hiddenAdapters, hiddenStrategies, sort, onlyDiffs, bytes],
  );
  const strategies = grid.rows.map((r) => r.strategy);
  const matches = viewed.hits.size;
  const changed = query !== '' || hiddenAdapters.length > 0 || hiddenStrategies.length > 0 || sort !== 'run' || onlyDiffs;

  return (
    <div className="output-viewer">
      <div className="toolbar viewer" data-testid="output-viewer">
        <input type="search" className="search" placeholder="Search the outputs…" aria-label="Search the outputs" value={query} onChange={(e) => setView({ query: e.target.value })} data-testid="output-search" />
        <details className="pick-menu">
          <summary data-testid="adapter-filter">
            Adapters {grid.adapters.length - hiddenAdapters.filter((a) => grid.adapters.includes(a)).length}/{grid.adapters.length}
          </summary>
          <div className="pick-menu-body" role="group" aria-label="Adapters shown">
            {grid.adapters.map((a) => (
              <label key={a}>
                <input type="checkbox" checked={!hiddenAdapters.includes(a)} onChange={(e) => setView({ hiddenAdapters: toggled(hiddenAdapters, a, !e.target.checked) })} data-testid={`show-adapter-${a}`} /> {a}
              </label>
            ))}
          </div>
        </details>
        <details className="pick-menu">
          <summary data-testid="strategy-filter">
            Strategies {strategies.length - hiddenStrategies.filter((s) => strategies.includes(s)).length}/{strategies.length}
          </summary>
          <div className="pick-menu-body" role="group" aria-label="Strategies shown">
            {strategies.map((s) => (
              <label key={s}>
                <input type="checkbox" checked={!hiddenStrategies.includes(s)} onChange={(e) => setView({ hiddenStrategies: toggled(hiddenStrategies, s, !e.target.checked) })} data-testid={`show-strategy-${s}`} /> <code>{s}</code>
              </label>
            ))}
          </div>
        </details>
        <label>
          Sort rows by{' '}
          <select value={sort} onChange={(e) => setView({ sort: e.target.value as OutputSort })} data-testid="output-sort">
            {(Object.keys(SORT_LABELS) as OutputSort[]).map((k) => (
              <option key={k} value={k}>
                {SORT_LABELS[k]}
              </option>
            ))}
          </select>
        </label>
        {changed && (
          <button
            type="button"
            className="linklike"
            onClick={() => setView({ query: DEFAULT_VIEW.query, hiddenAdapters: [], hiddenStrategies: [], sort: DEFAULT_VIEW.sort, onlyDiffs: false })}
            data-testid="reset-view"
          >
            Show everything
          </button>
        )}
        {query.trim() && (
          <span className="muted small" data-testid="search-summary" aria-live="polite">
            {matches === 0 ? `Nothing matches “${query.trim()}”.` : `${matches} output${matches === 1 ? '' : 's'} match${matches === 1 ? 'es' : ''}`}
            {viewed.hiddenByQuery > 0 && ` · ${viewed.hiddenByQuery} row${viewed.hiddenByQuery === 1 ? '' : 's'} without a match hidden`}
          </span>
        )}
      </div>
      <OutputGrid grid={grid} viewed={viewed} live={false} onlyDiffs={onlyDiffs} onOnlyDiffs={(on) => setView({ onlyDiffs: on })} bytes={bytes} />
    </div>
  );
}
