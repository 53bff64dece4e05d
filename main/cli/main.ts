// `adapterlens` command line: compare (the main job), demo (compare the embedded demo
// model's three adapters, models/demo). Progress goes to stderr, the summary table to stdout, the report to --json
// (and --html/--md/--csv/--pdf). Subcommands with their own options (serve, report,
// verify) live in their own files and are dispatched from SUBCOMMANDS.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CacheManager } from '../cache/cache-manager.js';
import { isCancellation } from '../cancellation.js';
import { writeFileAtomicSync } from '../files/atomic-write.js';
import { isLoadError } from '../model/errors.js';
import { CompareInputError, runComparison } from '../compare/runner.js';
import { startSessionForRun } from '../compare/start-session.js';
import { DemoUnavailableError, demoRequest } from '../compare/demo.js';
import { defaultDataDir } from './data-dir.js';
import { terminalCell, terminalSafe } from './terminal-text.js';
import { REPORT_USAGE, reportCommand } from './report-command.js';
import { REPORT_OUTPUT_OPTIONS, REPORT_OUTPUT_USAGE, writeReportOutputs } from './report-outputs.js';
import { VERIFY_USAGE, verifyCommand } from './verify-command.js';
import { z } from 'zod';
import { DEFAULT_SETTINGS, STAGE_LABELS, type AdapterChoice, type CompareProgress, type CompareRequest, type FitPlan, type FitRequest } from '../../shared/compare.js';
import { formatBytes } from '../../shared/format.js';
import type { Report } from '../../shared/report.js';
import { ALL_STRATEGIES, parseStrategy, parseStrategyList, strategyId, type StrategyId } from '../../shared/strategies.js';
import { formatSummaryTable } from './summary.js';

const USAGE = `Usage:
  adapterlens compare --model DIR --adapter [NAME=]DIR [--adapter ...] --document FILE
                      [--prompt TEXT] [--strategies exact,base,seed-minikv,...]
                      [--max-new-tokens N] [--temperature T --top-p P --seed S]
                      [--dtype fp32|bf16|fp16] [--device auto|cpu|cuda]
                      [--tokenizer DIR] [--budget-gib G] [--no-stop-at-eos] [--json OUT.json]
                      [--continuation FILE]   teacher-force on this text instead of exact's generation
                      [--budget-bytes N] [--target-kl X [--min-top1 Y]]   fit to budget: the fit row
                      [--plan FILE] [--save-plan FILE]   re-run / save a fit's choice per adapter
                      ${REPORT_OUTPUT_USAGE}
  adapterlens demo [--device auto|cpu|cuda] [--json OUT.json] ${REPORT_OUTPUT_USAGE}
                      compare the three adapters of the embedded demo model (models/demo)
                      on its held-out document with every strategy
${REPORT_USAGE}
${VERIFY_USAGE}
  adapterlens serve [--port N] [--host 127.0.0.1] [--data-dir DIR]   the app in a browser (serve --help)
Strategies: exact, base, seed-minikv, lragent, delta-int8, delta-int4, lowrank:<k>, hybrid:<n>,
            pca:<bits per value>[@<weights>], fit (with --budget-bytes / --target-kl / --plan);
            all = ${ALL_STRATEGIES.join(',')}`;

class UsageError extends Error {}

const OPTIONS = {
  model: { type: 'string' },
  adapter: { type: 'string', multiple: true },
  document: { type: 'string' },
  prompt: { type: 'string' },
  strategies: { type: 'string' },
  'max-new-tokens': { type: 'string' },
  temperature: { type: 'string' },
  'top-p': { type: 'string' },
  seed: { type: 'string' },
  dtype: { type: 'string' },
  device: { type: 'string' },
  tokenizer: { type: 'string' },
  'budget-gib': { type: 'string' },
  'no-stop-at-eos': { type: 'boolean' },
  json: { type: 'string' },
  continuation: { type: 'string' },
  'budget-bytes': { type: 'string' },
  'target-kl': { type: 'string' },
  'min-top1': { type: 'string' },
  plan: { type: 'string' },
  'save-plan': { type: 'string' },
  ...REPORT_OUTPUT_OPTIONS,
  help: { type: 'boolean', short: 'h' },
} as const;

// Numbers are parsed strictly: Number() would take "" as 0 and "0x3" as 3.
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;
const WHOLE = /^\d+$/;

function num(name: string, value: string | undefined, fallback: number, check: (n: number) => boolean, what: string): number {
  if (value === undefined) return fallback;
  const n = DECIMAL.test(value) ? Number(value) : Number.NaN;
  if (!Number.isFinite(n) || !check(n)) throw new UsageError(`--${name} ${terminalCell(JSON.stringify(value))}: expected ${what}`);
  return n;
}

/** A whole number written in decimal digits only. */
function int(name: string, value: string | undefined, fallback: number, what: string): number {
  if (value === undefined) return fallback;
  const n = WHOLE.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n)) throw new UsageError(`--${name} ${terminalCell(JSON.stringify(value))}: expected ${what}`);
  return n;
}

