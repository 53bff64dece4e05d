/** @jsxRuntime automatic @jsxImportSource react */
// (The pragma lets the node unit tests render this file: tsx there uses the root tsconfig, which has no JSX settings.)
// Side-by-side outputs: adapters as columns, strategies as rows, `exact` on top.
import { memo, useCallback, useRef, useState } from 'react';
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

/**
 * Tokens in runs of CHUNK, each memoised: while a run streams, a flush changes only the
 * last run of a cell (and, once, the runs after a new divergence), so a render walks a few
 * dozen spans a cell rather than every token so far.
 */
const CHUNK = 64;

function chunksOf(tokens: readonly TokenView[]): TokenView[][] {
  const out: TokenView[][] = [];
  for (let i = 0; i < tokens.length; i += CHUNK) out.push(tokens.slice(i, i + CHUNK));
  return out;
}

interface ChunkProps {
  tokens: readonly TokenView[];
  firstDivergence: number | null;
  onHover(token: TokenView | null): void;
  hits: Set<number> | undefined;
}

function sameChunk(a: ChunkProps, b: ChunkProps): boolean {
  if (a.onHover !== b.onHover || a.hits !== b.hits || a.tokens.length !== b.tokens.length) return false;
  for (let i = 0; i < a.tokens.length; i++) if (a.tokens[i] !== b.tokens[i]) return false;
  // The divergence mark is drawn on one token: it matters only where that token is in this run.
  const inA = a.firstDivergence !== null && a.tokens.some((t) => t.index === a.firstDivergence);
  const inB = b.firstDivergence !== null && b.tokens.some((t) => t.index === b.firstDivergence);
  return inA === inB && (!inA || a.firstDivergence === b.firstDivergence);
}

const TokenChunk = memo(function TokenChunk({ tokens, firstDivergence, onHover, hits }: ChunkProps): React.JSX.Element {
  return (
    <>
      {tokens.map((t) => (
        <TokenSpan key={t.index} token={t} first={t.index === firstDivergence} onHover={onHover} hit={hits?.has(t.index) ?? false} />
      ))}
    </>
  );
}, sameChunk);

function Cell({ cell, live, onHover, showDiffOnly, hits }: { cell: GridCell; live: boolean; onHover(h: Hovered | null): void; showDiffOnly: boolean; hits?: Set<number> }): React.JSX.Element {
  // Stable across renders (the cell object is new on every live flush): memoised token spans
  // whose view did not change are then skipped.
  const cellRef = useRef(cell);
  cellRef.current = cell;
  const hover = useCallback((t: TokenView | null) => onHover(t ? { cell: cellRef.current, token: t } : null), [onHover]);
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
          {chunksOf(cell.tokens).map((chunk) => (
            <TokenChunk key={chunk[0]!.index} tokens={chunk} firstDivergence={div} onHover={hover} hits={hits} />
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
