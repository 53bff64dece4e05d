// config.json of a Hugging Face Llama-family checkpoint -> NativeModelConfig.
//
// Supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM (by architectures[0],
// else model_type llama / mistral / qwen2). Defaults follow transformers' config classes.
// RoPE comes from the legacy form (rope_theta + rope_scaling) or the transformers-5 form
// (rope_parameters: {rope_theta, rope_type, ...}).

import { z } from 'zod';
import type { NativeModelConfig, NativeRopeScaling } from '../engine/native-types.js';
import { LoadError, show } from './errors.js';
import { readJson, validate } from './json-file.js';

export const SUPPORTED_ARCHITECTURES = ['LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM'] as const;
export type Architecture = (typeof SUPPORTED_ARCHITECTURES)[number];
export type ModelType = 'llama' | 'mistral' | 'qwen2';

const ARCH_TO_TYPE: Record<Architecture, ModelType> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  Qwen2ForCausalLM: 'qwen2',
};
const TYPE_TO_ARCH: Record<ModelType, Architecture> = {
  llama: 'LlamaForCausalLM',
  mistral: 'MistralForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
};

/** transformers' defaults for max_position_embeddings per config class. */
const DEFAULT_MAX_POSITIONS: Record<ModelType, number> = { llama: 2048, mistral: 4096 * 32, qwen2: 32768 };

export type RopeType = 'default' | 'linear' | 'llama3';

export interface ResolvedModelConfig {
  /** Absolute path of config.json. */
  file: string;
  architecture: Architecture;
  modelType: ModelType;
  /** What the engine gets. */
  native: NativeModelConfig;
  /** Where the RoPE settings came from, for display. */
  ropeSource: 'rope_theta' | 'rope_scaling' | 'rope_parameters';
  /**
   * Tokens an attention window spans when the checkpoint uses sliding-window attention
   * (Mistral sliding_window below max_position_embeddings; Qwen2 use_sliding_window), else null.
   * The engine attends fully, so documents longer than this must be refused.
   */
  slidingWindow: number | null;
  /** config's torch_dtype (or transformers-5 dtype), for display only. */
  torchDtype: string | null;
  /** Things a person should know that do not stop the load. */
  warnings: string[];
}

const posInt = z.number().int().positive();
const posNum = z.number().positive();

/**
 * Upper bounds for every size field: far above any real checkpoint (Llama-3.1-405B has
 * 126 layers, 16384 hidden, 53248 intermediate, 128256 vocab; Llama 4 a 10M context), and
 * low enough that a corrupt or hostile config.json is refused before anything is sized
 * from it.
 */
export const CONFIG_LIMITS = {
  vocabSize: 1 << 24,
  hiddenSize: 1 << 17,
  intermediateSize: 1 << 20,
  numLayers: 1024,
  numHeads: 4096,
  headDim: 4096,
  maxPositionEmbeddings: 1 << 26,
  ropeTheta: 1e12,
  ropeFactor: 1e6,
} as const;

const CORRUPT = 'no real checkpoint has that; the file is corrupt or not a model config';
const size = (max: number, what: string) => posInt.max(max, `at most ${max} ${what}; ${CORRUPT}`);
const finitePos = (max: number) => posNum.max(max, `at most ${max}; ${CORRUPT}`);

