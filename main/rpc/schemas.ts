// One zod schema per RPC method's params. Main never trusts the renderer (or a
// browser tab): dispatch.ts parses every call's params here before a handler sees them.
//
// Each schema is typed `z.ZodType<RpcParams<M>>`, so a schema whose output stops
// matching the contract in shared/rpc.ts is a compile error, and the mapped type below
// makes a missing method one too.
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { MAX_NEW_TOKENS_LIMIT, type CompareRequest, type FitRequest } from '../../shared/compare.js';
import type { ExportFormat, RpcMethodName, RpcParams, SetupDraft } from '../../shared/rpc.js';
import { parseStrategy, strategyId, type StrategyId } from '../../shared/strategies.js';
import { HISTORY_ID_PATTERN } from './history-store.js';

/** Limits a well-behaved caller stays far below; they bound what one call can cost. */
export const LIMITS = {
  /** UTF-8 bytes of the document (a long book is a few MB). */
  documentBytes: 50 * 1024 * 1024,
  promptBytes: 1024 * 1024,
  adapters: 16,
  strategies: 32,
  maxNewTokens: MAX_NEW_TOKENS_LIMIT,
  pathChars: 4096,
  nameChars: 128,
  lowrankRank: 65536,
  // A pca id carries a weight per (layer, K or V): "pca:1.5@0.12.3…" for up to 256 layers.
  strategyChars: 2048,
  hybridLayers: 1024,
  /** text.count's limit: any model's context. */
  countLimit: 1 << 26,
} as const;

/** Methods without params accept {} and, for convenience, a missing params (undefined/null). */
const noParams = z.preprocess((v) => v ?? {}, z.strictObject({}));

/**
 * A folder path as a person types it, made absolute: `~` and `~/…` are the home folder,
 * a relative path is relative to main's working folder (app.info's workingDir, which the
 * app shows, so a browser tab knows what "models/demo" means). Handlers see absolute paths only.
 */
export function expandUserPath(p: string, cwd: string = process.cwd(), home: string = os.homedir()): string {
  if (p === '~') return home;
  if (p.startsWith('~/') || (path.sep === '\\' && p.startsWith('~\\'))) return path.join(home, p.slice(2));
  return path.resolve(cwd, p);
}

const absolutePath = z
  .string()
  .min(1, 'must not be empty')
  .max(LIMITS.pathChars)
  .refine((p) => !p.includes('\0'), 'must not contain NUL characters')
  .transform((p) => expandUserPath(p));

const utf8Text = (maxBytes: number, what: string) =>
  z.string().refine((s) => s.length <= maxBytes && Buffer.byteLength(s, 'utf8') <= maxBytes, `${what} is larger than ${maxBytes / (1024 * 1024)} MiB`);

/** A strategy id parsed with the one parser (shared/strategies.ts) and canonicalized. */
const strategySchema = z
  .string()
  .max(LIMITS.strategyChars)
  .transform((s, ctx): StrategyId => {
    try {
      const parsed = parseStrategy(s);
      if (parsed.kind === 'lowrank' && parsed.rank > LIMITS.lowrankRank) throw new Error(`strategy "${s}": the rank can be at most ${LIMITS.lowrankRank}`);
      if (parsed.kind === 'hybrid' && parsed.exactLayers > LIMITS.hybridLayers) throw new Error(`strategy "${s}": at most ${LIMITS.hybridLayers} layers can be kept exact`);
      return strategyId(parsed);
    } catch (e) {
      ctx.issues.push({ code: 'custom', message: (e as Error).message, input: s });
      return z.NEVER;
    }
  });

const dtype = z.enum(['fp32', 'bf16', 'fp16']);

const adapterChoice = z.strictObject({
  name: z.string().max(LIMITS.nameChars).optional(),
  dir: absolutePath,
});

/** Fit to budget (CompareRequest.fit): a budget, a target or a saved plan, in range. */
const fitSchema: z.ZodType<FitRequest> = z
  .strictObject({
    budgetBytes: z.int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
    targetKl: z.number().gt(0).max(100).optional(),
    minTop1: z.number().min(0).max(1).optional(),
    plan: z.record(z.string().min(1).max(LIMITS.nameChars), strategySchema).optional(),
  })
  .refine((f) => f.budgetBytes !== undefined || f.targetKl !== undefined || f.plan !== undefined, 'fit to budget needs a budget in bytes, a target KL or a saved plan');

export const compareRequestSchema: z.ZodType<CompareRequest> = z.strictObject({
  modelDir: absolutePath,
  tokenizerDir: absolutePath.optional(),
  adapters: z.array(adapterChoice).min(1, 'choose at least one adapter').max(LIMITS.adapters, `at most ${LIMITS.adapters} adapters per run`),
  documentText: utf8Text(LIMITS.documentBytes, 'the document'),
  promptText: utf8Text(LIMITS.promptBytes, 'the prompt'),
  strategies: z.array(strategySchema).min(1).max(LIMITS.strategies),
  maxNewTokens: z.int().min(0).max(LIMITS.maxNewTokens),
  temperature: z.number().min(0).max(100),
  topP: z.number().gt(0).max(1),
  seed: z.int().min(0).max(Number.MAX_SAFE_INTEGER),
  dtype,
  device: z.enum(['auto', 'cpu', 'cuda']),
  stopAtEos: z.boolean(),
  continuationText: utf8Text(LIMITS.promptBytes, 'the continuation').optional(),
  fit: fitSchema.optional(),
});

