// What the UI shows about a model / adapter folder before a run, and token counts, from
// the existing loaders. Only config files, safetensors headers and the tokenizer are
// read: no weights are loaded, so picking a 13 GB checkpoint answers at once.
import fs from 'node:fs/promises';
import path from 'node:path';
import { openAdapter } from '../model/adapter.js';
import { openCheckpoint, type CheckpointInfo } from '../model/checkpoint.js';
import type { LensTokenizer } from '../model/tokenizer.js';
import type { AdapterInfo, ModelInfo, TokenCount } from '../../shared/rpc.js';
import { countUpTo } from './token-limit.js';

async function isFile(p: string): Promise<boolean> {
  try {
    return (await fs.stat(p)).isFile();
  } catch {
    return false;
  }
}

export function modelInfoOf(ck: CheckpointInfo, hasTokenizer: boolean): ModelInfo {
  const cfg = ck.config.native;
  const warnings = [...ck.warnings];
  if (ck.config.slidingWindow !== null) {
    warnings.push(`this checkpoint uses sliding-window attention over ${ck.config.slidingWindow} tokens; longer documents are refused.`);
  }
  return {
    dir: ck.dir,
    name: path.basename(ck.dir),
    architecture: ck.config.architecture,
    numLayers: cfg.numLayers,
    numHeads: cfg.numHeads,
    numKvHeads: cfg.numKvHeads,
    headDim: cfg.headDim,
    hiddenSize: cfg.hiddenSize,
    intermediateSize: cfg.intermediateSize,
    vocabSize: cfg.vocabSize,
    maxPositionEmbeddings: cfg.maxPositionEmbeddings,
    parameters: ck.parameterCount,
    storedDtype: ck.dtypeSummary,
    weightsBytes: ck.totalBytes,
    format: ck.format,
    hasTokenizer,
    warnings,
  };
}

export async function inspectModel(dir: string): Promise<ModelInfo> {
  const ck = await openCheckpoint(dir);
  return modelInfoOf(ck, await isFile(path.join(ck.dir, 'tokenizer.json')));
}

/** Validates the adapter against the model (a mismatch is the loader's LoadError, saying why). */
export async function inspectAdapter(modelDir: string, dir: string): Promise<AdapterInfo> {
  const ck = await openCheckpoint(modelDir);
  const { summary } = await openAdapter(dir, ck.config.native);
  return {
    dir: summary.dir,
    name: summary.name,
    rank: summary.r,
    alpha: summary.alpha,
    useRslora: summary.useRslora,
    targetModules: summary.targetModules,
    layers: summary.layers,
    maxRank: summary.maxRank,
    bytes: summary.bytes,
    parameterCount: summary.parameterCount,
    dtype: summary.dtypeSummary,
    baseModelNameOrPath: summary.baseModelNameOrPath,
    warnings: summary.warnings,
  };
}

/**
 * Counts as the runner will tokenize: the document with its special prefix (BOS), the
 * prompt without. With `limit`, counting stops once document + prompt reach it (see
 * token-limit.ts); the prompt is then counted only if the document did not reach it.
 */
export async function countTokens(
  modelDir: string,
  tokenizer: LensTokenizer,
  documentText: string,
  promptText: string,
  limit?: number,
): Promise<TokenCount> {
  const ck = await openCheckpoint(modelDir);
  const doc = countUpTo((t) => tokenizer.encodeDocument(t), documentText, limit);
  const prompt = !doc.complete
    ? { tokens: 0, complete: false }
    : countUpTo((t) => tokenizer.encodePrompt(t), promptText, limit === undefined ? undefined : Math.max(0, limit - doc.tokens));
  return {
    documentTokens: doc.tokens,
    promptTokens: prompt.tokens,
    contextLimit: ck.config.native.maxPositionEmbeddings,
    complete: doc.complete && prompt.complete,
  };
}
