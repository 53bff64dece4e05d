// Opens a Hugging Face checkpoint folder (config.json + model.safetensors, or
// model.safetensors.index.json with its shards) and builds the engine's tensor table:
// exactly the tensors the Llama forward needs, each checked against config.json.

import { kindOf } from './path-kind.js';
import { readdir } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { z } from 'zod';
import type { LoraModuleName, NativeModelConfig, NativeTensorRef, ProgressCallback, StoredDType } from '../engine/native-types.js';
import { type ResolvedModelConfig, readModelConfig } from './checkpoint-config.js';
import { LoadError, show } from './errors.js';
import { readJsonValidated } from './json-file.js';
import { type SafetensorsHeader, readSafetensorsHeader, weightRef } from './safetensors.js';

export interface LoadOptions {
  /** Checked between files; an aborted load rejects with the signal's reason. */
  signal?: AbortSignal;
  /** (done, total) in files. */
  onProgress?: ProgressCallback;
}

export interface CheckpointInfo {
  /** Absolute path of the folder. */
  dir: string;
  config: ResolvedModelConfig;
  /** What NativeAddon.loadModel gets with config.native. */
  tensors: NativeTensorRef[];
  format: 'single' | 'sharded';
  /** The .safetensors files the tensors live in (absolute). */
  files: string[];
  /** model.safetensors.index.json when sharded. */
  indexFile: string | null;
  /** Stored dtypes of the used tensors, e.g. "BF16" or "BF16+F32". */
  dtypeSummary: string;
  /** Bytes of the used tensors as stored. */
  totalBytes: number;
  /** Elements of the used tensors (a tied lm_head counts once, as transformers' num_parameters does). */
  parameterCount: number;
  warnings: string[];
}

export interface ExpectedTensor {
  name: string;
  shape: number[];
  /** The config.json fields the shape follows from, for messages. */
  basis: string;
}

export const LORA_MODULES: readonly LoraModuleName[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

/** The HF module path of a Linear inside a decoder layer. */
export function modulePath(layer: number, module: LoraModuleName): string {
  const block = module === 'gate_proj' || module === 'up_proj' || module === 'down_proj' ? 'mlp' : 'self_attn';
  return `model.layers.${layer}.${block}.${module}`;
}

/** in_features / out_features of each adaptable Linear, from the resolved config. */
export function moduleFeatures(cfg: NativeModelConfig, module: LoraModuleName): { inFeatures: number; outFeatures: number; basis: string } {
  const q = cfg.numHeads * cfg.headDim;
  const kv = cfg.numKvHeads * cfg.headDim;
  const h = cfg.hiddenSize;
  const i = cfg.intermediateSize;
  const hs = `hidden_size=${h}`;
  const qs = `num_attention_heads=${cfg.numHeads}, head_dim=${cfg.headDim}`;
  const kvs = `num_key_value_heads=${cfg.numKvHeads}, head_dim=${cfg.headDim}`;
  const is = `intermediate_size=${i}`;
  switch (module) {
    case 'q_proj':
      return { inFeatures: h, outFeatures: q, basis: `${hs}, ${qs}` };
    case 'k_proj':
    case 'v_proj':
      return { inFeatures: h, outFeatures: kv, basis: `${hs}, ${kvs}` };
    case 'o_proj':
      return { inFeatures: q, outFeatures: h, basis: `${qs}, ${hs}` };
    case 'gate_proj':
    case 'up_proj':
      return { inFeatures: h, outFeatures: i, basis: `${hs}, ${is}` };
    case 'down_proj':
      return { inFeatures: i, outFeatures: h, basis: `${is}, ${hs}` };
  }
}

/** Every tensor the forward needs, in load order, with the shape config.json implies. */
export function expectedModelTensors(cfg: NativeModelConfig): ExpectedTensor[] {
  const h = cfg.hiddenSize;
  const out: ExpectedTensor[] = [
    { name: 'model.embed_tokens.weight', shape: [cfg.vocabSize, h], basis: `vocab_size=${cfg.vocabSize}, hidden_size=${h}` },
  ];
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `model.layers.${l}`;
    out.push({ name: `${p}.input_layernorm.weight`, shape: [h], basis: `hidden_size=${h}` });
    for (const m of LORA_MODULES) {
      const f = moduleFeatures(cfg, m);
      out.push({ name: `${modulePath(l, m)}.weight`, shape: [f.outFeatures, f.inFeatures], basis: f.basis });
      if (cfg.attentionBias && (m === 'q_proj' || m === 'k_proj' || m === 'v_proj')) {
        out.push({ name: `${modulePath(l, m)}.bias`, shape: [f.outFeatures], basis: f.basis });
      }
      if (m === 'o_proj') out.push({ name: `${p}.post_attention_layernorm.weight`, shape: [h], basis: `hidden_size=${h}` });
    }
  }
  out.push({ name: 'model.norm.weight', shape: [h], basis: `hidden_size=${h}` });
  if (!cfg.tieWordEmbeddings) {
    out.push({ name: 'lm_head.weight', shape: [cfg.vocabSize, h], basis: `vocab_size=${cfg.vocabSize}, hidden_size=${h}` });
  }
  return out;
}

