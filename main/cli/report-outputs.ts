// The report files a command writes: --html, --md, --csv, --pdf OUT, shared by
// `compare`, `demo` and `report` so each option means the same everywhere.
import fs from 'node:fs';
import path from 'node:path';
import { formatBytes } from '../../shared/format.js';
import type { Report } from '../../shared/report.js';
import { writeFileAtomicSync } from '../files/atomic-write.js';
import { renderReport, type ReportFormat } from '../report/index.js';
import { terminalSafe } from './terminal-text.js';

/** parseArgs options, spread into a command's own. */
export const REPORT_OUTPUT_OPTIONS = {
  html: { type: 'string' },
  md: { type: 'string' },
  csv: { type: 'string' },
  pdf: { type: 'string' },
} as const;

export type ReportOutputs = Partial<Record<ReportFormat, string>>;

export const REPORT_OUTPUT_USAGE = '[--html OUT.html] [--md OUT.md] [--csv OUT.csv] [--pdf OUT.pdf]';

export function hasOutputs(o: ReportOutputs): boolean {
  return Boolean(o.html || o.md || o.csv || o.pdf);
}

/**
 * Renders and writes each asked format, saying where on stderr. PDF goes last: it is the
 * only one that can fail for want of a tool (Chromium), after the others are written.
 */
export async function writeReportOutputs(report: Report, outputs: ReportOutputs, log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<void> {
  for (const format of ['html', 'md', 'csv', 'pdf'] as const) {
    const file = outputs[format];
    if (!file) continue;
    const data = await renderReport(report, format);
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    // Write-then-rename: an interrupted write never leaves half a report under the name.
    writeFileAtomicSync(file, data);
    log(`${format.toUpperCase()} report written to ${terminalSafe(file)} (${formatBytes(fs.statSync(file).size)})`);
  }
}