const configSchema = z
  .object({
    architectures: z.array(z.string()).nullish(),
    model_type: z.string().nullish(),
    vocab_size: size(CONFIG_LIMITS.vocabSize, 'tokens'),
    hidden_size: size(CONFIG_LIMITS.hiddenSize, 'dimensions'),
    intermediate_size: size(CONFIG_LIMITS.intermediateSize, 'dimensions'),
    num_hidden_layers: size(CONFIG_LIMITS.numLayers, 'layers'),
    num_attention_heads: size(CONFIG_LIMITS.numHeads, 'heads'),
    num_key_value_heads: size(CONFIG_LIMITS.numHeads, 'heads').nullish(),
    head_dim: size(CONFIG_LIMITS.headDim, 'dimensions').nullish(),
    // RMSNorm's epsilon is a small positive number (1e-6, 1e-5); anything near 1 or above is not one.
    rms_norm_eps: posNum.max(0.1, `must be a small positive number such as 1e-6; ${CORRUPT}`).nullish(),
    max_position_embeddings: size(CONFIG_LIMITS.maxPositionEmbeddings, 'positions').nullish(),
    tie_word_embeddings: z.boolean().nullish(),
    attention_bias: z.boolean().nullish(),
    mlp_bias: z.boolean().nullish(),
    hidden_act: z.string().nullish(),
    rope_theta: finitePos(CONFIG_LIMITS.ropeTheta).nullish(),
    rope_scaling: z.record(z.string(), z.unknown()).nullish(),
    rope_parameters: z.record(z.string(), z.unknown()).nullish(),
    partial_rotary_factor: z.number().nullish(),
    sliding_window: size(CONFIG_LIMITS.maxPositionEmbeddings, 'positions').nullish(),
    use_sliding_window: z.boolean().nullish(),
    max_window_layers: z.number().int().nonnegative().max(CONFIG_LIMITS.numLayers).nullish(),
    torch_dtype: z.string().nullish(),
    dtype: z.string().nullish(),
    quantization_config: z.unknown().optional(),
  })
  .loose();

type RawConfig = z.output<typeof configSchema>;

function isSupportedArch(s: string): s is Architecture {
  return (SUPPORTED_ARCHITECTURES as readonly string[]).includes(s);
}

function isSupportedType(s: string): s is ModelType {
  return s === 'llama' || s === 'mistral' || s === 'qwen2';
}

const SUPPORTED_TEXT = 'LlamaForCausalLM, MistralForCausalLM and Qwen2ForCausalLM (model_type "llama", "mistral", "qwen2")';

function resolveArchitecture(file: string, json: unknown): { architecture: Architecture; modelType: ModelType } {
  const head = validate(
    file,
    json,
    z.object({ architectures: z.array(z.string()).nullish(), model_type: z.string().nullish() }).loose(),
    'config.json',
  );
  const arch0 = head.architectures?.[0];
  if (arch0 !== undefined) {
    if (!isSupportedArch(arch0)) {
      throw new LoadError({
        file,
        field: 'architectures[0]',
        message: `field "architectures[0]" is ${show(arch0)}, but AdapterLens supports only ${SUPPORTED_TEXT}; choose a checkpoint of one of these architectures.`,
      });
    }
    return { architecture: arch0, modelType: ARCH_TO_TYPE[arch0] };
  }
  const mt = head.model_type;
  if (mt == null) {
    throw new LoadError({
      file,
      field: 'architectures',
      message: `has neither "architectures" nor "model_type", so the architecture is unknown; a Hugging Face config.json for ${SUPPORTED_TEXT} names one of them.`,
    });
  }
  if (!isSupportedType(mt)) {
    throw new LoadError({
      file,
      field: 'model_type',
      message: `field "model_type" is ${show(mt)} (and "architectures" is absent), but AdapterLens supports only ${SUPPORTED_TEXT}; choose a checkpoint of one of these architectures.`,
    });
  }
  return { architecture: TYPE_TO_ARCH[mt], modelType: mt };
}

const ROPE_SUPPORTED_TEXT = 'AdapterLens implements only the "default", "linear" and "llama3" RoPE types; choose a checkpoint without this scaling';

function ropeNumber(file: string, obj: Record<string, unknown>, key: string, where: string, ropeType: string | null): number {
  const v = obj[key];
  const max = key === 'rope_theta' ? CONFIG_LIMITS.ropeTheta : key === 'original_max_position_embeddings' ? CONFIG_LIMITS.maxPositionEmbeddings : CONFIG_LIMITS.ropeFactor;
  if (typeof v === 'number' && Number.isFinite(v) && v > max) {
    throw new LoadError({ file, field: `${where}.${key}`, message: `field "${where}.${key}" is ${show(v)}, but at most ${max} is accepted; ${CORRUPT}.` });
  }
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    const need = ropeType === null ? 'it must be a positive number' : `RoPE type "${ropeType}" needs a positive number there`;
    throw new LoadError({
      file,
      field: `${where}.${key}`,
      message: `field "${where}.${key}" is ${v === undefined ? 'missing' : show(v)}, but ${need}.`,
    });
  }
  return v;
}

