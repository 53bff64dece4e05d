/** @jsxRuntime automatic @jsxImportSource react */
// (The pragma lets the node unit tests render this file: tsx there uses the root tsconfig, which has no JSX settings.)
import { memo } from 'react';
import { sig3, visiblePiece } from '../logic/format.js';
import type { TokenView } from '../logic/grid.js';

interface Props {
  token: TokenView;
  first: boolean;
  onHover(token: TokenView | null): void;
  /** Part of a text-search match. */
  hit?: boolean;
}

/** One generated token; from the first divergence from `exact` on, highlighted. */
export const TokenSpan = memo(function TokenSpan({ token, first, onHover, hit = false }: Props): React.JSX.Element {
  const cls = `tok${token.diverged ? ' div' : ''}${first ? ' first' : ''}${hit ? ' hit' : ''}`;
  const title = `#${token.index} id ${token.token} · p ${sig3(token.prob)}${token.kl !== null ? ` · KL vs exact ${sig3(token.kl)}` : ''}`;
  return (
    <span className={cls} title={title} data-prob={token.prob} data-kl={token.kl ?? undefined} onMouseEnter={() => onHover(token)} onMouseLeave={() => onHover(null)}>
      {visiblePiece(token.piece)}
    </span>
  );
});
