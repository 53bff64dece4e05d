// A saved report rendered in an export format, as the ExportedFile the contract returns.
// JSON is the report itself; every other format comes from the report module
// (main/report/), the same renderer the CLI uses, so an export from the app and one
// from `adapterlens report` are byte-identical.
import type { Report } from '../../shared/report.js';
import type { ExportFormat, ExportedFile } from '../../shared/rpc.js';
import { chromiumPrinter, findChromium, PdfUnavailableError } from '../report/index.js';
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
export function exportFileName(report: Pick<Report, 'createdAt'>, format: ExportFormat): string {
  const t = new Date(report.createdAt);
  const stamp = (Number.isNaN(t.getTime()) ? new Date() : t).toISOString().slice(0, 19).replace(/:/g, '-');
  return `adapterlens-${stamp}.${format}`;
}

/** The printer PDF export uses: the injected one (Electron's printToPDF), else headless Chromium where installed. */
export function pdfPrinterFor(injected?: PdfPrinter): PdfPrinter | null {
  if (injected) return injected;
  const chromium = findChromium();
  return chromium ? chromiumPrinter(chromium) : null;
}

/** Whether `format` can be rendered here (the UI greys out the others). */
export function canExport(format: ExportFormat, pdf?: PdfPrinter): boolean {
  return format !== 'pdf' || pdfPrinterFor(pdf) !== null;
}

/** A rendered text format as the ExportedFile the contract returns. */
export function exportedText(createdAt: string, format: Exclude<ExportFormat, 'pdf'>, content: string): ExportedFile {
  return { fileName: exportFileName({ createdAt }, format), mimeType: MIME[format], encoding: 'utf8', content };
}

/** The PDF printer, or NOT_SUPPORTED saying what to do instead. */
export function requirePdfPrinter(pdf?: PdfPrinter): PdfPrinter {
  const printer = pdfPrinterFor(pdf);
  if (!printer) throw rpcError('NOT_SUPPORTED', 'PDF export needs Chromium (or the desktop app); none was found. Export HTML and print it from any browser.');
  return printer;
}

/** Prints already-rendered HTML to a PDF ExportedFile (NOT_SUPPORTED without a printer). */
export async function exportedPdf(createdAt: string, html: string, pdf?: PdfPrinter): Promise<ExportedFile> {
  const printer = requirePdfPrinter(pdf);
  try {
    const bytes = await printer(html);
    return { fileName: exportFileName({ createdAt }, 'pdf'), mimeType: MIME.pdf, encoding: 'base64', content: Buffer.from(bytes).toString('base64') };
  } catch (e) {
    if (e instanceof PdfUnavailableError) throw rpcError('NOT_SUPPORTED', e.message);
    throw e;
  }
}