function resolveRope(
  file: string,
  cfg: RawConfig,
): { theta: number; scaling: NativeRopeScaling; source: ResolvedModelConfig['ropeSource'] } {
  let theta = cfg.rope_theta ?? 10000;
  let params: Record<string, unknown> | null = null;
  let where: 'rope_parameters' | 'rope_scaling';
  let source: ResolvedModelConfig['ropeSource'];
  if (cfg.rope_parameters != null) {
    params = cfg.rope_parameters;
    where = 'rope_parameters';
    source = 'rope_parameters';
    const hasKnownKey = 'rope_type' in params || 'type' in params || 'rope_theta' in params;
    const nested = Object.values(params).some((v) => v !== null && typeof v === 'object');
    if (!hasKnownKey && nested) {
      throw new LoadError({
        file,
        field: 'rope_parameters',
        message: `field "rope_parameters" holds per-layer-type RoPE settings (${show(Object.keys(params))}), which Llama, Mistral and Qwen2 do not use; this config belongs to another architecture.`,
      });
    }
    if ('rope_theta' in params) theta = ropeNumber(file, params, 'rope_theta', where, null);
  } else if (cfg.rope_scaling != null) {
    params = cfg.rope_scaling;
    where = 'rope_scaling';
    source = 'rope_scaling';
  } else {
    return { theta, scaling: { type: 'default' }, source: 'rope_theta' };
  }
  const typeKey = 'rope_type' in params ? 'rope_type' : 'type';
  const rawType = params[typeKey] ?? 'default';
  if (typeof rawType !== 'string') {
    throw new LoadError({ file, field: `${where}.${typeKey}`, message: `field "${where}.${typeKey}" is ${show(rawType)}, but it must be a string such as "default", "linear" or "llama3".` });
  }
  switch (rawType) {
    case 'default':
      return { theta, scaling: { type: 'default' }, source };
    case 'linear':
      return { theta, scaling: { type: 'linear', factor: ropeNumber(file, params, 'factor', where, 'linear') }, source };
    case 'llama3': {
      const factor = ropeNumber(file, params, 'factor', where, 'llama3');
      const lowFreqFactor = ropeNumber(file, params, 'low_freq_factor', where, 'llama3');
      const highFreqFactor = ropeNumber(file, params, 'high_freq_factor', where, 'llama3');
      const originalMaxPositionEmbeddings = ropeNumber(file, params, 'original_max_position_embeddings', where, 'llama3');
      if (!(highFreqFactor > lowFreqFactor)) {
        throw new LoadError({
          file,
          field: `${where}.high_freq_factor`,
          message: `field "${where}.high_freq_factor" (${highFreqFactor}) must be larger than "${where}.low_freq_factor" (${lowFreqFactor}) for llama3 RoPE, as transformers requires.`,
        });
      }
      return { theta, scaling: { type: 'llama3', factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings }, source };
    }
    default:
      throw new LoadError({
        file,
        field: `${where}.${typeKey}`,
        message: `field "${where}.${typeKey}" is ${show(rawType)}; ${ROPE_SUPPORTED_TEXT}.`,
      });
  }
}

