// `adapterlens verify REPORT.json`: re-runs a saved report's inputs and checks that the
// files hash the same and the numbers have not moved (main/report/verify.ts). Exit code
// 0 when the report still holds, 1 when it does not (the list says what moved), 2 for a
// usage error, 130 when cancelled.
import { parseArgs } from 'node:util';
import { isCancellation } from '../cancellation.js';
import { STAGE_LABELS, type CompareStage } from '../../shared/compare.js';
import { ReportFormatError, readReportFile } from '../report/read-report.js';
import { DEFAULT_TOLERANCE, DEFAULT_TOLERANCES, FAMILY_METRICS, type MetricFamily, type Tolerances } from '../report/report-diff.js';
import { verifyReport, type FolderOverrides } from '../report/verify.js';
import { formatVerification } from '../report/verify-text.js';
import { terminalSafe } from './terminal-text.js';

export const VERIFY_USAGE = `  adapterlens verify REPORT.json [--tolerance T] [--tolerance errors|scores|probs=T]
                      [--model DIR] [--tokenizer DIR] [--adapter NAME=DIR ...] [--budget-gib G]
                      re-run a report's inputs: files must hash the same, numbers must not move
                      (a value moves when |new − old| > T × max(|old|, 0.01); default T = ${DEFAULT_TOLERANCE})`;

const OPTIONS = {
  tolerance: { type: 'string', multiple: true },
  model: { type: 'string' },
  tokenizer: { type: 'string' },
  adapter: { type: 'string', multiple: true },
  'budget-gib': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

class VerifyUsageError extends Error {}

const FAMILIES = Object.keys(FAMILY_METRICS) as MetricFamily[];

function tolerance(text: string, what: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < 0) throw new VerifyUsageError(`--tolerance ${what}: expected a number ≥ 0`);
  return n;
}

/** "1e-3" sets every family; "scores=1e-3" one family (later options win). */
export function parseTolerances(args: readonly string[]): Tolerances {
  const t: Tolerances = { ...DEFAULT_TOLERANCES };
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq < 0) {
      const n = tolerance(arg, arg);
      for (const f of FAMILIES) t[f] = n;
      continue;
    }
    const family = arg.slice(0, eq) as MetricFamily;
    if (!FAMILIES.includes(family)) throw new VerifyUsageError(`--tolerance ${arg}: unknown metric family "${family}" (expected ${FAMILIES.join(', ')})`);
    t[family] = tolerance(arg.slice(eq + 1), arg);
  }
  return t;
}

function folderOverrides(values: { model?: string; tokenizer?: string; adapter?: string[] }): FolderOverrides {
  const adapters: Record<string, string> = {};
  for (const a of values.adapter ?? []) {
    const eq = a.indexOf('=');
    if (eq <= 0) throw new VerifyUsageError(`--adapter ${a}: expected NAME=DIR (NAME as in the report)`);
    adapters[a.slice(0, eq)] = a.slice(eq + 1);
  }
  return { model: values.model, tokenizer: values.tokenizer, adapters };
}

export async function verifyCommand(argv: string[]): Promise<number> {
  const controller = new AbortController();
  const onSigint = (): void => {
    process.stderr.write('\ncancelling…\n');
    controller.abort();
  };
  try {
    const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
    if (values.help) {
      process.stdout.write(`Usage:\n${VERIFY_USAGE}\nTolerance families: ${FAMILIES.map((f) => `${f} (${FAMILY_METRICS[f]})`).join('; ')}.\n`);
      return 0;
    }
    if (positionals.length !== 1) throw new VerifyUsageError('give exactly one REPORT.json');
    const tolerances = parseTolerances(values.tolerance ?? []);
    const folders = folderOverrides(values);
    const budget = values['budget-gib'] === undefined ? 8 : Number(values['budget-gib']);
    if (!(budget > 0)) throw new VerifyUsageError(`--budget-gib ${values['budget-gib']}: expected a number of GiB > 0`);
    const report = await readReportFile(positionals[0]!);
    for (const name of Object.keys(folders.adapters ?? {})) {
      if (!report.adapters.some((a) => a.name === name)) throw new VerifyUsageError(`--adapter ${name}=…: the report has no adapter "${name}" (it has ${report.adapters.map((a) => a.name).join(', ')})`);
    }
    process.once('SIGINT', onSigint);
    // One line per stage, once (the runner alternates encode/measure per strategy).
    const seen = new Set<CompareStage>();
    const result = await verifyReport(report, {
      tolerances,
      folders,
      budgetBytes: Math.round(budget * 2 ** 30),
      hooks: {
        signal: controller.signal,
        onProgress: (p) => {
          if (!seen.has(p.stage)) process.stderr.write(`re-run: ${STAGE_LABELS[p.stage]}\n`);
          seen.add(p.stage);
        },
      },
    });
    process.stdout.write(terminalSafe(formatVerification(result, tolerances)));
    return result.ok ? 0 : 1;
  } catch (e) {
    if (e instanceof VerifyUsageError || (e instanceof TypeError && (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS'))) {
      process.stderr.write(`adapterlens verify: ${terminalSafe(e.message)}\n\nUsage:\n${VERIFY_USAGE}\n`);
      return 2;
    }
    if (isCancellation(e) || controller.signal.aborted) {
      process.stderr.write('adapterlens verify: cancelled.\n');
      return 130;
    }
    if (e instanceof ReportFormatError) {
      process.stderr.write(`adapterlens verify: ${terminalSafe(e.message)}\n`);
      return 1;
    }
    throw e;
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}
