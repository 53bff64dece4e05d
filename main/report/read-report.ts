// Reading an `adapterlens.report/1` JSON from disk (or from anyone) before rendering it.
// A report file may come from another machine or a person: it is parsed with a zod
// schema whose output type is the Report type itself (a schema drifting from
// shared/report.ts is a compile error), and every array a renderer indexes is checked
// against the model's shape, so a renderer never meets a surprise.
import fs from 'node:fs/promises';
import { z } from 'zod';
import { REPORT_SCHEMA, type Report } from '../../shared/report.js';
import { parseStrategy, strategyId, type StrategyId } from '../../shared/strategies.js';

/** A report that cannot be read or is not an `adapterlens.report/1` document. */
export class ReportFormatError extends Error {
  override readonly name = 'ReportFormatError';
}

/**
 * A measured number. JSON has no NaN or Infinity: JSON.stringify writes them as null
 * (e.g. `probs` is NaN where not measured), so null reads back as NaN.
 */
const measured = z.union([z.number(), z.null().transform(() => Number.NaN)]);
const count = z.int().min(0);
const hashes = z.record(z.string(), z.string().regex(/^[0-9a-f]{64}$/, 'expected a SHA-256 hex digest'));
const grid = z.array(z.array(measured));

const strategy = z.string().transform((s, ctx): StrategyId => {
  try {
    return strategyId(parseStrategy(s));
  } catch (e) {
    ctx.issues.push({ code: 'custom', message: (e as Error).message, input: s });
    return z.NEVER;
  }
});

const strategyResult = z.object({
  strategy,
  bytes: count,
  layers: z.array(z.object({ layer: count, kRelErr: measured, vRelErr: measured, outsideSpan: measured.optional() })),
  heads: z.object({ k: grid, v: grid }),
  tokens: z.object({ k: grid, v: grid, binSize: z.int().min(1) }),
  generation: z.object({
    tokens: z.array(count),
    text: z.string(),
    pieces: z.array(z.string()),
    probs: z.array(measured),
    firstDivergence: count.nullable(),
  }),
  scores: z.object({
    kl: z.array(measured),
    top1: z.array(measured),
    meanKl: measured,
    top1Agreement: measured,
    perplexityRatio: measured,
  }),
  exactLayers: z.array(count).optional(),
  fitted: strategy.optional(),
});

const fitResult = z.object({
  budgetBytes: count.nullable(),
  targetKl: z.number().nullable(),
  minTop1: z.number().nullable(),
  probes: z.array(z.object({ layer: count, kv: z.enum(['K', 'V']), meanKl: measured, sqErr: measured })),
  points: z.array(z.object({ strategy, bytes: count, meanKl: measured, top1Agreement: measured })),
  chosen: strategy,
  met: z.boolean(),
  reason: z.string(),
});

