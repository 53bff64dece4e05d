// Finished runs, saved as their adapterlens.report/1 JSON in one folder (Electron:
// userData/history; serve: --data-dir/history). One file per run, named by its id.
//
// Ids are generated here and must match HISTORY_ID_PATTERN before they touch the file
// system, so no caller-supplied string can name a path outside the folder. Every file is
// checked against the whole report schema (history-file.ts, the one `adapterlens report`
// uses) on a worker thread: a file that is not a valid report, not a regular file (a
// symlink to /dev/zero, a FIFO) or too large is listed in `skipped` with the reason,
// never thrown, so one bad file does not hide the others and a listed run always opens.
// Reports are written by write-then-rename: a crash mid-save leaves no half file.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../files/atomic-write.js';
import { stampKey } from '../model/file-stamp.js';
import { ReportFormatError } from '../report/read-report.js';
import { pool } from '../worker/pool.js';
import { WorkerCrashError, WorkerTimeoutError } from '../worker/errors.js';
import type { Report } from '../../shared/report.js';
import type { HistoryEntry, SkippedHistoryFile } from '../../shared/rpc.js';
import { HISTORY_FILE_MAX_BYTES, historyEntryOf } from './history-file.js';

export { preview } from './history-file.js';

/** e.g. "20261128T160000123Z-1a2b3c4d": the report's creation time (sorts in time order) and 32 random bits. */
export const HISTORY_ID_PATTERN = /^\d{8}T\d{9}Z-[0-9a-f]{8}$/;

export type SkippedFile = SkippedHistoryFile;

export interface HistoryListing {
  /** Newest first. */
  entries: HistoryEntry[];
  skipped: SkippedFile[];
}

/** Thrown by get() for an id with no file; the service maps it to NOT_FOUND. */
export class HistoryNotFoundError extends Error {
  override readonly name = 'HistoryNotFoundError';
}

/** Reading one saved run takes well under a second; a minute means the file is not one. */
const READ_TIMEOUT_MS = 60_000;

export function isHistoryId(id: string): boolean {
  return HISTORY_ID_PATTERN.test(id);
}

function newId(createdAt: string): string {
  const t = new Date(createdAt);
  const stamp = (Number.isNaN(t.getTime()) ? new Date() : t).toISOString().replace(/[-:.]/g, '');
  // "20261128T160000123Z" from "2026-11-28T16:00:00.123Z"
  return `${stamp}-${randomBytes(4).toString('hex')}`;
}

/** A worker's failure on a file as the reason it is skipped. */
function unreadable(e: unknown): ReportFormatError {
  if (e instanceof ReportFormatError) return e;
  if (e instanceof WorkerTimeoutError) return new ReportFormatError(`reading it took longer than ${e.timeoutMs / 1000} s`);
  if (e instanceof WorkerCrashError) return new ReportFormatError(`reading it failed: ${e.reason}`);
  const code = (e as NodeJS.ErrnoException).code;
  return new ReportFormatError(typeof code === 'string' ? `cannot read it (${code})` : (e as Error).message);
}


export class HistoryStore {
  /** Checked summaries by file name, valid while the file's stamp holds (a report can be tens of MB). */
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
    const text = JSON.stringify(report);
    await writeFileAtomic(this.fileOf(id), text);
    return { id, entry: historyEntryOf(id, report, Buffer.byteLength(text, 'utf8')) };
  }

  async list(): Promise<HistoryListing> {
    let names: string[];
    try {
      names = await fs.readdir(this.dir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return { entries: [], skipped: [] };
      // A folder that cannot be listed is said where skipped files are, not thrown: the app goes on.
      return { entries: [], skipped: [{ file: this.dir, reason: `the history folder cannot be read (${typeof code === 'string' ? code : String(e)})` }] };
    }
    const entries: HistoryEntry[] = [];
    const skipped: SkippedFile[] = [];
    const seen = new Set<string>();
    for (const name of names) {
      if (!name.endsWith('.json') || name.startsWith('.')) continue; // temp files, editors' backups
      const id = name.slice(0, -'.json'.length);
      const file = path.join(this.dir, name);
      if (!isHistoryId(id)) {
        skipped.push({ file, reason: 'the file name is not a history id' });
        continue;
      }
      seen.add(name);
      try {
        const st = await fs.stat(file);
        const stamp = stampKey(st);
        const hit = this.summaries.get(name);
        if (hit && hit.stamp === stamp) {
          entries.push(hit.entry);
          continue;
        }
        const entry = await pool('inspect').run('history-entry', { file, id, maxBytes: HISTORY_FILE_MAX_BYTES }, { timeoutMs: READ_TIMEOUT_MS });
        this.summaries.set(name, { stamp, entry });
        entries.push(entry);
      } catch (e) {
        this.summaries.delete(name);
        skipped.push({ file, reason: unreadable(e).message });
      }
    }
    for (const name of this.summaries.keys()) if (!seen.has(name)) this.summaries.delete(name);
    entries.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : a.id < b.id ? 1 : -1));
    return { entries, skipped };
  }

  /** The saved run; HistoryNotFoundError when there is none, ReportFormatError when the file is not a valid report. */
  async get(id: string): Promise<Report> {
    const file = this.fileOf(id);
    try {
      return await pool('inspect').run('history-report', { file, id, maxBytes: HISTORY_FILE_MAX_BYTES }, { timeoutMs: READ_TIMEOUT_MS });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new HistoryNotFoundError(`no saved run "${id}" (it may have been deleted)`);
      throw new ReportFormatError(`the saved run "${id}" cannot be opened: ${unreadable(e).message}; delete it`);
    }
  }

  /**
   * The saved run rendered in a text format (json, html, md, csv) on a worker thread: an
   * HTML report with its charts takes a noticeable time to render. Errors as get().
   */
  async render(id: string, format: 'json' | 'html' | 'md' | 'csv'): Promise<{ content: string; createdAt: string }> {
    const file = this.fileOf(id);
    try {
      return await pool('inspect').run('history-render', { file, id, maxBytes: HISTORY_FILE_MAX_BYTES, format }, { timeoutMs: READ_TIMEOUT_MS * 2 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new HistoryNotFoundError(`no saved run "${id}" (it may have been deleted)`);
      throw new ReportFormatError(`the saved run "${id}" cannot be opened: ${unreadable(e).message}; delete it`);
    }
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
