// Tiny synthetic checkpoints and PEFT adapters for the model-loading tests.

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LoraModuleName, NativeModelConfig } from '../../main/engine/native-types.js';
import { expectedModelTensors, moduleFeatures, modulePath } from '../../main/model/checkpoint.js';
import { type SafetensorsTensorInput, float32ToBf16, float32ToF16, writeSafetensors } from '../../main/model/safetensors.js';

export type WeightDType = 'F32' | 'F16' | 'BF16';

export async function tempDir(prefix = 'adapterlens-test-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A tiny Llama config.json (vocab 32, hidden 16, 2 layers, 4 heads, 2 KV heads). */
export function tinyConfig(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: 32,
    hidden_size: 16,
    intermediate_size: 24,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    hidden_act: 'silu',
    max_position_embeddings: 128,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: false,
    torch_dtype: 'bfloat16',
    ...overrides,
  };
}

/** The NativeModelConfig tinyConfig() resolves to. */
export const TINY_NATIVE: NativeModelConfig = {
  vocabSize: 32,
  hiddenSize: 16,
  intermediateSize: 24,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 4,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  ropeScaling: { type: 'default' },
  maxPositionEmbeddings: 128,
  tieWordEmbeddings: false,
  attentionBias: false,
};

/** Deterministic values for a tensor: distinct per tensor name and element. */
export function valuesFor(name: string, n: number): Float32Array {
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) % 1000;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = ((h + i) % 97) / 64 - 0.75;
  return out;
}

export function tensorInput(name: string, shape: number[], dtype: WeightDType): SafetensorsTensorInput {
  const v = valuesFor(name, shape.reduce((a, b) => a * b, 1));
  return { name, shape, dtype, data: dtype === 'F32' ? v : dtype === 'BF16' ? float32ToBf16(v) : float32ToF16(v) };
}

export interface CheckpointOptions {
  config?: Record<string, unknown>;
  dtype?: WeightDType;
  /** Write lm_head.weight even when tied (transformers ignores it). */
  writeLmHead?: boolean;
  /** Split into this many shards with model.safetensors.index.json. */
  shards?: number;
  /** Tensors to leave out. */
  omit?: string[];
  /** Replace a tensor's stored shape. */
  shapes?: Record<string, number[]>;
  /** Extra tensors. */
  extra?: SafetensorsTensorInput[];
}

/** Writes config.json + weights for `native` (which must match options.config) into dir. */
export async function writeCheckpoint(dir: string, native: NativeModelConfig, options: CheckpointOptions = {}): Promise<void> {
  await mkdir(dir, { recursive: true });
  const dtype = options.dtype ?? 'BF16';
  await writeFile(join(dir, 'config.json'), JSON.stringify(options.config ?? tinyConfig(), null, 2));
  const expected = expectedModelTensors(native).map((e) => ({ name: e.name, shape: e.shape }));
  if (native.tieWordEmbeddings && options.writeLmHead) expected.push({ name: 'lm_head.weight', shape: [native.vocabSize, native.hiddenSize] });
  const tensors = expected
    .filter((e) => !(options.omit ?? []).includes(e.name))
    .map((e) => tensorInput(e.name, options.shapes?.[e.name] ?? e.shape, dtype));
  tensors.push(...(options.extra ?? []));
  const shards = options.shards ?? 1;
  if (shards <= 1) {
    await writeSafetensors(join(dir, 'model.safetensors'), tensors);
    return;
  }
  const weightMap: Record<string, string> = {};
  const per = Math.ceil(tensors.length / shards);
  for (let s = 0; s < shards; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const part = tensors.slice(s * per, (s + 1) * per);
    for (const t of part) weightMap[t.name] = file;
    await writeSafetensors(join(dir, file), part);
  }
  await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }, null, 2));
}

export interface AdapterOptions {
  config?: Record<string, unknown>;
  /** (layer, module, rank) triples to write; default: from `targets` over all layers with rank r. */
  modules?: { layer: number; module: LoraModuleName; rank: number }[];
  dtype?: WeightDType;
  /** Write names with ".default." before "weight". */
  defaultInfix?: boolean;
  omit?: string[];
  shapes?: Record<string, number[]>;
  extra?: SafetensorsTensorInput[];
}

export function adapterConfig(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: 'tiny-llama',
    r: 4,
    lora_alpha: 8,
    lora_dropout: 0.05,
    target_modules: ['q_proj', 'v_proj'],
    bias: 'none',
    fan_in_fan_out: false,
    use_rslora: false,
    use_dora: false,
    modules_to_save: null,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
    init_lora_weights: true,
    megatron_config: null,
    megatron_core: 'megatron.core',
    ...overrides,
  };
}

export function loraName(layer: number, module: LoraModuleName, role: 'A' | 'B', infix = false): string {
  return `base_model.model.${modulePath(layer, module)}.lora_${role}${infix ? '.default' : ''}.weight`;
}

/** Writes adapter_config.json + adapter_model.safetensors. */
export async function writeAdapter(dir: string, base: NativeModelConfig, options: AdapterOptions = {}): Promise<void> {
  await mkdir(dir, { recursive: true });
  const cfg = options.config ?? adapterConfig();
  await writeFile(join(dir, 'adapter_config.json'), JSON.stringify(cfg, null, 2));
  const r = typeof cfg.r === 'number' ? cfg.r : 8;
  const mods =
    options.modules ??
    Array.from({ length: base.numLayers }, (_, layer) =>
      (['q_proj', 'v_proj'] as const).map((module) => ({ layer, module, rank: r })),
    ).flat();
  const dtype = options.dtype ?? 'F32';
  const tensors: SafetensorsTensorInput[] = [];
  for (const m of mods) {
    const f = moduleFeatures(base, m.module);
    const a = loraName(m.layer, m.module, 'A', options.defaultInfix);
    const b = loraName(m.layer, m.module, 'B', options.defaultInfix);
    for (const [name, shape] of [
      [a, [m.rank, f.inFeatures]],
      [b, [f.outFeatures, m.rank]],
    ] as const) {
      if ((options.omit ?? []).includes(name)) continue;
      tensors.push(tensorInput(name, options.shapes?.[name] ?? [...shape], dtype));
    }
  }
  tensors.push(...(options.extra ?? []));
  await writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors);
}

export function allModules(numLayers: number, modules: readonly LoraModuleName[], rank: number): { layer: number; module: LoraModuleName; rank: number }[] {
  return Array.from({ length: numLayers }, (_, layer) => modules.map((module) => ({ layer, module, rank }))).flat();
}
