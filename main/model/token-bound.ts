// A cheap lower bound on how many tokens a text encodes to, from the text's length alone:
// a caller can refuse a 10 MB document for a 4096-token context at once, without tokenizing
// it (which may take minutes). The bound is sound only for pipelines whose tokens cover
// every part of the text; lengthBoundFor says when that holds and what the bound's divisor is.

type JsonObject = Record<string, unknown>;

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * A length measure for the lower bound on token counts: UTF-8 bytes, with the Metaspace
 * character "▁" (3 bytes) counted as 1, since it stands for one space. It adds up over
 * concatenation, and a token never measures less than the text it covers, so
 * tokens ≥ lengthUnits(text) / (largest lengthUnits of any token).
 */
export function lengthUnits(text: string): number {
  let metaspaces = 0;
  for (let i = text.indexOf('\u2581'); i >= 0; i = text.indexOf('\u2581', i + 1)) metaspaces++;
  return Buffer.byteLength(text, 'utf8') - 2 * metaspaces;
}

/** A lower bound on the number of tokens `text` encodes to (0 when no bound is known). */
export function minTokensFor(maxTokenUnits: number | null, text: string): number {
  if (maxTokenUnits === null || text.length === 0) return 0;
  return Math.ceil(lengthUnits(text) / maxTokenUnits);
}

/** Components that never remove text, so the tokens still cover every length unit of it. */
const KEEPING_NORMALIZERS = new Set(['Prepend', 'Replace', 'Sequence']);
const KEEPING_PRE_TOKENIZERS = new Set(['Metaspace', 'ByteLevel', 'Split', 'Digits', 'Punctuation', 'Sequence']);

function keepsText(node: unknown, allowed: Set<string>, listKey: string): boolean {
  if (node === null || node === undefined) return true;
  if (!isObject(node) || typeof node.type !== 'string' || !allowed.has(node.type)) return false;
  if (node.behavior === 'Removed') return false;
  if (node.type === 'Replace') {
    const pattern = node.pattern;
    // Only a fixed string replaced by one at least as long: a regex could match and drop anything.
    if (!isObject(pattern) || typeof pattern.String !== 'string' || typeof node.content !== 'string') return false;
    if (lengthUnits(node.content) < lengthUnits(pattern.String)) return false;
  }
  if (node.type === 'Sequence') {
    const parts = node[listKey];
    return Array.isArray(parts) && parts.every((p) => keepsText(p, allowed, listKey));
  }
  return true;
}

/**
 * The largest lengthUnits() of any token, when the pipeline guarantees that the tokens cover
 * the whole text (nothing removed, no unknown-token fusing that would cover a whole run of
 * text with one id); null otherwise.
 */
export function lengthBoundFor(json: JsonObject, tokens: readonly string[]): number | null {
  if (!keepsText(json.normalizer, KEEPING_NORMALIZERS, 'normalizers')) return null;
  if (!keepsText(json.pre_tokenizer, KEEPING_PRE_TOKENIZERS, 'pretokenizers')) return null;
  const model = isObject(json.model) ? json.model : {};
  const byteFallback = model.byte_fallback === true;
  if (model.type === 'BPE') {
    const byteLevel = JSON.stringify(json.pre_tokenizer ?? null).includes('"ByteLevel"');
    // Without byte fallback an unknown character becomes the unknown token (one per character
    // unless fuse_unk), or nothing at all when there is no unknown token, unless byte-level
    // pre-tokenization leaves no character unknown.
    if (!byteFallback && !byteLevel && (model.fuse_unk === true || typeof model.unk_token !== 'string')) return null;
  } else if (model.type === 'Unigram') {
    if (!byteFallback) return null;
  } else {
    return null; // WordPiece maps a long word to one [UNK]; WordLevel is rare: no bound.
  }
  // An unknown character without byte fallback becomes one unknown token: up to 4 bytes.
  let max = 4;
  for (const t of tokens) max = Math.max(max, lengthUnits(t));
  return max;
}
