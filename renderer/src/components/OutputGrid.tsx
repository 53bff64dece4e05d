/** @jsxRuntime automatic @jsxImportSource react */
// (The pragma lets the node unit tests render this file: tsx there uses the root tsconfig, which has no JSX settings.)
// Side-by-side outputs: adapters as columns, strategies as rows, `exact` on top.
import { useCallback, useState } from 'react';
import type { StrategyId } from '../../../shared/strategies.js';
import { formatBytes, percent, sig3, visiblePiece } from '../logic/format.js';
import { onlyDiffering, type Grid, type GridCell, type TokenView } from '../logic/grid.js';
import type { ViewedGrid } from '../logic/output-view.js';
import { Help } from './Help.js';
import { TokenSpan } from './TokenSpan.js';

interface Props {
  grid: Grid;
  live: boolean;
  onlyDiffs: boolean;
  onOnlyDiffs(on: boolean): void;
  /** Store bytes per strategy and adapter index (reports only). */
  bytes?: (strategy: StrategyId, adapter: number) => number | null;
  /** The grid as filtered, searched and sorted by the viewer (reports); without it, "only what differs" is applied here. */
  viewed?: ViewedGrid;
}

interface Hovered {
  cell: GridCell;
  token: TokenView;
}

function Cell({ cell, live, onHover, showDiffOnly, hits }: { cell: GridCell; live: boolean; onHover(h: Hovered | null): void; showDiffOnly: boolean; hits?: Set<number> }): React.JSX.Element {
  const hover = useCallback((t: TokenView | null) => onHover(t ? { cell, token: t } : null), [cell, onHover]);
  const div = cell.firstDivergence;
  const same = cell.strategy !== 'exact' && !cell.differs && !live && cell.tokens.length > 0;
  const label = `${cell.adapterName}, ${cell.strategy}: ${cell.tokens.length} tokens${div !== null ? `, differs from exact from token ${div}` : ''}`;
  return (
    <td className={`out-cell${cell.differs ? ' differs' : ''}${hits ? ' match' : ''}`} data-testid={`output-cell-${cell.adapterName}-${cell.strategy}`} data-tokens={cell.tokens.length} data-first-divergence={div ?? ''} data-hits={hits?.size ?? 0} tabIndex={0} aria-label={label}>
      {cell.tokens.length === 0 ? (
        <span className="muted">{live ? 'waiting…' : '(no tokens)'}</span>
      ) : same && showDiffOnly && !hits ? (
        <span className="muted">= exact</span>
      ) : (
        <div className="tokens">
          {cell.tokens.map((t) => (
            <TokenSpan key={t.index} token={t} first={t.index === div} onHover={hover} hit={hits?.has(t.index) ?? false} />
          ))}
          {live && <span className="caret" aria-hidden="true" />}
        </div>
      )}
      {!live && cell.strategy !== 'exact' && (
        <div className="cell-foot">
          {same ? <span className="ok">same as exact</span> : <span className="warn">differs from token {div}</span>}
          <span>KL {sig3(cell.meanKl)}</span>
          <span>top-1 {percent(cell.top1Agreement)}</span>
        </div>
      )}
    </td>
  );
}

export function OutputGrid({ grid, live, onlyDiffs, onOnlyDiffs, bytes, viewed }: Props): React.JSX.Element {
  const [hovered, setHovered] = useState<Hovered | null>(null);
  const shown = viewed ? viewed.grid : onlyDiffs ? onlyDiffering(grid) : grid;
  const hidden = viewed ? viewed.hiddenAsEqual : grid.rows.length - shown.rows.length;
  return (
    <div className="output-grid-wrap">
      <div className="toolbar">
        <label>
          <input type="checkbox" checked={onlyDiffs} onChange={(e) => onOnlyDiffs(e.target.checked)} data-testid="only-diffs" /> Show only what differs
        </label>
        {onlyDiffs && hidden > 0 && (
          <span className="muted">
            {hidden} strateg{hidden === 1 ? 'y' : 'ies'} equal to exact hidden
          </span>
        )}
        {!live && (
          <span className="muted small legend-help">
            KL <Help topic="kl" /> top-1 <Help topic="top1" />
          </span>
        )}
        <span className="inspector" aria-live="off" data-testid="token-inspector">
          {hovered ? (
            <>
              <strong>{hovered.cell.adapterName}</strong> · <code>{hovered.cell.strategy}</code> · token {hovered.token.index} <code className="piece">{JSON.stringify(visiblePiece(hovered.token.piece))}</code> (id {hovered.token.token}) · p = {sig3(hovered.token.prob)}
              {hovered.token.kl !== null && <> · KL(exact ‖ this) = {sig3(hovered.token.kl)} nats</>}
              {hovered.token.diverged && <span className="warn"> · after divergence</span>}
            </>
          ) : (
            <span className="muted">Hover a token for its probability and KL against exact.</span>
          )}
        </span>
      </div>
      <div className="table-scroll">
        <table className="output-grid" data-testid="output-grid">
          <thead>
            <tr>
              <th scope="col" className="corner">
                strategy \ adapter
              </th>
              {shown.adapters.map((a) => (
                <th key={a} scope="col">
                  {a}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {shown.rows.map((row) => (
              <tr key={row.strategy} className={row.strategy === 'exact' ? 'exact-row' : ''}>
                <th scope="row">
                  <code>{row.strategy}</code>
                  {bytes && (
                    <div className="muted small">
                      {row.cells.map((c) => formatBytes(bytes(row.strategy, c.adapter) ?? 0)).filter((v, i, a) => a.indexOf(v) === i).join(' / ')}
                    </div>
                  )}
                </th>
                {row.cells.map((c) => (
                  <Cell key={c.adapter} cell={c} live={live} onHover={setHovered} showDiffOnly={onlyDiffs} hits={viewed?.hits.get(c)} />
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}
