// Where a generation first differs from the `exact` one.

/** Index of the first token that differs; a shorter/longer sequence differs where the shorter ends. Null when equal. */
export function firstDivergence(tokens: readonly number[], reference: readonly number[]): number | null {
  const n = Math.min(tokens.length, reference.length);
  for (let i = 0; i < n; i++) if (tokens[i] !== reference[i]) return i;
  return tokens.length === reference.length ? null : n;
}

/**
 * While streaming, a sequence that is only shorter so far has not diverged yet:
 * compare the common prefix only.
 */
export function firstDivergenceSoFar(tokens: readonly number[], reference: readonly number[]): number | null {
  const n = Math.min(tokens.length, reference.length);
  for (let i = 0; i < n; i++) if (tokens[i] !== reference[i]) return i;
  return null;
}