const indexSchema = z
  .object({
    metadata: z.record(z.string(), z.unknown()).nullish(),
    weight_map: z.record(z.string(), z.string()),
  })
  .loose();

const CONVERT_FIX =
  'convert it to safetensors first, e.g. `python -c "from transformers import AutoModelForCausalLM as M; M.from_pretrained(\'IN\').save_pretrained(\'OUT\', safe_serialization=True)"` and copy the tokenizer files along';

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function shapeText(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}

/** Opens a checkpoint folder: parses config.json and every safetensors header (never the data). */
export async function openCheckpoint(dirIn: string, options: LoadOptions = {}): Promise<CheckpointInfo> {
  const { signal, onProgress } = options;
  signal?.throwIfAborted();
  const dir = resolve(dirIn);
  const dirKind = await kindOf(dir);
  if (dirKind !== 'dir') {
    throw new LoadError({
      file: dir,
      message: dirKind === null ? 'this folder does not exist; pick a Hugging Face checkpoint folder.' : 'this is not a folder; pick the Hugging Face checkpoint folder that holds config.json.',
    });
  }
  const configFile = join(dir, 'config.json');
  if ((await kindOf(configFile)) !== 'file') {
    throw new LoadError({
      file: dir,
      field: 'config.json',
      message: 'this folder has no config.json; a Hugging Face checkpoint folder is expected (config.json plus model.safetensors, or model.safetensors.index.json with its shards).',
    });
  }
  const config = await readModelConfig(configFile);
  const cfg = config.native;
  const warnings = [...config.warnings];

  // ---- locate the weights
  const single = join(dir, 'model.safetensors');
  const indexFile = join(dir, 'model.safetensors.index.json');
  let format: CheckpointInfo['format'];
  /** tensor name -> shard file name, for sharded checkpoints */
  let weightMap: Map<string, string> | null = null;
  let shardNames: string[];
  if ((await kindOf(single)) === 'file') {
    format = 'single';
    shardNames = ['model.safetensors'];
  } else if ((await kindOf(indexFile)) === 'file') {
    format = 'sharded';
    const index = await readJsonValidated(indexFile, indexSchema, 'model.safetensors.index.json');
    weightMap = new Map(Object.entries(index.weight_map));
    shardNames = [];
    for (const [tensor, shard] of weightMap) {
      if (shard !== basename(shard) || shard === '..' || shard === '.' || shard.includes('\\')) {
        throw new LoadError({
          file: indexFile,
          field: `weight_map.${tensor}`,
          message: `the shard ${show(shard)} for tensor "${tensor}" is not a plain file name in this folder; the index is malformed.`,
        });
      }
      if (!shardNames.includes(shard)) shardNames.push(shard);
    }
    for (const shard of shardNames) {
      if ((await kindOf(join(dir, shard))) !== 'file') {
        const example = [...weightMap].find(([, s]) => s === shard)?.[0] ?? '';
        throw new LoadError({
          file: join(dir, shard),
          field: `weight_map.${example}`,
          message: `this shard, listed in model.safetensors.index.json (e.g. for "${example}"), is missing; download every shard of the checkpoint into the folder.`,
        });
      }
    }
  } else {
    const names = await readdir(dir);
    const bins = names.filter((n) => n === 'pytorch_model.bin' || n === 'pytorch_model.bin.index.json' || /^pytorch_model-\d+-of-\d+\.bin$/.test(n));
    if (bins.length > 0) {
      throw new LoadError({
        file: join(dir, bins.includes('pytorch_model.bin') ? 'pytorch_model.bin' : bins[0]!),
        message: `this checkpoint has PyTorch pickle weights only, which AdapterLens does not read (they can run code when loaded): ${CONVERT_FIX}.`,
      });
    }
    const others = names.filter((n) => n.endsWith('.safetensors'));
    throw new LoadError({
      file: dir,
      field: 'model.safetensors',
      message:
        others.length > 0
          ? `this folder has ${others.join(', ')} but neither model.safetensors nor model.safetensors.index.json; a Hugging Face checkpoint folder names its weights that way (add the index file for sharded weights).`
          : 'this folder has config.json but no weights: a Hugging Face checkpoint folder needs model.safetensors or model.safetensors.index.json with its shards.',
    });
  }

  // ---- parse every header (fast: header bytes only)
  const total = shardNames.length;
  onProgress?.(0, total);
  const headers = new Map<string, SafetensorsHeader>();
  for (const [i, shard] of shardNames.entries()) {
    signal?.throwIfAborted();
    headers.set(shard, await readSafetensorsHeader(join(dir, shard)));
    onProgress?.(i + 1, total);
  }
  signal?.throwIfAborted();

  if (weightMap) {
    for (const [tensor, shard] of weightMap) {
      if (!headers.get(shard)!.entries.has(tensor)) {
        throw new LoadError({
          file: join(dir, shard),
          field: tensor,
          message: `model.safetensors.index.json places tensor "${tensor}" in this shard, but its header has no such tensor; the index and the shards do not belong together, download them again.`,
        });
      }
    }
  }

  const locate = (name: string): { header: SafetensorsHeader; shard: string } | null => {
    const shard = weightMap ? weightMap.get(name) : 'model.safetensors';
    if (shard === undefined) return null;
    const header = headers.get(shard)!;
    return header.entries.has(name) ? { header, shard } : null;
  };
  const weightsFile = format === 'single' ? single : indexFile;

  // ---- the layer count against the weights, before anything is sized by it
  // (expectedModelTensors lists ~10 tensors per layer: a config.json claiming a million
  // layers must be refused from the headers, not discovered by building that list).
  let headerLayers = 0;
  for (const header of headers.values()) {
    for (const name of header.entries.keys()) {
      const m = /^model\.layers\.(\d+)\./.exec(name);
      if (m) headerLayers = Math.max(headerLayers, Number(m[1]) + 1);
    }
  }
  if (cfg.numLayers > headerLayers) {
    throw new LoadError({
      file: config.file,
      field: 'num_hidden_layers',
      message: `field "num_hidden_layers" is ${cfg.numLayers}, but the weights hold ${headerLayers === 0 ? 'no decoder layer' : `layers 0 to ${headerLayers - 1} only`}; config.json and the weights do not belong together.`,
    });
  }

  // ---- build the tensor table
  const tensors: NativeTensorRef[] = [];
  const used = new Set<string>();
  const dtypes = new Set<StoredDType>();
  let totalBytes = 0;
  let parameterCount = 0;
  for (const exp of expectedModelTensors(cfg)) {
    const found = locate(exp.name);
    if (!found) {
      if (exp.name === 'lm_head.weight') {
        throw new LoadError({
          file: weightsFile,
          field: 'lm_head.weight',
          message: 'there is no "lm_head.weight", but config.json has tie_word_embeddings false (or absent, which means false); the checkpoint is incomplete, or config.json should say "tie_word_embeddings": true.',
        });
      }
      throw new LoadError({
        file: weightsFile,
        field: exp.name,
        message: `tensor "${exp.name}" is missing${format === 'sharded' ? ' from the index' : ''}, but a ${config.architecture} with this config.json needs it; the checkpoint is incomplete or of another architecture.`,
      });
    }
    const entry = found.header.entries.get(exp.name)!;
    if (!sameShape(entry.shape, exp.shape)) {
      throw new LoadError({
        file: found.header.file,
        field: exp.name,
        message: `tensor ${exp.name} in ${found.shard} has shape ${shapeText(entry.shape)}, expected ${shapeText(exp.shape)} from config.json (${exp.basis}); config.json and the weights do not belong together.`,
      });
    }
    const ref = weightRef(found.header, entry);
    tensors.push(ref);
    used.add(exp.name);
    dtypes.add(ref.dtype);
    totalBytes += ref.nbytes;
    parameterCount += exp.shape.reduce((a, b) => a * b, 1);
  }

  // ---- what the forward ignores
  const ignored: string[] = [];
  for (const header of headers.values()) {
    for (const name of header.entries.keys()) {
      if (used.has(name) || name.endsWith('.rotary_emb.inv_freq')) continue;
      if (name === 'lm_head.weight' && cfg.tieWordEmbeddings) continue; // tied: transformers ignores a stored copy
      ignored.push(name);
    }
  }
  if (ignored.length > 0) {
    warnings.push(`${ignored.length} tensor(s) in the checkpoint are not used by the ${config.architecture} forward and are ignored (e.g. ${ignored.slice(0, 3).join(', ')}).`);
  }

  const order: StoredDType[] = ['BF16', 'F16', 'F32'];
  return {
    dir,
    config,
    tensors,
    format,
    files: shardNames.map((s) => join(dir, s)),
    indexFile: format === 'sharded' ? indexFile : null,
    dtypeSummary: order.filter((d) => dtypes.has(d)).join('+'),
    totalBytes,
    parameterCount,
    warnings,
  };
}
