// Property-based fuzzing of the tokenizer loader and of tokenizing (issue 13): a small BPE
// tokenizer folder with hostile mutations (token ids, added tokens, normalizers and
// pre-tokenizers with random regexes, tokenizer_config.json fields) is loaded, and a
// random text is encoded on a worker thread with a short time limit. Property: accepted,
// or refused with a LoadError naming the folder's files; never an untyped exception, a
// crash or a hang.
import { describe, it, after } from 'node:test';
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { LoadError } from '../../main/model/errors.js';
import { loadTokenizer } from '../../main/model/tokenizer.js';
import { encodeInWorker } from '../../main/model/tokenize-async.js';
import { shutdownPools } from '../../main/worker/pool.js';
import { tempDir } from '../rpc/helpers.js';
import { extremeNumber, FUZZ_MS, fuzz, hostileJson, mutateFields, regexish } from './settings.js';

const letters = 'abcdefghijklmnopqrstuvwxyz';
const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2, '▁': 3 };
for (const c of letters) vocab[c] = Object.keys(vocab).length;
for (const w of ['▁a', '▁t', 'he', '▁the']) vocab[w] = Object.keys(vocab).length;
const added = [0, 1, 2].map((id) => ({ id, content: ['<unk>', '<s>', '</s>'][id]!, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
const tokenizerJson: Record<string, unknown> = {
  version: '1.0',
  truncation: null,
  padding: null,
  added_tokens: added,
  normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
  pre_tokenizer: null,
  post_processor: null,
  decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'Fuse' }] },
  model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: false, vocab, merges: ['▁ a', '▁ t', 'h e', '▁t he'] },
};
const tokenizerConfig: Record<string, unknown> = { bos_token: '<s>', eos_token: '</s>', add_bos_token: true, tokenizer_class: 'PreTrainedTokenizerFast' };

const component = fc.oneof(
  fc.constant(null),
  hostileJson,
  regexish.map((re) => ({ type: 'Split', pattern: { Regex: re }, behavior: 'Isolated', invert: false })),
  regexish.map((re) => ({ type: 'Replace', pattern: { Regex: re }, content: '▁' })),
  fc.constantFrom('Metaspace', 'ByteLevel', 'Whitespace', 'WhitespaceSplit', 'Digits', 'Punctuation', 'BertPreTokenizer', 'NFKC', 'Lowercase', 'Strip', 'Nope').map((type) => ({ type, replacement: '▁', add_prefix_space: true })),
  fc.array(regexish.map((re) => ({ type: 'Split', pattern: { Regex: re }, behavior: 'Removed', invert: true })), { maxLength: 3 }).map((pretokenizers) => ({ type: 'Sequence', pretokenizers })),
);

const tokenizerFile = fc.oneof(
  mutateFields(tokenizerJson),
  fc.record({ normalizer: component, pre_tokenizer: component, decoder: component }).map((c) => ({ ...tokenizerJson, ...c })),
  fc.array(fc.record({ id: fc.oneof(extremeNumber, fc.nat({ max: 40 })), content: fc.string({ maxLength: 6 }), special: fc.boolean() }), { maxLength: 4 }).map((extra) => ({
    ...tokenizerJson,
    added_tokens: [...added, ...extra.map((e) => ({ ...e, single_word: false, lstrip: false, rstrip: false, normalized: false }))],
  })),
  fc.dictionary(fc.string({ maxLength: 4 }), extremeNumber, { maxKeys: 4 }).map((v) => ({ ...tokenizerJson, model: { ...(tokenizerJson.model as object), vocab: { ...vocab, ...v } } })),
  mutateFields(tokenizerJson.model as Record<string, unknown>).map((model) => ({ ...tokenizerJson, model })),
);

const configFile = fc.oneof(fc.constant(tokenizerConfig), mutateFields(tokenizerConfig), hostileJson);

describe('fuzz: tokenizer loader and tokenizing', { timeout: 300_000 }, () => {
  after(() => shutdownPools());
  const root = tempDir('fuzz-tokenizer');
  let n = 0;

  it('a mutated tokenizer folder loads or is refused with a LoadError; a text encodes in a worker or is refused in time', async (t) => {
    await fuzz(
      t,
      fc.asyncProperty(tokenizerFile, configFile, fc.string({ maxLength: 80 }), async (tok, cfg, text) => {
        const dir = path.join(root, `tok${n++}`);
        fs.mkdirSync(dir);
        fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tok) ?? 'null');
        fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(cfg) ?? 'null');
        let loaded = false;
        try {
          const tokenizer = await loadTokenizer(dir);
          loaded = true;
          tokenizer.decodeTokenPieces(tokenizer.encodePrompt('the'));
        } catch (e) {
          if (!(e instanceof LoadError)) throw new Error(`untyped failure ${loaded ? 'using' : 'loading'} the tokenizer: ${(e as Error)?.name}: ${(e as Error)?.message}`);
        }
        if (loaded) {
          try {
            await encodeInWorker(dir, text, 'document', { timeoutMs: 2000 });
          } catch (e) {
            if (!(e instanceof LoadError)) throw new Error(`untyped failure encoding: ${(e as Error)?.name}: ${(e as Error)?.message}`);
          }
        }
        fs.rmSync(dir, { recursive: true });
      }),
      2 * FUZZ_MS,
    );
  });
});
