// The embedded default comparison: the demo model of models/demo (a small Llama trained from
// public-domain text, with three LoRA adapters each trained on one genre; MODEL_CARD.md there
// says how), its bundled held-out document with the prompt that continues it, and every
// strategy. Used by `adapterlens demo` and offered by the app (AppInfo.demo).
//
// The weights are trained on a GPU machine by models/demo/train and committed. A checkout or
// build without them has no demo: demoStatus() says which file is missing, and nothing else is
// run in its place (the random-weight models under tests/fixtures are test fixtures only).
import fs from 'node:fs/promises';
import path from 'node:path';
import { projectRoot } from '../paths.js';
import { DEFAULT_SETTINGS, type CompareRequest } from '../../shared/compare.js';
import { ALL_STRATEGIES } from '../../shared/strategies.js';
import { demoDir, readDemoDocuments, type DemoDocumentEntry } from './demo-documents.js';

/** The demo's adapters, in the order the demo shows them (names as models/demo/train/train.py saves them). */
export const DEMO_ADAPTERS = ['moby-dick-all-linear-r16', 'sotu-1800s-rslora-r16', 'sotu-modern-qv-r8'] as const;
/** Tokens each row generates in the demo (the HF reference of train.py generates as many). */
export const DEMO_MAX_NEW_TOKENS = 32;

export type DemoStatus = { available: true } | { available: false; reason: string };

async function isFile(p: string): Promise<boolean> {
  try {
    return (await fs.stat(p)).isFile();
  } catch {
    return false;
  }
}

const HOW_TO_GET =
  'the demo model is trained on a GPU by models/demo/train (see "The demo model" in README.md) and committed under models/demo';

/** The demo's folders under a models/demo root (the repository's, or another in tests). */
function layout(root: string): { base: string; adapters: string; documents: string } {
  return { base: path.join(root, 'base'), adapters: path.join(root, 'adapters'), documents: path.join(root, 'documents') };
}

/** Whether the demo's model, adapters and document are all here, and if not, which file is missing. */
export async function demoStatus(root: string = demoDir): Promise<DemoStatus> {
  const { base: demoBaseDir, adapters: demoAdaptersDir, documents: demoDocumentsDir } = layout(root);
  let documents: DemoDocumentEntry[];
  try {
    documents = await readDemoDocuments(demoDocumentsDir);
  } catch (e) {
    return { available: false, reason: `the demo's document index cannot be read (${(e as Error).message})` };
  }
  const required = [
    path.join(demoBaseDir, 'config.json'),
    path.join(demoBaseDir, 'tokenizer.json'),
    path.join(demoBaseDir, 'tokenizer_config.json'),
    ...DEMO_ADAPTERS.flatMap((a) => [path.join(demoAdaptersDir, a, 'adapter_config.json'), path.join(demoAdaptersDir, a, 'adapter_model.safetensors')]),
    path.join(demoDocumentsDir, documents[0]!.file),
  ];
  const weights = (await isFile(path.join(demoBaseDir, 'model.safetensors'))) || (await isFile(path.join(demoBaseDir, 'model.safetensors.index.json')));
  const missing: string[] = weights ? [] : [path.join(demoBaseDir, 'model.safetensors')];
  for (const p of required) if (!(await isFile(p))) missing.push(p);
  if (missing.length === 0) return { available: true };
  const shown = missing.slice(0, 3).map((p) => (p.startsWith(projectRoot + path.sep) ? path.relative(projectRoot, p) : p));
  return {
    available: false,
    reason: `the demo model is not in this copy of AdapterLens: ${shown.join(', ')}${missing.length > 3 ? ` and ${missing.length - 3} more` : ''} ${missing.length === 1 ? 'is' : 'are'} missing; ${HOW_TO_GET}.`,
  };
}


/** The thrown error when the demo is asked for but not here. */
export class DemoUnavailableError extends Error {}

/** The demo comparison: the model of models/demo, its three adapters, the bundled document and prompt, every strategy. */
export async function demoRequest(root: string = demoDir): Promise<CompareRequest> {
  const status = await demoStatus(root);
  if (!status.available) throw new DemoUnavailableError(status.reason);
  const { base: demoBaseDir, adapters: demoAdaptersDir, documents: demoDocumentsDir } = layout(root);
  const document = (await readDemoDocuments(demoDocumentsDir))[0]!;
  return {
    ...DEFAULT_SETTINGS,
    strategies: [...ALL_STRATEGIES],
    maxNewTokens: DEMO_MAX_NEW_TOKENS,
    modelDir: demoBaseDir,
    adapters: DEMO_ADAPTERS.map((name) => ({ name, dir: path.join(demoAdaptersDir, name) })),
    documentText: await fs.readFile(path.join(demoDocumentsDir, document.file), 'utf8'),
    promptText: document.prompt,
  };
}
