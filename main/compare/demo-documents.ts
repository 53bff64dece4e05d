// Where the embedded demo lives (models/demo) and the index of its held-out documents
// (models/demo/documents/documents.json, written by models/demo/train/prepare-data.ts).
import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { projectRoot } from '../paths.js';

export const demoDir = path.join(projectRoot, 'models', 'demo');
export const demoBaseDir = path.join(demoDir, 'base');
export const demoAdaptersDir = path.join(demoDir, 'adapters');
export const demoDocumentsDir = path.join(demoDir, 'documents');
export const DOCUMENTS_INDEX = 'documents.json';

export const demoDocumentEntrySchema = z.object({
  /** File name inside models/demo/documents. */
  file: z.string().regex(/^[\w.-]+\.txt$/),
  role: z.string(),
  genre: z.string(),
  /** Where the passage comes from, e.g. "Moby-Dick, chapter 10: A Bosom Friend." */
  source: z.string(),
  /** The corpus document it was cut from (models/demo/train/corpus.ts ids). */
  corpusDocument: z.string(),
  /** Always the held-out split: no model was trained on it. */
  split: z.literal('test'),
  /** Document tokens with BOS. */
  tokens: z.number().int().positive(),
  /** The first words of the sentence that follows the passage: generation continues it. */
  prompt: z.string(),
  promptTokens: z.number().int().nonnegative(),
});
export type DemoDocumentEntry = z.infer<typeof demoDocumentEntrySchema>;

const indexSchema = z.object({ documents: z.array(demoDocumentEntrySchema).min(1) });

/** The shipped held-out documents; the first is the demo's. Throws when the index is missing or malformed. */
export async function readDemoDocuments(documentsDir: string = demoDocumentsDir): Promise<DemoDocumentEntry[]> {
  const file = path.join(documentsDir, DOCUMENTS_INDEX);
  const parsed = indexSchema.safeParse(JSON.parse(await fs.readFile(file, 'utf8')));
  if (!parsed.success) throw new Error(`${file}: not a demo document index (${parsed.error.message})`);
  return parsed.data.documents;
}
