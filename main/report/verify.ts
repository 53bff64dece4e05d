// `adapterlens verify`: is a saved report still true? Two checks, both always run so
// the user sees the whole picture:
//   1. every model, tokenizer and adapter file still hashes as the report says
//      (changed, missing and new files, by folder);
//   2. the same inputs (document, prompt, settings, folders — all in the report) re-run
//      through the comparison runner reproduce its numbers within tolerances
//      (report-diff.ts says which moved, and why those tolerances).
import path from 'node:path';
import { CacheManager } from '../cache/cache-manager.js';
import { runComparison, type RunHooks } from '../compare/runner.js';
import { EngineSession } from '../compare/session.js';
import { sha256Dir } from '../model/sha256.js';
import type { CompareRequest } from '../../shared/compare.js';
import type { FileHashes, Report } from '../../shared/report.js';
import { DEFAULT_TOLERANCES, diffReports, type Move, type Tolerances } from './report-diff.js';

export interface HashMismatch {
  /** "model llama", "tokenizer", "adapter qv-r8". */
  owner: string;
  dir: string;
  file: string;
  kind: 'changed' | 'missing' | 'added' | 'folder unreadable';
  old: string | null;
  new: string | null;
}

/** Folders to use instead of the report's (the files moved, or another copy is checked). */
export interface FolderOverrides {
  model?: string;
  tokenizer?: string;
  /** Adapter name → folder. */
  adapters?: Record<string, string>;
}

export interface VerifyOptions {
  tolerances?: Tolerances;
  folders?: FolderOverrides;
  /** Cache budget of the re-run (default 8 GiB, as compare). */
  budgetBytes?: number;
  hooks?: RunHooks;
}

export interface VerifyResult {
  ok: boolean;
  hashMismatches: HashMismatch[];
  moves: Move[];
  /** Why the re-run could not run (a folder gone, a file no longer loads); null when it ran. */
  rerunError: string | null;
  /** Differences worth knowing that do not fail verification (another backend, device or version). */
  notes: string[];
  /** The re-run's report, when it ran. */
  fresh: Report | null;
}

/** The request that produced `report`, with folders overridden where asked. */
export function requestFromReport(report: Report, folders: FolderOverrides = {}): CompareRequest {
  const modelDir = folders.model ?? report.model.dir;
  // A tokenizer read from the model folder follows the model when that folder is overridden.
  const tokenizerDir = folders.tokenizer ?? (path.resolve(report.tokenizer.dir) === path.resolve(report.model.dir) ? modelDir : report.tokenizer.dir);
  const s = report.settings;
  return {
    modelDir,
    tokenizerDir,
    adapters: report.adapters.map((a) => ({ name: a.name, dir: folders.adapters?.[a.name] ?? a.dir })),
    documentText: report.document.text,
    promptText: report.prompt.text,
    strategies: s.strategies,
    maxNewTokens: s.maxNewTokens,
    temperature: s.temperature,
    topP: s.topP,
    seed: s.seed,
    dtype: s.dtype,
    device: s.device,
    stopAtEos: s.stopAtEos,
  };
}

/** Compares a folder's current hashes with the report's (the same files the runner hashes). */
export async function checkHashes(owner: string, dir: string, saved: FileHashes, signal?: AbortSignal): Promise<HashMismatch[]> {
  let current: FileHashes;
  try {
    current = Object.fromEntries((await sha256Dir(dir, { signal })).files.map((f) => [f.name, f.sha256]));
  } catch (e) {
    return [{ owner, dir, file: '', kind: 'folder unreadable', old: null, new: e instanceof Error ? e.message : String(e) }];
  }
  const out: HashMismatch[] = [];
  for (const [file, h] of Object.entries(saved)) {
    const now = current[file];
    if (now === undefined) out.push({ owner, dir, file, kind: 'missing', old: h, new: null });
    else if (now !== h) out.push({ owner, dir, file, kind: 'changed', old: h, new: now });
  }
  for (const [file, h] of Object.entries(current)) if (!(file in saved)) out.push({ owner, dir, file, kind: 'added', old: null, new: h });
  return out;
}

function notesFor(saved: Report, fresh: Report): string[] {
  const notes: string[] = [];
  if (saved.backend.kind !== fresh.backend.kind || saved.backend.device !== fresh.backend.device) {
    notes.push(`the report ran on ${saved.backend.kind} (${saved.backend.device}); this re-run on ${fresh.backend.kind} (${fresh.backend.device})`);
  }
  for (const k of ['adapterlens', 'engine'] as const) {
    if (saved.versions[k] !== fresh.versions[k]) notes.push(`${k} version ${saved.versions[k]} → ${fresh.versions[k]}`);
  }
  return notes;
}

export async function verifyReport(report: Report, options: VerifyOptions = {}): Promise<VerifyResult> {
  const request = requestFromReport(report, options.folders);
  const signal = options.hooks?.signal;
  const hashMismatches = [
    ...(await checkHashes(`model ${report.model.name}`, request.modelDir, report.model.sha256, signal)),
    ...(await checkHashes('tokenizer', request.tokenizerDir!, report.tokenizer.sha256, signal)),
  ];
  for (const [i, a] of report.adapters.entries()) hashMismatches.push(...(await checkHashes(`adapter ${a.name}`, request.adapters[i]!.dir, a.sha256, signal)));

  let fresh: Report | null = null;
  let rerunError: string | null = null;
  let session: EngineSession | null = null;
  let cacheManager: CacheManager | null = null;
  try {
    // Inside the try: an engine that cannot load (e.g. a report made with --device cuda,
    // checked where there is no CUDA build) is a finding of the re-run, not a crash.
    session = new EngineSession(request.device);
    cacheManager = new CacheManager({ budgetBytes: options.budgetBytes ?? 8 * 2 ** 30 });
    fresh = await runComparison(session, cacheManager, request, options.hooks);
  } catch (e) {
    // A cancel is the user's choice, not a finding: let it through.
    if (signal?.aborted) throw e;
    rerunError = e instanceof Error ? e.message : String(e);
  } finally {
    cacheManager?.dispose();
    session?.dispose();
  }
  const moves = fresh ? diffReports(report, fresh, options.tolerances ?? DEFAULT_TOLERANCES) : [];
  return {
    ok: hashMismatches.length === 0 && rerunError === null && moves.length === 0,
    hashMismatches,
    moves,
    rerunError,
    notes: fresh ? notesFor(report, fresh) : [],
    fresh,
  };
}
