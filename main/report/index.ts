// The report module: every format rendered from an `adapterlens.report/1` Report alone.
// The CLI (compare/demo --html/--md/--csv/--pdf, `adapterlens report`) and the app's
// export both come through renderReport, so a format looks the same wherever it is made.
// A report read from a file goes through readReportFile/parseReport (validated) first.
import type { Report } from '../../shared/report.js';
import { renderCsv } from './render-csv.js';
import { renderHtml } from './render-html.js';
import { renderMarkdown } from './render-markdown.js';
import { renderPdf, type PdfPrinter } from './render-pdf.js';

export type ReportFormat = 'html' | 'md' | 'csv' | 'pdf';
export const REPORT_FORMATS: readonly ReportFormat[] = ['html', 'md', 'csv', 'pdf'];

export const REPORT_MIME_TYPES: Record<ReportFormat, string> = {
  html: 'text/html; charset=utf-8',
  md: 'text/markdown; charset=utf-8',
  csv: 'text/csv; charset=utf-8',
  pdf: 'application/pdf',
};

export interface RenderOptions {
  /** How to print HTML to PDF: the app injects Electron's printToPDF; default: headless Chromium. */
  printPdf?: PdfPrinter;
}

/** A report in one format: text for html/md/csv, bytes for pdf. */
export async function renderReport(report: Report, format: 'html' | 'md' | 'csv', options?: RenderOptions): Promise<string>;
export async function renderReport(report: Report, format: 'pdf', options?: RenderOptions): Promise<Uint8Array>;
export async function renderReport(report: Report, format: ReportFormat, options?: RenderOptions): Promise<string | Uint8Array>;
export async function renderReport(report: Report, format: ReportFormat, options: RenderOptions = {}): Promise<string | Uint8Array> {
  switch (format) {
    case 'html':
      return renderHtml(report);
    case 'md':
      return renderMarkdown(report);
    case 'csv':
      return renderCsv(report);
    case 'pdf':
      return renderPdf(renderHtml(report), options.printPdf);
  }
}

export { renderCsv, renderHtml, renderMarkdown, renderPdf };
export { chromiumPrinter, findChromium, PdfUnavailableError, type PdfPrinter } from './render-pdf.js';
export { parseReport, readReportFile, ReportFormatError } from './read-report.js';
export { REPORT_CSP } from './render-html.js';