function oneOf<T extends string>(name: string, value: string | undefined, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`--${name} ${value}: expected one of ${allowed.join(', ')}`);
  return value as T;
}

function parseAdapter(arg: string): AdapterChoice {
  const eq = arg.indexOf('=');
  // NAME=DIR unless the whole argument is an existing path that happens to contain '='.
  if (eq > 0 && !fs.existsSync(arg)) return { name: arg.slice(0, eq), dir: arg.slice(eq + 1) };
  return { dir: arg };
}

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

function requestFrom(values: Values): CompareRequest {
  if (!values.model) throw new UsageError('--model DIR is required (a Hugging Face checkpoint folder)');
  if (!values.adapter?.length) throw new UsageError('at least one --adapter DIR is required (a PEFT LoRA folder)');
  if (!values.document) throw new UsageError('--document FILE is required (the long shared text)');
  let documentText: string;
  try {
    documentText = fs.readFileSync(values.document, 'utf8');
  } catch (e) {
    throw new UsageError(`--document ${values.document}: cannot read it (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  let strategies;
  try {
    strategies = values.strategies ? parseStrategyList(values.strategies) : DEFAULT_SETTINGS.strategies;
  } catch (e) {
    throw new UsageError(`--strategies: ${(e as Error).message}`);
  }
  return {
    modelDir: values.model,
    tokenizerDir: values.tokenizer,
    adapters: values.adapter.map(parseAdapter),
    documentText,
    promptText: values.prompt ?? '',
    strategies,
    maxNewTokens: int('max-new-tokens', values['max-new-tokens'], DEFAULT_SETTINGS.maxNewTokens, 'a whole number ≥ 0 (decimal digits)'),
    temperature: num('temperature', values.temperature, DEFAULT_SETTINGS.temperature, (n) => n >= 0, 'a number ≥ 0 (0 = greedy)'),
    topP: num('top-p', values['top-p'], DEFAULT_SETTINGS.topP, (n) => n > 0 && n <= 1, 'a number in (0, 1]'),
    seed: int('seed', values.seed, DEFAULT_SETTINGS.seed, 'a whole number ≥ 0 (decimal digits)'),
    dtype: oneOf('dtype', values.dtype, ['fp32', 'bf16', 'fp16'] as const, DEFAULT_SETTINGS.dtype),
    device: oneOf('device', values.device, ['auto', 'cpu', 'cuda'] as const, DEFAULT_SETTINGS.device),
    stopAtEos: !values['no-stop-at-eos'],
    ...(values.continuation !== undefined ? { continuationText: readText('continuation', values.continuation) } : {}),
    ...fitFrom(values),
  };
}

function readText(flag: string, file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`--${flag} ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
}

/** --budget-bytes, --target-kl, --min-top1, --plan: CompareRequest.fit (absent when none is given). */
function fitFrom(values: Values): { fit?: FitRequest } {
  const fit: FitRequest = {};
  if (values['budget-bytes'] !== undefined) fit.budgetBytes = num('budget-bytes', values['budget-bytes'], 0, (n) => Number.isInteger(n) && n > 0, 'a whole number of bytes > 0');
  if (values['target-kl'] !== undefined) fit.targetKl = num('target-kl', values['target-kl'], 0, (n) => n > 0, 'a mean KL > 0 (nats)');
  if (values['min-top1'] !== undefined) {
    if (values['target-kl'] === undefined) throw new UsageError('--min-top1 goes with --target-kl');
    fit.minTop1 = num('min-top1', values['min-top1'], 0, (n) => n >= 0 && n <= 1, 'a fraction in [0, 1]');
  }
  if (values.plan !== undefined) {
    let json: unknown;
    try {
      json = JSON.parse(readText('plan', values.plan));
    } catch (e) {
      if (e instanceof UsageError) throw e;
      throw new UsageError(`--plan ${terminalCell(values.plan)}: not JSON (${(e as Error).message})`);
    }
    const parsed = planSchema.safeParse(json);
    if (!parsed.success) throw new UsageError(`--plan ${values.plan}: not an adapterlens.plan/1 file (${parsed.error.issues[0]?.message ?? 'malformed'})`);
    fit.plan = parsed.data.adapters;
  }
  return Object.keys(fit).length > 0 ? { fit } : {};
}

const planSchema = z.object({
  schema: z.literal('adapterlens.plan/1'),
  adapters: z.record(z.string(), z.string().transform((s, ctx): StrategyId => {
    try {
      return strategyId(parseStrategy(s));
    } catch (e) {
      ctx.issues.push({ code: 'custom', message: (e as Error).message, input: s });
      return z.NEVER;
    }
  })),
});

/** The fit rows' choices of a report, as a plan file (--save-plan). */
export function planOf(report: Report): FitPlan | null {
  const adapters: Record<string, StrategyId> = {};
  for (const a of report.adapters) if (a.fit) adapters[a.name] = a.fit.chosen;
  return Object.keys(adapters).length ? { schema: 'adapterlens.plan/1', adapters } : null;
}

/** Progress on stderr: one rewritten line on a terminal, one line per stage otherwise. */
function progressPrinter(): (p: CompareProgress) => void {
  const tty = process.stderr.isTTY;
  let lastStage = '';
  let lastPct = -1;
  return (p) => {
    const pct = p.total > 0 ? Math.floor((100 * p.done) / p.total) : 0;
    // The detail carries adapter names: shown escaped, never as terminal control sequences.
    const line = `${STAGE_LABELS[p.stage]}: ${p.done}/${p.total}${p.detail ? ` (${terminalCell(p.detail)})` : ''}`;
    if (tty) {
      process.stderr.write(`\r\x1b[K${line}`);
      if (p.done === p.total && p.stage === 'score') process.stderr.write('\n');
    } else if (p.stage !== lastStage || (pct >= lastPct + 25 && pct !== lastPct)) {
      process.stderr.write(`${line}\n`);
      lastPct = pct;
    }
    if (p.stage !== lastStage) lastPct = pct;
    lastStage = p.stage;
  };
}

async function compare(request: CompareRequest, values: Values, signal: AbortSignal): Promise<number> {
  const budgetGiB = num('budget-gib', values['budget-gib'], 8, (n) => n > 0, 'a number of GiB > 0');
  const { session, prefetch } = await startSessionForRun(request, { dataDir: defaultDataDir(), signal });
  if (session.engine.fallbackReason) process.stderr.write(`engine: ${session.engine.backend} (${terminalSafe(session.engine.fallbackReason)})\n`);
  const cacheManager = new CacheManager({ budgetBytes: Math.round(budgetGiB * 2 ** 30) });
  try {
    const report: Report = await runComparison(session, cacheManager, request, { signal, onProgress: progressPrinter() });
    // The table first: whatever happens to the files, the run's numbers are on the screen.
    process.stdout.write(formatSummaryTable(report));
    if (values.json) {
      fs.mkdirSync(path.dirname(path.resolve(values.json)), { recursive: true });
      writeFileAtomicSync(values.json, JSON.stringify(report, null, 1));
      process.stderr.write(`report written to ${terminalSafe(values.json)} (${formatBytes(fs.statSync(values.json).size)})\n`);
    }
    if (values['save-plan']) {
      const plan = planOf(report);
      if (!plan) throw new UsageError('--save-plan: this run fitted nothing (give --budget-bytes or --target-kl)');
      writeFileAtomicSync(values['save-plan'], `${JSON.stringify(plan, null, 1)}\n`);
      process.stderr.write(`plan written to ${terminalSafe(values['save-plan'])} (re-run it with --plan ${terminalSafe(values['save-plan'])})\n`);
    }
    // A PDF without Chromium fails here, after the other formats are written.
    await writeReportOutputs(report, values);
    return 0;
  } finally {
    prefetch.release();
    cacheManager.dispose();
    session.dispose();
  }
}

/** Commands with their own options: dispatched before compare's strict parser sees them. */
const SUBCOMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  // Loaded when asked for: the server, the app service and their dependencies are no part of a compare's start-up.
  serve: async (argv) => (await import('./serve.js')).serveCommand(argv),
  report: reportCommand,
  verify: verifyCommand,
};

export async function main(argv: string[]): Promise<number> {
  const name = argv[0];
  // Ctrl-C cancels a compare or demo at any stage (load included) and ends with 130.
  const controller = new AbortController();
  const onSigint = (): void => {
    process.stderr.write('\ncancelling…\n');
    controller.abort();
  };
  try {
    // Inside the try: an error a subcommand does not handle still ends as one readable line.
    if (name !== undefined && Object.hasOwn(SUBCOMMANDS, name)) return await SUBCOMMANDS[name]!(argv.slice(1));
    const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
    const command = positionals[0];
    if (values.help || !command) {
      process.stdout.write(`${USAGE}\n`);
      return command || values.help ? 0 : 2;
    }
    if (command !== 'compare' && command !== 'demo') throw new UsageError(`unknown command "${terminalCell(command)}"`);
    const request =
      command === 'compare'
        ? requestFrom(values)
        : { ...(await demoRequest()), ...(values.device ? { device: oneOf('device', values.device, ['auto', 'cpu', 'cuda'] as const, 'auto') } : {}) };
    process.once('SIGINT', onSigint);
    return await compare(request, values, controller.signal);
  } catch (e) {
    if (e instanceof UsageError || (e instanceof TypeError && (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS'))) {
      process.stderr.write(`adapterlens: ${terminalSafe(e.message)}\n\n${USAGE}\n`);
      return 2;
    }
    if (isCancellation(e) || controller.signal.aborted) {
      process.stderr.write('adapterlens: cancelled; nothing was written.\n');
      return 130;
    }
    if (e instanceof CompareInputError || e instanceof DemoUnavailableError || isLoadError(e)) {
      process.stderr.write(`adapterlens: ${terminalSafe((e as Error).message)}\n`);
      return 1;
    }
    process.stderr.write(`adapterlens: ${terminalSafe(e instanceof Error ? e.message : String(e))}\n`);
    return 1;
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}
