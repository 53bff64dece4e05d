// A saved report rendered in an export format, as the ExportedFile the contract returns.
// JSON is the report itself. The other formats belong to the report module
// (main/report/, another issue's work): until it lands they answer NOT_SUPPORTED, and
// wiring it in is this file's job alone.
import type { Report } from '../../shared/report.js';
import type { ExportFormat, ExportedFile } from '../../shared/rpc.js';
import { rpcError } from './errors.js';

/** Renders HTML to PDF (Electron injects webContents.printToPDF); absent where there is no Chromium. */
export type PdfPrinter = (html: string) => Promise<Uint8Array>;

const MIME: Record<ExportFormat, string> = {
  json: 'application/json',
  html: 'text/html',
  md: 'text/markdown',
  csv: 'text/csv',
  pdf: 'application/pdf',
};

/** "adapterlens-2026-11-28T16-00-00.json": the run's time, safe in every file system. */
export function exportFileName(report: Report, format: ExportFormat): string {
  const t = new Date(report.createdAt);
  const stamp = (Number.isNaN(t.getTime()) ? new Date() : t).toISOString().slice(0, 19).replace(/:/g, '-');
  return `adapterlens-${stamp}.${format}`;
}

/** Whether `format` can be rendered here (the UI greys out the others). */
export function canExport(format: ExportFormat): boolean {
  return format === 'json';
}

export async function exportReport(report: Report, format: ExportFormat, _pdf?: PdfPrinter): Promise<ExportedFile> {
  if (format === 'json') {
    return { fileName: exportFileName(report, format), mimeType: MIME.json, encoding: 'utf8', content: JSON.stringify(report, null, 1) };
  }
  throw rpcError('NOT_SUPPORTED', `exporting as ${format.toUpperCase()} is not available in this version yet; export as JSON (every other format is rendered from it).`);
}
