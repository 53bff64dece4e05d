// Incremental detokenization (as vLLM does it): each new id's piece of text, such that a
// sequence's pieces concatenate to decode(ids). An id that ends inside a UTF-8 character
// (byte fallback) gets "" and the character goes to the id that completes it.
//
// The state and its two steps are kept apart from any decoder, so the same rule serves a
// synchronous tokenizer (LensTokenizer.pieceStream, in a worker or a script) and the main
// thread's batched decoding on a worker (piece-streams.ts).

export interface DetokState {
  ids: number[];
  /** Pieces given so far, one per id. */
  out: string[];
  prefixOffset: number;
  readOffset: number;
}

export function newDetokState(): DetokState {
  return { ids: [], out: [], prefixOffset: 0, readOffset: 0 };
}

/**
 * After `id` is appended: the two runs of ids whose texts decide its piece (the text already
 * shown since the last complete character, and that plus what came since). Each decode
 * covers only the few ids since the last complete character, so a long generation costs
 * linear time, not quadratic.
 */
export function pushId(s: DetokState, id: number): [number[], number[]] {
  s.ids.push(id);
  return [s.ids.slice(s.prefixOffset, s.readOffset), s.ids.slice(s.prefixOffset)];
}

/** The piece of the id just pushed, given the texts of pushId's two runs. */
export function takePiece(s: DetokState, prefixText: string, newText: string): string {
  let piece = '';
  if (newText.length > prefixText.length && !newText.endsWith('\uFFFD')) {
    s.prefixOffset = s.readOffset;
    s.readOffset = s.ids.length;
    piece = newText.slice(prefixText.length);
  }
  s.out.push(piece);
  return piece;
}

/** The runs whose texts give the trailing ids that never completed a character (null if none). */
export function pendingRuns(s: DetokState): [number[], number[]] | null {
  if (s.readOffset >= s.ids.length) return null;
  return [s.ids.slice(s.prefixOffset, s.readOffset), s.ids.slice(s.prefixOffset)];
}

/** Every id's piece; the last shows the pending text (pendingRuns' texts' difference), if any. */
export function allPieces(s: DetokState, pending: string | null): string[] {
  const all = [...s.out];
  if (all.length > 0 && pending !== null) all[all.length - 1] = pending;
  return all;
}
