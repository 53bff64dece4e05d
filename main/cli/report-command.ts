// `adapterlens report REPORT.json --html OUT ...`: renders a saved report (an old run,
// a colleague's file) in any format. The JSON is validated before anything is rendered.
import { parseArgs } from 'node:util';
import { ReportFormatError, readReportFile } from '../report/read-report.js';
import { PdfUnavailableError } from '../report/render-pdf.js';
import { REPORT_OUTPUT_OPTIONS, REPORT_OUTPUT_USAGE, hasOutputs, writeReportOutputs } from './report-outputs.js';
import { terminalSafe } from './terminal-text.js';

export const REPORT_USAGE = `  adapterlens report REPORT.json ${REPORT_OUTPUT_USAGE}
                      render a saved adapterlens.report/1 JSON in other formats`;

export async function reportCommand(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...REPORT_OUTPUT_OPTIONS, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (e) {
    process.stderr.write(`adapterlens report: ${terminalSafe((e as Error).message)}\n\nUsage:\n${REPORT_USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`Usage:\n${REPORT_USAGE}\n`);
    return 0;
  }
  if (positionals.length !== 1 || !hasOutputs(values)) {
    process.stderr.write(`adapterlens report: give one REPORT.json and at least one output\n\nUsage:\n${REPORT_USAGE}\n`);
    return 2;
  }
  try {
    const report = await readReportFile(positionals[0]!);
    await writeReportOutputs(report, values);
    return 0;
  } catch (e) {
    if (e instanceof ReportFormatError || e instanceof PdfUnavailableError) {
      process.stderr.write(`adapterlens report: ${terminalSafe(e.message)}\n`);
      return 1;
    }
    throw e;
  }
}