const reportSchema: z.ZodType<Report> = z
  .object({
    schema: z.literal(REPORT_SCHEMA),
    createdAt: z.string(),
    versions: z.object({ adapterlens: z.string(), engine: z.string(), node: z.string() }),
    backend: z.object({ kind: z.enum(['cpu', 'cuda']), device: z.string(), fallbackReason: z.string().nullable() }),
    settings: z.object({
      strategies: z.array(strategy).min(1),
      maxNewTokens: count,
      dtype: z.enum(['fp32', 'bf16', 'fp16']),
      device: z.enum(['auto', 'cpu', 'cuda']),
      temperature: z.number().min(0),
      topP: z.number().gt(0).max(1),
      seed: count,
      stopAtEos: z.boolean(),
      continuation: z.enum(['exact-generation', 'text']).optional(),
      fit: z.object({ budgetBytes: count.nullable(), targetKl: z.number().nullable(), minTop1: z.number().nullable(), planned: z.boolean() }).optional(),
    }),
    model: z.object({
      name: z.string(),
      dir: z.string(),
      architecture: z.string(),
      sha256: hashes,
      numLayers: z.int().min(1),
      numHeads: z.int().min(1),
      numKvHeads: z.int().min(1),
      headDim: z.int().min(1),
      hiddenSize: z.int().min(1),
      vocabSize: z.int().min(1),
      maxPositionEmbeddings: z.int().min(1),
      parameters: count,
      storedDtype: z.string(),
    }),
    tokenizer: z.object({ dir: z.string(), sha256: hashes }),
    document: z.object({ text: z.string() }),
    prompt: z.object({ text: z.string() }),
    documentTokens: z.array(count),
    promptTokens: z.array(count),
    memory: z.object({ baseCacheBytes: count, exactCacheBytes: count }),
    timings: z.array(z.object({ stage: z.string(), ms: measured })),
    adapters: z
      .array(
        z.object({
          name: z.string(),
          dir: z.string(),
          sha256: hashes,
          rank: count,
          alpha: z.number(),
          targetModules: z.array(z.string()),
          strategies: z.array(strategyResult).min(1),
          fit: fitResult.optional(),
        }),
      )
      .min(1),
  })
  .superRefine((r, ctx) => {
    // Shape checks the renderers rely on: one row per layer in order, head grids of the
    // model's shape, one piece and probability per generated token, an `exact` reference.
    const L = r.model.numLayers;
    for (const [ai, a] of r.adapters.entries()) {
      const where = (si: number, rest: string): (string | number)[] => ['adapters', ai, 'strategies', si, rest];
      if (!a.strategies.some((s) => s.strategy === 'exact')) {
        ctx.addIssue({ code: 'custom', path: ['adapters', ai, 'strategies'], message: `adapter "${a.name}" has no "exact" result (every strategy is measured against it)` });
      }
      for (const [si, s] of a.strategies.entries()) {
        if (s.layers.length !== L || s.layers.some((l, i) => l.layer !== i)) {
          ctx.addIssue({ code: 'custom', path: where(si, 'layers'), message: `expected layers 0…${L - 1} in order` });
        }
        for (const g of [s.heads.k, s.heads.v, s.tokens.k, s.tokens.v]) {
          if (g.length !== L) ctx.addIssue({ code: 'custom', path: where(si, 'heads'), message: `expected one grid row per layer (${L})` });
        }
        if ([...s.heads.k, ...s.heads.v].some((row) => row.length !== r.model.numKvHeads)) {
          ctx.addIssue({ code: 'custom', path: where(si, 'heads'), message: `expected ${r.model.numKvHeads} KV heads per layer` });
        }
        const n = s.generation.tokens.length;
        if (s.generation.pieces.length !== n || s.generation.probs.length !== n) {
          ctx.addIssue({ code: 'custom', path: where(si, 'generation'), message: 'expected one piece and one probability per generated token' });
        }
        if (s.exactLayers?.some((l) => l >= L)) ctx.addIssue({ code: 'custom', path: where(si, 'exactLayers'), message: `a layer ≥ ${L}` });
      }
    }
  });

/** The issues of a failed parse, one per line, each with where it is in the document. */
function describeIssues(error: z.ZodError): string {
  const lines = error.issues.slice(0, 10).map((i) => `  ${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`);
  if (error.issues.length > 10) lines.push(`  … and ${error.issues.length - 10} more`);
  return lines.join('\n');
}

/** Validates a parsed JSON value as a Report; throws ReportFormatError listing what is wrong. */
export function parseReport(value: unknown, source = 'the report'): Report {
  const schemaField = (value as { schema?: unknown } | null)?.schema;
  if (typeof value === 'object' && value !== null && schemaField !== REPORT_SCHEMA) {
    throw new ReportFormatError(`${source} is not an AdapterLens report: its "schema" is ${JSON.stringify(schemaField ?? null)}, expected "${REPORT_SCHEMA}"`);
  }
  const result = reportSchema.safeParse(value);
  if (!result.success) throw new ReportFormatError(`${source} is not a valid ${REPORT_SCHEMA} document:\n${describeIssues(result.error)}`);
  return result.data;
}

/** Reads and validates a report JSON file. */
export async function readReportFile(file: string): Promise<Report> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    throw new ReportFormatError(`cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ReportFormatError(`${file} is not JSON (${(e as Error).message})`);
  }
  return parseReport(json, file);
}
