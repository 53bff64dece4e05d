// Tokenizing off the main thread: the document and prompt are encoded by the tokenizer
// loaded inside a worker of the 'tokenize' pool (main/worker/), with a time limit and
// cancel, so no text and no tokenizer.json regex can stall `serve` or the app.
//
// countTokensInWorker is what `text.count` uses: with a `limit`, a text whose cheap lower
// bound (token-bound.ts) already reaches the limit is not tokenized at all.
import { join, resolve } from 'node:path';
import { untilAborted } from '../cancellation.js';
import { pool, TOKENIZE_WORKERS } from '../worker/pool.js';
import { WorkerCrashError, WorkerTimeoutError } from '../worker/errors.js';
import { LoadError } from './errors.js';
import { minTokensFor } from './token-bound.js';
import { tokenizerFolderStamp } from './tokenizer-stamp.js';
import { paragraphPieces } from './tokenize-split.js';
import type { TokenizerSummary } from './tokenizer.js';

export interface TokenizeOptions {
  signal?: AbortSignal;
  /** Default TOKENIZE_TIMEOUT_MS. */
  timeoutMs?: number;
}

/** A document the engine can hold tokenizes in seconds; two minutes means something is wrong. */
export const TOKENIZE_TIMEOUT_MS = 120_000;
/** Loading and checking a tokenizer folder. */
export const TOKENIZER_LOAD_TIMEOUT_MS = 60_000;

/** Pool failures as a LoadError naming tokenizer.json; anything else unchanged. */
function explain(dir: string, doing: string, e: unknown): unknown {
  const file = join(dir, 'tokenizer.json');
  if (e instanceof WorkerTimeoutError) {
    return new LoadError({
      file,
      message: `${doing} took longer than ${e.timeoutMs / 1000} s and was stopped: the text is very long, or a regular expression of this tokenizer.json (normalizer or pre_tokenizer) runs too slowly on it.`,
      cause: e,
    });
  }
  if (e instanceof WorkerCrashError) return new LoadError({ file, message: `${doing} failed: ${e.reason}.`, cause: e });
  return e;
}

/** The ids as the worker sends them (moved, not copied). */
async function encodeIds(dir: string, text: string, kind: 'document' | 'prompt' | 'continuation', options: TokenizeOptions): Promise<Int32Array> {
  try {
    const { ids } = await pool('tokenize').run('encode', { dir, text, kind }, { signal: options.signal, timeoutMs: options.timeoutMs ?? TOKENIZE_TIMEOUT_MS });
    return ids;
  } catch (e) {
    throw explain(dir, kind === 'document' ? 'tokenizing the document' : 'tokenizing the prompt', e);
  }
}

/** The ids of the text's pieces (one piece unless `split` cuts it), encoded at once. */
function encodeParts(dir: string, text: string, kind: 'document' | 'prompt', options: TokenizeOptions, split: boolean): Promise<Int32Array[]> {
  const pieces = split ? paragraphPieces(text, TOKENIZE_WORKERS) : [text];
  return Promise.all(pieces.map((p, i) => encodeIds(dir, p, i === 0 ? kind : 'continuation', options)));
}

/**
 * The text's ids from the 'tokenize' pool. With `split` (the tokenizer's splitsAtParagraphs) a
 * long text is cut at paragraph breaks and its pieces encoded on the pool's workers at once,
 * with the ids of one encode (tokenize-split.ts).
 */
export async function encodeInWorker(dirIn: string, text: string, kind: 'document' | 'prompt', options: TokenizeOptions = {}, split = false): Promise<number[]> {
  const parts = await encodeParts(resolve(dirIn), text, kind, options, split);
  // A plain loop: Array.from on a typed array of millions of ids takes the main thread for a noticeable time.
  const out = new Array<number>(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const ids of parts) {
    for (let i = 0; i < ids.length; i++) out[at++] = ids[i]!;
  }
  return out;
}

/** Token ids back to text, one string per group, in a worker (the tokenizer's decoder is user data too). */
export async function decodeInWorker(dirIn: string, groups: number[][], options: TokenizeOptions & { skipSpecialTokens?: boolean } = {}): Promise<string[]> {
  const dir = resolve(dirIn);
  try {
    const { texts } = await pool('tokenize').run('decode', { dir, groups, skipSpecialTokens: options.skipSpecialTokens ?? false }, { signal: options.signal, timeoutMs: options.timeoutMs ?? TOKENIZE_TIMEOUT_MS });
    return texts;
  } catch (e) {
    throw explain(dir, 'decoding token ids', e);
  }
}

const summaries = new Map<string, { stamp: string; summary: Promise<TokenizerSummary> }>();



/**
 * Loads and checks a tokenizer folder in a worker; remembered while its files do not
 * change. Callers share one load: a caller's signal stops its own wait, not the load.
 */
export async function tokenizerSummaryInWorker(dirIn: string, options: TokenizeOptions = {}): Promise<TokenizerSummary> {
  const dir = resolve(dirIn);
  const stamp = await tokenizerFolderStamp(dir);
  const hit = summaries.get(dir);
  if (hit && hit.stamp === stamp) return untilAborted(hit.summary, options.signal);
  const summary = pool('tokenize')
    .run('tokenizer-summary', { dir }, { timeoutMs: options.timeoutMs ?? TOKENIZER_LOAD_TIMEOUT_MS })
    .catch((e: unknown) => {
      if (summaries.get(dir)?.summary === summary) summaries.delete(dir); // a failure is not remembered: the user may fix the folder
      throw explain(dir, 'loading the tokenizer', e);
    });
  if (summaries.size >= 32) summaries.clear();
  summaries.set(dir, { stamp, summary });
  return untilAborted(summary, options.signal);
}

export interface TokenCountResult {
  /** With the document's special prefix (BOS). */
  documentTokens: number;
  promptTokens: number;
  /** False when counting stopped at `limit`: the counts are then lower bounds whose sum reaches it. */
  complete: boolean;
}

/**
 * Token counts as the runner will tokenize. With `limit`, a text whose lower bound already
 * reaches it is not tokenized: the bounds come back with complete false.
 */
export async function countTokensInWorker(
  dirIn: string,
  documentText: string,
  promptText: string,
  options: TokenizeOptions & { limit?: number } = {},
): Promise<TokenCountResult> {
  const dir = resolve(dirIn);
  const summary = await tokenizerSummaryInWorker(dir, options);
  if (options.limit !== undefined) {
    const documentTokens = summary.documentPrefix.length + minTokensFor(summary.maxTokenUnits, documentText);
    const promptTokens = minTokensFor(summary.maxTokenUnits, promptText);
    if (documentTokens + promptTokens >= options.limit) return { documentTokens, promptTokens, complete: false };
  }
  // Only the lengths are needed: the ids stay typed arrays.
  const [document, prompt] = await Promise.all([
    encodeParts(dir, documentText, 'document', options, summary.splitsAtParagraphs),
    promptText === '' ? Promise.resolve(new Int32Array(0)) : encodeIds(dir, promptText, 'prompt', options),
  ]);
  return { documentTokens: document.reduce((n, ids) => n + ids.length, 0), promptTokens: prompt.length, complete: true };
}
