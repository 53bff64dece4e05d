// JSON.parse with a nesting limit. V8's JSON.parse itself copes with deep nesting, but
// everything after it recurses: zod, JSON.stringify in messages, structured clone to a
// worker. A 100 000-deep array in a config file would then end as "Maximum call stack
// size exceeded" far from the file. The nesting depth is measured first, in one linear
// pass over the text that skips strings, and a text deeper than the limit is refused.

export class JsonDepthError extends Error {
  override readonly name = 'JsonDepthError';
  constructor(
    readonly maxDepth: number,
    /** Character offset where the limit was passed. */
    readonly offset: number,
  ) {
    super(`it nests arrays/objects more than ${maxDepth} levels deep (at character ${offset})`);
  }
}

/** The depth at which JSON files of this project are refused; real configs and tokenizers nest fewer than 10 levels. */
export const MAX_JSON_DEPTH = 64;

/** Throws JsonDepthError when `text` nests deeper than maxDepth (strings are skipped, escapes honoured). */
export function checkJsonDepth(text: string, maxDepth = MAX_JSON_DEPTH): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > maxDepth) throw new JsonDepthError(maxDepth, i);
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) depth--;
  }
}

/** JSON.parse after checkJsonDepth; SyntaxError and JsonDepthError propagate. */
export function parseJsonText(text: string, maxDepth = MAX_JSON_DEPTH): unknown {
  checkJsonDepth(text, maxDepth);
  return JSON.parse(text) as unknown;
}
