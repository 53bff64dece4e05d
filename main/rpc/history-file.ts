// One saved run on disk: read, checked against the whole adapterlens.report/1 schema (the
// same parseReport `adapterlens report` uses, so a file the list shows can always be
// opened and exported), and summarized as a history entry. Runs in a worker of the
// 'inspect' pool (history-store.ts): a report can be tens of MB.
import { JsonDepthError, parseJsonText } from '../files/json-text.js';
import { NotRegularFileError, readRegularFile } from '../files/read-regular-file.js';
import { parseReport, ReportFormatError } from '../report/read-report.js';
import type { Report } from '../../shared/report.js';
import type { HistoryEntry } from '../../shared/rpc.js';

/** A report holds the document and every grid; 512 MiB is far beyond a real one. */
export const HISTORY_FILE_MAX_BYTES = 512 * 1024 * 1024;

export function historyEntryOf(id: string, report: Report, fileBytes: number): HistoryEntry {
  return {
    id,
    createdAt: report.createdAt,
    modelName: report.model.name,
    adapterNames: report.adapters.map((a) => a.name),
    strategies: report.settings.strategies,
    documentTokens: report.documentTokens.length,
    backend: report.backend.kind,
    fileBytes,
    documentStart: preview(report.document.text),
    promptStart: preview(report.prompt.text),
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

/** The report in `file`; ReportFormatError (saying why, in words) for anything that is not a valid one. */
export async function readHistoryFile(file: string, maxBytes = HISTORY_FILE_MAX_BYTES): Promise<{ report: Report; fileBytes: number }> {
  let bytes: Buffer;
  try {
    bytes = await readRegularFile(file, { maxBytes });
  } catch (e) {
    if (e instanceof NotRegularFileError) throw new ReportFormatError(e.reason);
    throw e;
  }
  let json: unknown;
  try {
    json = parseJsonText(bytes.toString('utf8'));
  } catch (e) {
    throw new ReportFormatError(e instanceof JsonDepthError ? `not a report: ${e.message}` : `not valid JSON (${(e as Error).message})`);
  }
  return { report: parseReport(json, 'the file'), fileBytes: bytes.length };
}
