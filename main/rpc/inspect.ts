// What the UI shows about a model / adapter folder before a run, and token counts, from
// the existing loaders. Only config files, safetensors headers and the tokenizer are
// read: no weights are loaded, so picking a 13 GB checkpoint answers at once. Every
// parse, regex and tokenization runs on a worker thread with a time limit
// (open-async.ts, tokenize-async.ts): no folder and no document can stall the server.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { CheckpointInfo } from '../model/checkpoint.js';
import { openAdapterInWorker, openCheckpointInWorker } from '../model/open-async.js';
import { countTokensInWorker, tokenizerSummaryInWorker } from '../model/tokenize-async.js';
import type { AdapterInfo, ModelInfo, TokenCount } from '../../shared/rpc.js';
import { checkTokenizerVocab } from '../model/tokenizer-vocab.js';

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

export async function inspectModel(dir: string, signal?: AbortSignal): Promise<ModelInfo> {
  const ck = await openCheckpointInWorker(dir, { signal });
  return modelInfoOf(ck, await isFile(path.join(ck.dir, 'tokenizer.json')));
}

/** Validates the adapter against the model (a mismatch is the loader's LoadError, saying why). */
export async function inspectAdapter(modelDir: string, dir: string, signal?: AbortSignal): Promise<AdapterInfo> {
  const ck = await openCheckpointInWorker(modelDir, { signal });
  const { summary } = await openAdapterInWorker(dir, ck.config.native, { signal });
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
 * prompt without. With `limit`, stops (complete false) once the counts reach it.
 * A tokenizer with more ids than the model's vocabulary is refused here, naming it.
 */
export async function countTokens(
  modelDir: string,
  tokenizerDir: string,
  documentText: string,
  promptText: string,
  limit?: number,
  signal?: AbortSignal,
): Promise<TokenCount> {
  const ck = await openCheckpointInWorker(modelDir, { signal });
  const summary = await tokenizerSummaryInWorker(tokenizerDir, { signal });
  checkTokenizerVocab(summary, { configFile: ck.config.file, vocabSize: ck.config.native.vocabSize });
  const counts = await countTokensInWorker(tokenizerDir, documentText, promptText, { limit, signal });
  return { ...counts, contextLimit: ck.config.native.maxPositionEmbeddings };
}
