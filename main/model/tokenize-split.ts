// Tokenizing a long document on several workers at once, where that gives exactly the ids of
// one encode.
//
// Why: SentencePiece-style BPE tokenizers (Llama, Mistral) run BPE over the whole text as one
// word, which @huggingface/tokenizers does on one core at 25–40 µs a token (1.8 s of a
// 49k-token run's preflight on the GPU machine, about 5 s at 123k tokens).
//
// Why it is exact: a newline that is no token of the vocabulary and appears in no merge never
// joins a neighbour (it ends as its byte token <0x0A>), so the merges on either side of it
// never meet, and BPE applies each side's merges in the same order alone as together. A text
// is cut at its paragraph breaks, before the second newline of "\n\n". The piece after a cut is
// encoded on its own. The only difference is the "▁" that the pipeline puts before a text's
// start: it stands alone, since it cannot merge with the newline after it, and is dropped.
// Cutting only after a newline (never right after an added token, which no added token can
// end in here) keeps the prefix rules of pipelines that prepend after special tokens too.
//
// paragraphSplittable checks the structure; the tokenizer then also encodes a probe both
// ways (tokenizer.ts, SPLIT_PROBE) before it allows a split.

/** Cuts next to spaces, runs of newlines, special tokens and characters outside the BMP. */
export const SPLIT_PROBE = 'Hello  world.\n\nThe end\n\n\n  x\n\n ü 😀 </s>\n\n<s>\n\n\tlast line \n\n';

const NEWLINE = '\n';
const SPACE_MARK = '▁';

/** Below this many characters a document is encoded in one piece (a split costs a worker round trip). */
export const SPLIT_MIN_CHARS = 64 * 1024;
/** Pieces of at least this many characters. */
export const SPLIT_PIECE_CHARS = 32 * 1024;

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The normalizers that only prepend "▁" and turn spaces into "▁" (the legacy Llama file's). */
function spaceMarkNormalizer(n: unknown): boolean {
  if (n === null || n === undefined) return true;
  if (!isObject(n)) return false;
  if (n.type === 'Sequence') return Array.isArray(n.normalizers) && n.normalizers.every(spaceMarkNormalizer);
  if (n.type === 'Prepend') return n.prepend === SPACE_MARK;
  if (n.type === 'Replace') {
    return isObject(n.pattern) && n.pattern.String === ' ' && n.content === SPACE_MARK;
  }
  return false;
}

/**
 * Whether the tokenizer (its tokenizer.json as the library runs it) is BPE over the whole text
 * with newlines that never merge: no pre-tokenizer but Metaspace without splitting, a normalizer
 * that only marks spaces, byte fallback for the newline, no word suffixes, and no added token
 * or merge containing a newline.
 */
export function paragraphSplittable(json: Json): boolean {
  const model = json.model;
  if (!isObject(model) || model.type !== 'BPE' || model.byte_fallback !== true) return false;
  if (model.end_of_word_suffix || model.continuing_subword_suffix) return false;
  const vocab = model.vocab;
  if (!isObject(vocab) || NEWLINE in vocab || !('<0x0A>' in vocab) || !(SPACE_MARK in vocab)) return false;
  const merges = model.merges;
  if (!Array.isArray(merges)) return false;
  for (const m of merges) {
    const text = Array.isArray(m) ? m.join(' ') : String(m);
    if (text.includes(NEWLINE)) return false;
  }
  const pre = json.pre_tokenizer;
  if (pre !== null && pre !== undefined) {
    if (!isObject(pre) || pre.type !== 'Metaspace' || pre.split !== false || pre.replacement !== SPACE_MARK) return false;
  }
  if (!spaceMarkNormalizer(json.normalizer)) return false;
  const added = json.added_tokens;
  if (Array.isArray(added) && added.some((t) => isObject(t) && String(t.content ?? '').includes(NEWLINE))) return false;
  return true;
}

/**
 * The text cut into up to `pieces` pieces of at least SPLIT_PIECE_CHARS, each cut before the
 * second newline of a "\n\n" near an equal share; one piece when the text is short or has no
 * paragraph break where it is needed. Joined, the pieces are the text.
 */
export function paragraphPieces(text: string, pieces: number, sizes = { minChars: SPLIT_MIN_CHARS, pieceChars: SPLIT_PIECE_CHARS }): string[] {
  if (text.length < sizes.minChars || pieces < 2) return [text];
  const n = Math.min(pieces, Math.floor(text.length / sizes.pieceChars));
  const cuts: number[] = [];
  for (let k = 1; k < n; k++) {
    const from = Math.max(Math.floor((text.length * k) / n), (cuts[cuts.length - 1] ?? 0) + sizes.pieceChars);
    const at = text.indexOf(NEWLINE + NEWLINE, from - 1);
    if (at < 0 || at + 1 >= text.length) break;
    cuts.push(at + 1);
  }
  const out: string[] = [];
  let start = 0;
  for (const c of cuts) {
    out.push(text.slice(start, c));
    start = c;
  }
  out.push(text.slice(start));
  return out;
}

/**
 * The ids of a piece after a cut (it starts with a newline) as they stand in the whole text:
 * its own encoding without the "▁" the pipeline put before it; null when the encoding does not
 * start that way (then the text is not split).
 */
export function continuationIds(ids: readonly number[], spaceMarkId: number): number[] | null {
  return ids.length > 0 && ids[0] === spaceMarkId ? ids.slice(1) : null;
}

/** encode(text) done piecewise as the workers do it, for the probe at load and the tests. */
export function encodeByPieces(
  text: string,
  pieces: number,
  encode: (t: string) => number[],
  spaceMarkId: number,
  sizes?: { minChars: number; pieceChars: number },
): number[] | null {
  const parts = paragraphPieces(text, pieces, sizes);
  const out = [...encode(parts[0]!)];
  for (const p of parts.slice(1)) {
    const ids = continuationIds(encode(p), spaceMarkId);
    if (!ids) return null;
    out.push(...ids);
  }
  return out;
}
