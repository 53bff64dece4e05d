// Finished runs, saved as their adapterlens.report/1 JSON in one folder (Electron:
// userData/history; serve: --data-dir/history). One file per run, named by its id.
//
// Ids are generated here and must match HISTORY_ID_PATTERN before they touch the file
// system, so no caller-supplied string can name a path outside the folder. A file that
// does not parse as a report is listed in `skipped`, never thrown: one bad file must not
// hide the others.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { REPORT_SCHEMA, type Report } from '../../shared/report.js';
import type { HistoryEntry } from '../../shared/rpc.js';

/** e.g. "20261128T160000123Z-1a2b3c4d": the report's creation time (sorts in time order) and 32 random bits. */
export const HISTORY_ID_PATTERN = /^\d{8}T\d{9}Z-[0-9a-f]{8}$/;

export interface SkippedFile {
  file: string;
  reason: string;
}

export interface HistoryListing {
  /** Newest first. */
  entries: HistoryEntry[];
  skipped: SkippedFile[];
}

/** Thrown by get() for an id with no file; the service maps it to NOT_FOUND. */
export class HistoryNotFoundError extends Error {
  override readonly name = 'HistoryNotFoundError';
}

export function isHistoryId(id: string): boolean {
  return HISTORY_ID_PATTERN.test(id);
}

function newId(createdAt: string): string {
  const t = new Date(createdAt);
  const stamp = (Number.isNaN(t.getTime()) ? new Date() : t).toISOString().replace(/[-:.]/g, '');
  // "20261128T160000123Z" from "2026-11-28T16:00:00.123Z"
  return `${stamp}-${randomBytes(4).toString('hex')}`;
}

/** The few fields a history entry needs, checked; anything else about the report is the reader's business. */
function entryOf(id: string, report: unknown, fileBytes: number): HistoryEntry {
  const r = report as Partial<Report> | null;
  if (!r || typeof r !== 'object') throw new Error('not a JSON object');
  if (r.schema !== REPORT_SCHEMA) throw new Error(`schema is ${JSON.stringify(r.schema)}, expected "${REPORT_SCHEMA}"`);
  if (typeof r.createdAt !== 'string' || !r.model || !Array.isArray(r.adapters) || !r.settings || !Array.isArray(r.documentTokens) || !r.backend) {
    throw new Error('missing createdAt, model, adapters, settings, documentTokens or backend');
  }
  return {
    id,
    createdAt: r.createdAt,
    modelName: String(r.model.name),
    adapterNames: r.adapters.map((a) => String(a.name)),
    strategies: Array.isArray(r.settings.strategies) ? r.settings.strategies : [],
    documentTokens: r.documentTokens.length,
    backend: r.backend.kind === 'cuda' ? 'cuda' : 'cpu',
    fileBytes,
    documentStart: preview(r.document?.text),
    promptStart: preview(r.prompt?.text),
  };
}

/** The first words of a text for a list: whitespace collapsed, cut at a word near 120 characters. */
export function preview(text: unknown, max = 120): string {
  if (typeof text !== 'string') return '';
  const flat = text.slice(0, max * 4).replace(/\s+/g, ' ').trim();
  if (flat.length <= max) return flat;
  const cut = flat.lastIndexOf(' ', max);
  return `${flat.slice(0, cut > max / 2 ? cut : max)}…`;
}

export class HistoryStore {
  /** Parsed summaries by file name, valid while size and mtime match (a report can be tens of MB). */
  private readonly summaries = new Map<string, { stamp: string; entry: HistoryEntry }>();

  constructor(readonly dir: string) {}

  private fileOf(id: string): string {
    if (!isHistoryId(id)) throw new HistoryNotFoundError(`"${id}" is not a history id`);
    return path.join(this.dir, `${id}.json`);
  }

  /** Writes the report (atomically: a temp file renamed into place) and returns its id. */
  async save(report: Report): Promise<{ id: string; entry: HistoryEntry }> {
    await fs.mkdir(this.dir, { recursive: true });
    const id = newId(report.createdAt);
    const file = this.fileOf(id);
    const tmp = `${file}.${process.pid}.tmp`;
    const text = JSON.stringify(report);
    await fs.writeFile(tmp, text, 'utf8');
    await fs.rename(tmp, file);
    return { id, entry: entryOf(id, report, Buffer.byteLength(text, 'utf8')) };
  }

  async list(): Promise<HistoryListing> {
    let names: string[];
    try {
      names = await fs.readdir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { entries: [], skipped: [] };
      throw e;
    }
    const entries: HistoryEntry[] = [];
    const skipped: SkippedFile[] = [];
    const seen = new Set<string>();
    for (const name of names) {
      if (!name.endsWith('.json')) continue; // temp files, editors' backups
      const id = name.slice(0, -'.json'.length);
      const file = path.join(this.dir, name);
      if (!isHistoryId(id)) {
        skipped.push({ file, reason: 'the file name is not a history id' });
        continue;
      }
      seen.add(name);
      try {
        const st = await fs.stat(file);
        if (!st.isFile()) throw new Error('not a regular file');
        const stamp = `${st.size}:${st.mtimeMs}`;
        const hit = this.summaries.get(name);
        if (hit && hit.stamp === stamp) {
          entries.push(hit.entry);
          continue;
        }
        const entry = entryOf(id, JSON.parse(await fs.readFile(file, 'utf8')), st.size);
        this.summaries.set(name, { stamp, entry });
        entries.push(entry);
      } catch (e) {
        this.summaries.delete(name);
        skipped.push({ file, reason: e instanceof SyntaxError ? `not valid JSON (${e.message})` : (e as Error).message });
      }
    }
    for (const name of this.summaries.keys()) if (!seen.has(name)) this.summaries.delete(name);
    entries.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : a.id < b.id ? 1 : -1));
    return { entries, skipped };
  }

  async get(id: string): Promise<Report> {
    const file = this.fileOf(id);
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new HistoryNotFoundError(`no saved run "${id}" (it may have been deleted)`);
      throw e;
    }
    let report: unknown;
    try {
      report = JSON.parse(text);
    } catch (e) {
      throw new Error(`the saved run "${id}" is not valid JSON (${(e as Error).message}); delete it`);
    }
    entryOf(id, report, text.length); // the same checks list() applies
    return report as Report;
  }

  /** False when there was no such run. */
  async delete(id: string): Promise<boolean> {
    const file = this.fileOf(id);
    try {
      await fs.unlink(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw e;
    }
    this.summaries.delete(path.basename(file));
    return true;
  }
}