/** Resolves an already-parsed config.json (file is only used in messages). */
export function resolveModelConfig(file: string, json: unknown): ResolvedModelConfig {
  const { architecture, modelType } = resolveArchitecture(file, json);
  const cfg = validate(file, json, configSchema, 'config.json');
  const warnings: string[] = [];
  const refuse = (field: string, message: string): never => {
    throw new LoadError({ file, field, message });
  };

  if (cfg.quantization_config !== undefined && cfg.quantization_config !== null) {
    const method =
      typeof cfg.quantization_config === 'object' && 'quant_method' in cfg.quantization_config
        ? show((cfg.quantization_config as Record<string, unknown>).quant_method)
        : 'unknown';
    refuse('quantization_config', `declares a quantized checkpoint ("quantization_config", quant_method ${method}); AdapterLens needs unquantized F32/F16/BF16 weights, so use the original (unquantized) checkpoint.`);
  }

  const hiddenAct = cfg.hidden_act ?? 'silu';
  if (hiddenAct !== 'silu' && hiddenAct !== 'swish') {
    refuse('hidden_act', `field "hidden_act" is ${show(hiddenAct)}, but the engine implements only "silu" (SwiGLU) MLPs, as Llama, Mistral and Qwen2 use.`);
  }
  if (cfg.mlp_bias === true) {
    refuse('mlp_bias', 'field "mlp_bias" is true, but the engine has no MLP biases; use a checkpoint with mlp_bias false.');
  }
  if (cfg.partial_rotary_factor != null && cfg.partial_rotary_factor !== 1) {
    refuse('partial_rotary_factor', `field "partial_rotary_factor" is ${cfg.partial_rotary_factor}, but the engine rotates the whole head (factor 1).`);
  }

  let attentionBias: boolean;
  if (modelType === 'qwen2') {
    attentionBias = true; // Qwen2Attention: q/k/v always have a bias, o_proj none.
  } else if (modelType === 'mistral') {
    attentionBias = false; // MistralAttention has no biases.
  } else {
    attentionBias = false;
    if (cfg.attention_bias === true) {
      refuse('attention_bias', 'field "attention_bias" is true: transformers then gives q/k/v and also o_proj a bias, but the engine supports q/k/v biases only; use a checkpoint with attention_bias false.');
    }
  }

  const numHeads = cfg.num_attention_heads;
  const numKvHeads = cfg.num_key_value_heads ?? numHeads;
  if (numHeads % numKvHeads !== 0) {
    refuse('num_key_value_heads', `field "num_key_value_heads" (${numKvHeads}) must divide "num_attention_heads" (${numHeads}) for grouped-query attention.`);
  }
  let headDim: number;
  if (cfg.head_dim != null) {
    headDim = cfg.head_dim;
  } else {
    if (cfg.hidden_size % numHeads !== 0) {
      refuse('hidden_size', `field "hidden_size" (${cfg.hidden_size}) is not a multiple of "num_attention_heads" (${numHeads}) and there is no "head_dim"; the config is inconsistent.`);
    }
    headDim = cfg.hidden_size / numHeads;
  }
  if (headDim % 2 !== 0) refuse('head_dim', `the head dimension is ${headDim}, but rotary embeddings need an even head dimension.`);

  const rope = resolveRope(file, cfg);
  const maxPositionEmbeddings = cfg.max_position_embeddings ?? DEFAULT_MAX_POSITIONS[modelType];

  let slidingWindow: number | null = null;
  if (modelType === 'mistral') {
    // MistralConfig's default sliding_window is 4096 when the field is absent; null disables it.
    const sw = cfg.sliding_window === undefined ? 4096 : cfg.sliding_window;
    if (sw !== null && sw < maxPositionEmbeddings) {
      slidingWindow = sw;
      warnings.push(`This Mistral checkpoint uses sliding-window attention over ${sw} tokens; the engine attends to the whole context, so documents are limited to ${sw} tokens.`);
    }
  } else if (modelType === 'qwen2' && cfg.use_sliding_window === true && cfg.sliding_window != null) {
    const firstSliding = cfg.max_window_layers ?? 28;
    if (firstSliding < cfg.num_hidden_layers) {
      slidingWindow = cfg.sliding_window;
      warnings.push(`This Qwen2 checkpoint uses sliding-window attention over ${cfg.sliding_window} tokens in layers ${firstSliding}..${cfg.num_hidden_layers - 1}; the engine attends to the whole context, so documents are limited to ${cfg.sliding_window} tokens.`);
    }
  }

  const native: NativeModelConfig = {
    vocabSize: cfg.vocab_size,
    hiddenSize: cfg.hidden_size,
    intermediateSize: cfg.intermediate_size,
    numLayers: cfg.num_hidden_layers,
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: cfg.rms_norm_eps ?? 1e-6,
    ropeTheta: rope.theta,
    ropeScaling: rope.scaling,
    maxPositionEmbeddings,
    tieWordEmbeddings: cfg.tie_word_embeddings ?? false,
    attentionBias,
  };
  return {
    file,
    architecture,
    modelType,
    native,
    ropeSource: rope.source,
    slidingWindow,
    torchDtype: cfg.torch_dtype ?? cfg.dtype ?? null,
    warnings,
  };
}

/** Reads and resolves a config.json file. */
export async function readModelConfig(file: string): Promise<ResolvedModelConfig> {
  return resolveModelConfig(file, await readJson(file, 'config.json'));
}