const tokenCount = z.int().min(0).max(2 ** 31 - 1);
const nullableNumber = z.number().nullable();

/** A saved draft (draft.save's param and what draft.get reads back). */
export const draftSchema: z.ZodType<SetupDraft> = z.strictObject({
  modelDir: z.string().max(LIMITS.pathChars),
  tokenizerDir: z.string().max(LIMITS.pathChars),
  adapters: z.array(z.strictObject({ dir: z.string().max(LIMITS.pathChars), name: z.string().max(LIMITS.nameChars) })).max(64),
  documentText: utf8Text(LIMITS.documentBytes, 'the document'),
  promptText: utf8Text(LIMITS.promptBytes, 'the prompt'),
  strategies: z.strictObject({
    simple: z.array(z.string().max(32)).max(16),
    lowrank: z.strictObject({ on: z.boolean(), ranks: z.string().max(256) }),
    hybrid: z.strictObject({ on: z.boolean(), layers: z.string().max(256) }),
    pca: z.strictObject({ on: z.boolean(), bits: z.string().max(4096) }).optional(),
    fit: z.strictObject({ on: z.boolean(), budgetBytes: z.string().max(64), targetKl: z.string().max(64), minTop1: z.string().max(64) }).optional(),
  }),
  settings: z.strictObject({
    maxNewTokens: nullableNumber,
    sampling: z.enum(['greedy', 'sample']),
    temperature: nullableNumber,
    topP: nullableNumber,
    seed: nullableNumber,
    dtype,
    device: z.enum(['auto', 'cpu', 'cuda']),
    stopAtEos: z.boolean(),
  }),
  openReportId: z.string().regex(HISTORY_ID_PATTERN).nullable(),
  browseDirs: z.strictObject({
    model: z.string().max(LIMITS.pathChars).optional(),
    adapter: z.string().max(LIMITS.pathChars).optional(),
    tokenizer: z.string().max(LIMITS.pathChars).optional(),
  }),
});

/** text.decode: the token labels of a heatmap, a few thousand ids at most. */
const DECODE_LIMITS = { groups: 4096, ids: 65536 } as const;

const exportFormat: z.ZodType<ExportFormat> = z.enum(['json', 'html', 'md', 'csv', 'pdf']);

/** History ids are generated by main; anything else (a path, "..") is refused here. */
const historyId = z.string().regex(HISTORY_ID_PATTERN, 'not a history id');

const runId = z.string().min(1).max(64);

type ParamSchemas = { [M in RpcMethodName]: z.ZodType<RpcParams<M>> };

export const PARAM_SCHEMAS: ParamSchemas = {
  'app.info': noParams,
  'model.inspect': z.strictObject({ dir: absolutePath }),
  'adapter.inspect': z.strictObject({ modelDir: absolutePath, dir: absolutePath }),
  'text.count': z.strictObject({
    modelDir: absolutePath,
    tokenizerDir: absolutePath.optional(),
    documentText: utf8Text(LIMITS.documentBytes, 'the document'),
    promptText: utf8Text(LIMITS.promptBytes, 'the prompt'),
    limit: z.int().min(1).max(LIMITS.countLimit).optional(),
  }),
  'text.decode': z.strictObject({
    tokenizerDir: absolutePath,
    groups: z
      .array(z.array(tokenCount).max(DECODE_LIMITS.ids))
      .max(DECODE_LIMITS.groups)
      .refine((g) => g.reduce((n, ids) => n + ids.length, 0) <= DECODE_LIMITS.ids, `at most ${DECODE_LIMITS.ids} token ids in all`),
  }),
  'run.estimate': z.strictObject({
    modelDir: absolutePath,
    adapterDirs: z.array(absolutePath).max(LIMITS.adapters, `at most ${LIMITS.adapters} adapters per run`),
    strategies: z.array(strategySchema).min(1).max(LIMITS.strategies),
    documentTokens: tokenCount,
    promptTokens: tokenCount,
    maxNewTokens: z.int().min(0).max(LIMITS.maxNewTokens),
    dtype,
  }),
  'draft.get': noParams,
  'draft.save': z.strictObject({ draft: draftSchema }),
  'fs.browse': z.preprocess((v) => v ?? {}, z.strictObject({ dir: absolutePath.optional() })),
  'dialog.pickFolders': z.strictObject({ purpose: z.enum(['model', 'adapter', 'tokenizer']), multiple: z.boolean() }),
  'run.start': z.strictObject({ request: compareRequestSchema }),
  'run.cancel': z.strictObject({ runId }),
  'run.active': noParams,
  'cache.stats': noParams,
  'cache.clear': noParams,
  'history.list': noParams,
  'history.skipped': noParams,
  'history.get': z.strictObject({ id: historyId }),
  'history.delete': z.strictObject({ id: historyId }),
  'report.export': z.strictObject({ id: historyId, format: exportFormat }),
  'report.saveAs': z.strictObject({ id: historyId, format: exportFormat }),
};

/** Parses a method's params; throws the ZodError that dispatch maps to BAD_REQUEST. */
export function parseParams<M extends RpcMethodName>(method: M, params: unknown): RpcParams<M> {
  return (PARAM_SCHEMAS[method] as z.ZodType<RpcParams<M>>).parse(params);
}
