// Counting tokens only as far as the caller needs. A 4 MB paste into a model with a 4k
// context does not need its exact count, only "over the context by at least N": so the
// text is tokenized in growing prefixes (each cut before a whitespace) until a prefix
// reaches `limit` tokens or the prefix is the whole text. The work is at most about
// twice the tokenization of the smallest prefix that reaches the limit, not of the text.
//
// A prefix cut before whitespace tokenizes as a prefix of the whole text's tokens for the
// SentencePiece/BPE tokenizers of the Llama family (a token does not span "x▁y"), so the
// count reached is a true lower bound of the whole text's count.

export interface LimitedCount {
  tokens: number;
  /** False when counting stopped at the limit: the text has at least `tokens` tokens. */
  complete: boolean;
}

/** Characters of the first prefix tried; doubled each round. */
const FIRST_PREFIX_CHARS = 16_384;
/** How far back from a cut to look for whitespace. */
const WHITESPACE_LOOKBACK = 512;

/** A cut at or before `at` that does not split a word (or, failing that, a surrogate pair). */
export function cutBefore(text: string, at: number): number {
  for (let i = at; i > at - WHITESPACE_LOOKBACK && i > 0; i--) {
    const c = text.charCodeAt(i);
    if (c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d) return i;
  }
  // No whitespace nearby (one long "word"): never split a surrogate pair.
  const c = text.charCodeAt(at);
  return c >= 0xdc00 && c <= 0xdfff ? at - 1 : at;
}

/**
 * Tokens of `text` under `encode`, or, with a limit, at least `limit` of them
 * (complete: false) as soon as a prefix has that many.
 */
export function countUpTo(encode: (text: string) => { length: number }, text: string, limit?: number): LimitedCount {
  if (limit === undefined) return { tokens: encode(text).length, complete: true };
  let chars = Math.max(FIRST_PREFIX_CHARS, limit);
  for (;;) {
    if (chars >= text.length) return { tokens: encode(text).length, complete: true };
    const cut = cutBefore(text, chars);
    const tokens = encode(text.slice(0, cut)).length;
    if (tokens >= limit) return { tokens, complete: false };
    chars *= 2;
  }
}
