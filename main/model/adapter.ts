// Opens a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors),
// resolves which Linear of which layer it adapts with PEFT's own matching rules, checks
// every lora_A / lora_B tensor against the base model's config, and produces the
// engine's NativeAdapterSpec.
//
// PEFT rules reproduced here (peft/tuners/tuners_utils.py, peft/tuners/lora/model.py):
//  - target_modules as a string: re.fullmatch(target_modules, key);
//    as a list: key in list, or key.endswith("." + name); "all-linear": every Linear but lm_head.
//  - exclude_modules: string -> re.fullmatch; list -> exact or suffix match; checked first.
//  - layers_to_transform (list form only) with layers_pattern: re.match(rf".*\.{pattern}\.(\d+)\.", key),
//    or re.match(r".*\.[^.]*\.(\d+)\.", key) when no pattern is given.
//  - rank_pattern / alpha_pattern: the first key k with re.match(rf"(.*\.)?({k})$", key).
//  - scale = alpha / r, or alpha / sqrt(r) with use_rslora.
// `key` is the module's full name in the base model, e.g. "model.layers.3.self_attn.q_proj";
// saved tensors are "base_model.model.<key>.lora_A.weight" (".lora_A.default.weight" is accepted too).

import { kindOf } from './path-kind.js';
import { basename, join, resolve } from 'node:path';
import { z } from 'zod';
import type { LoraModuleName, NativeAdapterSpec, NativeLoraModule, NativeModelConfig, StoredDType } from '../engine/native-types.js';
import { LORA_MODULES, type LoadOptions, moduleFeatures, modulePath } from './checkpoint.js';
import { LoadError, show } from './errors.js';
import { readJson, validate } from './json-file.js';
import { compilePythonRegex, type LinearRegex } from './python-regex.js';
import { type SafetensorsEntry, readSafetensorsHeader, weightRef } from './safetensors.js';

export interface AdapterModuleSummary {
  layer: number;
  module: LoraModuleName;
  rank: number;
  alpha: number;
  scale: number;
}

export interface AdapterSummary {
  /** The folder's name. */
  name: string;
  dir: string;
  configFile: string;
  weightsFile: string;
  /** Default rank (adapter_config.json "r"). */
  r: number;
  /** Default alpha ("lora_alpha"). */
  alpha: number;
  useRslora: boolean;
  /** Module names adapted in at least one layer, in forward order. */
  targetModules: LoraModuleName[];
  /** Layers with at least one adapted module, ascending. */
  layers: number[];
  /** Every adapted Linear with its rank, alpha and scale after rank_pattern / alpha_pattern. */
  perModule: AdapterModuleSummary[];
  maxRank: number;
  /** Bytes of the lora_A / lora_B tensors as stored. */
  bytes: number;
  parameterCount: number;
  dtypeSummary: string;
  /** adapter_config.json "base_model_name_or_path" (informational). */
  baseModelNameOrPath: string | null;
  warnings: string[];
}

export interface OpenedAdapter {
  spec: NativeAdapterSpec;
  summary: AdapterSummary;
}

/**
 * Bounds far above any real adapter (ranks are at most a few thousand, alphas a few
 * hundred) that keep a corrupt or hostile adapter_config.json from reaching the engine:
 * an alpha of 1e308 would make every scale infinite.
 */
export const ADAPTER_LIMITS = { rank: 1 << 16, alpha: 1e6, layerIndex: 1 << 16, listItems: 4096, nameChars: 4096 } as const;

const CORRUPT = 'no real adapter has that; the file is corrupt';
const posInt = z.number().int().positive().max(ADAPTER_LIMITS.rank, `at most ${ADAPTER_LIMITS.rank}; ${CORRUPT}`);
const alphaValue = z.number().nonnegative().max(ADAPTER_LIMITS.alpha, `at most ${ADAPTER_LIMITS.alpha}; ${CORRUPT}`);
const layerIndex = z.number().int().nonnegative().max(ADAPTER_LIMITS.layerIndex, `at most ${ADAPTER_LIMITS.layerIndex}; ${CORRUPT}`);
const name = z.string().max(ADAPTER_LIMITS.nameChars, `at most ${ADAPTER_LIMITS.nameChars} characters; ${CORRUPT}`);
const nameList = z.array(name).max(ADAPTER_LIMITS.listItems, `at most ${ADAPTER_LIMITS.listItems} entries; ${CORRUPT}`);
const stringOrList = z.union([name, nameList]);
const patternMap = <T extends z.ZodType>(value: T) =>
  z.record(name, value).refine((m) => Object.keys(m).length <= ADAPTER_LIMITS.listItems, `at most ${ADAPTER_LIMITS.listItems} entries; ${CORRUPT}`);

const adapterConfigSchema = z
  .object({
    peft_type: z.string(),
    r: posInt.nullish(),
    lora_alpha: alphaValue.nullish(),
    use_rslora: z.boolean().nullish(),
    target_modules: stringOrList.nullish(),
    exclude_modules: stringOrList.nullish(),
    layers_to_transform: z.union([layerIndex, z.array(layerIndex).max(ADAPTER_LIMITS.listItems)]).nullish(),
    layers_pattern: stringOrList.nullish(),
    rank_pattern: patternMap(posInt).nullish(),
    alpha_pattern: patternMap(alphaValue).nullish(),
    fan_in_fan_out: z.boolean().nullish(),
    base_model_name_or_path: z.string().nullish(),
    use_dora: z.boolean().nullish(),
    modules_to_save: nameList.nullish(),
    bias: z.string().nullish(),
    megatron_config: z.unknown().optional(),
    lora_bias: z.boolean().nullish(),
    layer_replication: z.unknown().optional(),
    target_parameters: nameList.nullish(),
    trainable_token_indices: z.unknown().optional(),
    alora_invocation_tokens: z.unknown().optional(),
    use_qalora: z.boolean().nullish(),
    use_bdlora: z.unknown().optional(),
    arrow_config: z.unknown().optional(),
    kasa_config: z.unknown().optional(),
    monteclora_config: z.unknown().optional(),
  })
  .loose();

type AdapterConfig = z.output<typeof adapterConfigSchema>;

// ---------------------------------------------------------------- Python regexes, on RE2

function compile(file: string, field: string, pattern: string, wrap?: (src: string) => string): LinearRegex {
  try {
    return compilePythonRegex(pattern, wrap);
  } catch (e) {
    throw new LoadError({
      file,
      field,
      message: `field "${field}" holds the regular expression ${show(pattern)}, which AdapterLens cannot use: ${(e as Error).message}; simplify it or list the module names instead.`,
    });
  }
}

/** The layer-number group the layer patterns capture. */
const LAYER_GROUP = 'al_layer';

// ---------------------------------------------------------------- module keys

/** Every named module of a Llama-family model (transformers' named_modules(), root excluded). */
function allModuleKeys(numLayers: number): string[] {
  const keys = ['model', 'model.embed_tokens', 'model.layers'];
  for (let l = 0; l < numLayers; l++) {
    const p = `model.layers.${l}`;
    keys.push(p, `${p}.self_attn`);
    for (const m of ['q_proj', 'k_proj', 'v_proj', 'o_proj'] as const) keys.push(modulePath(l, m));
    keys.push(`${p}.mlp`);
    for (const m of ['gate_proj', 'up_proj', 'down_proj'] as const) keys.push(modulePath(l, m));
    keys.push(`${p}.mlp.act_fn`, `${p}.input_layernorm`, `${p}.post_attention_layernorm`);
  }
  keys.push('model.norm', 'model.rotary_emb', 'lm_head');
  return keys;
}

const LINEAR_KEY = /^model\.layers\.(\d+)\.(self_attn|mlp)\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$/;

function parseLinearKey(key: string): { layer: number; module: LoraModuleName } | null {
  const m = LINEAR_KEY.exec(key);
  if (!m) return null;
  const module = m[3] as LoraModuleName;
  if (modulePath(Number(m[1]), module) !== key) return null; // e.g. self_attn.gate_proj
  return { layer: Number(m[1]), module };
}

const PEFT_DEFAULT_TARGETS = ['q_proj', 'v_proj'];

interface Targeting {
  /** Adapted (layer, module) pairs in forward order. */
  modules: { layer: number; module: LoraModuleName; key: string }[];
  warnings: string[];
}

function resolveTargets(file: string, cfg: AdapterConfig, numLayers: number): Targeting {
  const warnings: string[] = [];
  const keys = allModuleKeys(numLayers);

  // ---- target_modules
  let listTargets: string[] | null = null;
  let regexTarget: LinearRegex | null = null;
  const tm = cfg.target_modules;
  if (tm == null) {
    listTargets = PEFT_DEFAULT_TARGETS;
    warnings.push('adapter_config.json has no "target_modules"; PEFT\'s default for Llama, Mistral and Qwen2 (q_proj, v_proj) is assumed.');
  } else if (typeof tm === 'string') {
    if (tm.toLowerCase() === 'all-linear') listTargets = [...LORA_MODULES];
    else regexTarget = compile(file, 'target_modules', tm);
  } else {
    listTargets = tm;
  }

  // ---- layers_to_transform / layers_pattern
  const ltt = cfg.layers_to_transform;
  const usingLayerIndexes = ltt != null && (Array.isArray(ltt) ? ltt.length > 0 : true);
  const lp = cfg.layers_pattern;
  const lpList = lp == null ? [] : typeof lp === 'string' ? (lp === '' ? [] : [lp]) : lp;
  if (usingLayerIndexes && regexTarget) {
    throw new LoadError({
      file,
      field: 'layers_to_transform',
      message: 'field "layers_to_transform" is set while "target_modules" is a regular expression; PEFT refuses that combination, so put the layer numbers into the regular expression instead.',
    });
  }
  if (lpList.length > 0 && !usingLayerIndexes) {
    throw new LoadError({
      file,
      field: 'layers_pattern',
      message: 'field "layers_pattern" is set without "layers_to_transform"; PEFT refuses that combination, so set both or neither.',
    });
  }
  // PEFT: re.match(rf".*\.{pattern}\.(\d+)\.", key), or r".*\.[^.]*\.(\d+)\." without a pattern.
  const layerRegexes = usingLayerIndexes
    ? lpList.length === 0
      ? [compile(file, 'layers_pattern', `.*\\.[^.]*\\.(?P<${LAYER_GROUP}>\\d+)\\.`)]
      : lpList.map((p) => compile(file, 'layers_pattern', p, (s) => `.*\\.(?:${s})\\.(?P<${LAYER_GROUP}>\\d+)\\.`))
    : [];
  const layerSet = usingLayerIndexes ? new Set(Array.isArray(ltt) ? ltt : [ltt]) : null;

  // ---- exclude_modules
  const ex = cfg.exclude_modules;
  const excludeRegex = typeof ex === 'string' ? compile(file, 'exclude_modules', ex) : null;
  const excludeList = Array.isArray(ex) ? ex : null;
  const excluded = (key: string): boolean =>
    excludeRegex ? excludeRegex.fullMatch(key) : excludeList ? excludeList.some((e) => key === e || key.endsWith(`.${e}`)) : false;

  const nameMatches = (key: string, t: string): boolean => key === t || key.endsWith(`.${t}`);

  // Every listed name must exist in a Llama-family model.
  if (listTargets) {
    for (const t of listTargets) {
      if (!keys.some((k) => nameMatches(k, t))) {
        throw new LoadError({
          file,
          field: 'target_modules',
          message: `field "target_modules" names ${show(t)}, which is not a module of a Llama, Mistral or Qwen2 model (their adaptable Linear layers are ${LORA_MODULES.join(', ')}); this adapter was trained for another architecture.`,
        });
      }
    }
  }

  const modules: Targeting['modules'] = [];
  for (const key of keys) {
    if (excluded(key)) continue;
    let found: boolean;
    if (regexTarget) {
      found = regexTarget.fullMatch(key);
    } else if (listTargets!.includes(key)) {
      found = true;
    } else {
      found = listTargets!.some((t) => key.endsWith(`.${t}`));
      if (found && layerSet) {
        let idx: number | null = null;
        for (const re of layerRegexes) {
          const digits = re.prefixGroup(key, LAYER_GROUP);
          if (digits) {
            idx = Number(digits);
            break;
          }
        }
        found = idx !== null && layerSet.has(idx);
      }
    }
    if (!found) continue;
    const lin = parseLinearKey(key);
    if (!lin) {
      const embedOrHead = key === 'model.embed_tokens' || key === 'lm_head';
      throw new LoadError({
        file,
        field: 'target_modules',
        message: embedOrHead
          ? `field "target_modules" (${show(tm)}) puts LoRA on ${key}, which the engine does not support; retrain with LoRA on the attention / MLP projections only.`
          : `field "target_modules" (${show(tm)}) matches ${key}, which is not an adaptable Linear layer (those are ${LORA_MODULES.join(', ')}); list those names instead.`,
      });
    }
    modules.push({ ...lin, key });
  }
  if (modules.length === 0) {
    throw new LoadError({
      file,
      field: 'target_modules',
      message: `field "target_modules" (${show(tm)}) with ${usingLayerIndexes ? `layers_to_transform ${show(ltt)}` : 'the other settings'} selects no Linear layer of this ${numLayers}-layer base model; the adapter does not fit this base model.`,
    });
  }
  const order = (m: { layer: number; module: LoraModuleName }) => m.layer * 16 + LORA_MODULES.indexOf(m.module);
  modules.sort((a, b) => order(a) - order(b));
  return { modules, warnings };
}

// ---------------------------------------------------------------- tensor names

const TENSOR_NAME = /^base_model\.model\.(.+)\.lora_([AB])(?:\.default)?\.weight$/;

function unexpectedTensorMessage(name: string): string {
  if (name.includes('lora_magnitude_vector')) return `tensor "${name}" is a DoRA magnitude vector; DoRA adapters are not supported, use a plain LoRA adapter.`;
  if (name.includes('lora_embedding_')) return `tensor "${name}" is a LoRA on the embedding layer, which the engine does not support.`;
  if (name.includes('modules_to_save') || name.includes('original_module')) return `tensor "${name}" is a full copy of a module (modules_to_save), which the engine cannot apply.`;
  if (/\.lora_B(?:\.default)?\.bias$/.test(name)) return `tensor "${name}" is a LoRA bias (lora_bias), which the engine does not support.`;
  return `tensor "${name}" is not a lora_A / lora_B weight of a module that adapter_config.json targets; the config and the weights do not belong together.`;
}

// ---------------------------------------------------------------- another base model

/** What the adapter's own tensors say about the base it was trained on. */
export interface TrainedBase {
  /** Highest adapted layer + 1 (a lower bound when the adapter skips its last layers). */
  layers: number;
  /** From lora_A of q/k/v/gate/up (in_features) or lora_B of o/down (out_features); null when no tensor tells. */
  hiddenSize: number | null;
  /** in → out features per adapted module, from its first layer's tensors. */
  modules: Map<LoraModuleName, { inFeatures: number; outFeatures: number }>;
}

export function inferTrainedBase(found: ReadonlyMap<string, { A?: SafetensorsEntry; B?: SafetensorsEntry }>): TrainedBase {
  let layers = 0;
  let hiddenSize: number | null = null;
  const modules = new Map<LoraModuleName, { inFeatures: number; outFeatures: number }>();
  const sorted = [...found.entries()].map(([key, slot]) => ({ lin: parseLinearKey(key), slot })).filter((x) => x.lin !== null);
  sorted.sort((a, b) => a.lin!.layer - b.lin!.layer);
  for (const { lin, slot } of sorted) {
    const { layer, module } = lin!;
    layers = Math.max(layers, layer + 1);
    const inFeatures = slot.A?.shape.length === 2 ? slot.A.shape[1]! : null;
    const outFeatures = slot.B?.shape.length === 2 ? slot.B.shape[0]! : null;
    if (inFeatures !== null && outFeatures !== null && !modules.has(module)) modules.set(module, { inFeatures, outFeatures });
    if (hiddenSize === null) {
      if (inFeatures !== null && ['q_proj', 'k_proj', 'v_proj', 'gate_proj', 'up_proj'].includes(module)) hiddenSize = inFeatures;
      else if (outFeatures !== null && (module === 'o_proj' || module === 'down_proj')) hiddenSize = outFeatures;
    }
  }
  return { layers, hiddenSize, modules };
}

function differsFrom(trained: TrainedBase, base: NativeModelConfig): boolean {
  if (trained.hiddenSize !== null && trained.hiddenSize !== base.hiddenSize) return true;
  for (const [module, f] of trained.modules) {
    const want = moduleFeatures(base, module);
    if (want.inFeatures !== f.inFeatures || want.outFeatures !== f.outFeatures) return true;
  }
  return trained.layers > base.numLayers;
}

function shapeList(modules: Iterable<[LoraModuleName, { inFeatures: number; outFeatures: number }]>): string {
  return [...modules].map(([m, f]) => `${m} ${f.inFeatures}→${f.outFeatures}`).join(', ');
}

/**
 * "this adapter was trained for a base with 2 layers / hidden size 64 / q_proj 64→64, …;
 * the chosen model has 4 layers / hidden size 64 / q_proj 64→64, …": the two models side
 * by side, in the words a person compares them with.
 */
export function baseMismatchMessage(trained: TrainedBase, base: NativeModelConfig, namedBase: string | null): string {
  const order = (m: LoraModuleName) => LORA_MODULES.indexOf(m);
  const adapted = [...trained.modules.entries()].sort((a, b) => order(a[0]) - order(b[0]));
  const theirs = [
    `${trained.layers} layer${trained.layers === 1 ? '' : 's'}`,
    ...(trained.hiddenSize !== null ? [`hidden size ${trained.hiddenSize}`] : []),
    ...(adapted.length ? [shapeList(adapted)] : []),
  ];
  const ours = [
    `${base.numLayers} layer${base.numLayers === 1 ? '' : 's'}`,
    `hidden size ${base.hiddenSize}`,
    ...(adapted.length ? [shapeList(adapted.map(([m]) => [m, moduleFeatures(base, m)] as [LoraModuleName, { inFeatures: number; outFeatures: number }]))] : []),
  ];
  // Same widths, fewer layers: a shallower base, or a weights file cut short.
  const onlyDepth = trained.layers < base.numLayers && !differsFrom({ ...trained, layers: base.numLayers }, base);
  return (
    `this adapter was trained for a base with ${theirs.join(' / ')}; the chosen model has ${ours.join(' / ')}. ` +
    `Choose the base model it was trained on${namedBase ? ` (its adapter_config.json names ${show(namedBase)})` : ''}` +
    `${onlyDepth ? ', or check that adapter_model.safetensors is complete' : ''}.`
  );
}

// ---------------------------------------------------------------- open

function refuse(file: string, field: string, message: string): never {
  throw new LoadError({ file, field, message });
}

function checkRefusals(file: string, cfg: AdapterConfig): string[] {
  const warnings: string[] = [];
  if (cfg.use_dora === true) {
    refuse(file, 'use_dora', 'field "use_dora" is true: DoRA rescales each weight\'s magnitude, which the engine does not implement; use a plain LoRA adapter (train with use_dora=False).');
  }
  if (cfg.modules_to_save != null && cfg.modules_to_save.length > 0) {
    refuse(file, 'modules_to_save', `field "modules_to_save" lists ${show(cfg.modules_to_save)}: the adapter then carries fully trained copies of those modules, which the engine cannot apply; retrain without modules_to_save.`);
  }
  const bias = cfg.bias ?? 'none';
  if (bias !== 'none') {
    refuse(file, 'bias', `field "bias" is ${show(bias)}: the adapter then trains the base model's bias terms, which the engine cannot apply; retrain with bias="none".`);
  }
  if (cfg.lora_bias === true) {
    refuse(file, 'lora_bias', 'field "lora_bias" is true: lora_B then has a bias, which the engine does not support; retrain with lora_bias=False.');
  }
  if (cfg.megatron_config != null) {
    refuse(file, 'megatron_config', 'field "megatron_config" is set: Megatron tensor-parallel LoRA layers are not supported; save the adapter from a plain transformers model.');
  }
  if (cfg.layer_replication != null) {
    refuse(file, 'layer_replication', 'field "layer_replication" is set: the adapter expects a base model with duplicated layers, which the engine does not build; use an adapter trained without layer_replication.');
  }
  if (cfg.target_parameters != null && cfg.target_parameters.length > 0) {
    refuse(file, 'target_parameters', `field "target_parameters" lists ${show(cfg.target_parameters)}: LoRA on raw parameters is not supported; target Linear modules instead.`);
  }
  if (cfg.trainable_token_indices != null) {
    refuse(file, 'trainable_token_indices', 'field "trainable_token_indices" is set: the adapter retrains embedding rows, which the engine cannot apply; use an adapter without trainable tokens.');
  }
  if (cfg.alora_invocation_tokens != null) {
    refuse(file, 'alora_invocation_tokens', 'field "alora_invocation_tokens" is set: activated LoRA (aLoRA) switches on mid-sequence, which the engine does not implement; use a plain LoRA adapter.');
  }
  if (cfg.use_qalora === true) {
    refuse(file, 'use_qalora', 'field "use_qalora" is true: QA-LoRA belongs to a quantized base model, which the engine does not load; use a plain LoRA adapter.');
  }
  // Newer PEFT variants that change the forward pass (set to null / false by plain LoRA).
  const variants: [keyof AdapterConfig, string][] = [
    ['use_bdlora', 'block-diagonal LoRA'],
    ['arrow_config', 'Arrow routing between LoRA experts'],
    ['kasa_config', 'KaSA'],
    ['monteclora_config', 'MonteCLoRA'],
  ];
  for (const [field, what] of variants) {
    const v = cfg[field];
    if (v !== undefined && v !== null && v !== false) {
      refuse(file, field, `field "${field}" is set (${show(v)}): ${what} changes the LoRA forward pass, which the engine does not implement; use a plain LoRA adapter.`);
    }
  }
  if (cfg.fan_in_fan_out === true) {
    warnings.push('adapter_config.json sets "fan_in_fan_out": true, but the targets are torch.nn.Linear; like PEFT, AdapterLens sets it to false.');
  }
  return warnings;
}

/**
 * Opens an adapter folder for a base model with config `base`.
 * Progress is reported in files (adapter_config.json, adapter_model.safetensors).
 */
export async function openAdapter(dirIn: string, base: NativeModelConfig, options: LoadOptions = {}): Promise<OpenedAdapter> {
  const { signal, onProgress } = options;
  signal?.throwIfAborted();
  const dir = resolve(dirIn);
  const dirKind = await kindOf(dir);
  if (dirKind !== 'dir') {
    throw new LoadError({
      file: dir,
      message: dirKind === null ? 'this folder does not exist; pick a PEFT adapter folder.' : 'this is not a folder; pick the PEFT adapter folder that holds adapter_config.json.',
    });
  }
  const configFile = join(dir, 'adapter_config.json');
  const weightsFile = join(dir, 'adapter_model.safetensors');
  if ((await kindOf(configFile)) !== 'file') {
    throw new LoadError({
      file: dir,
      field: 'adapter_config.json',
      message: 'this folder has no adapter_config.json; a PEFT adapter folder is expected (adapter_config.json plus adapter_model.safetensors, as save_pretrained writes them).',
    });
  }
  onProgress?.(0, 2);

  // ---- adapter_config.json
  const json = await readJson(configFile, 'adapter_config.json');
  const head = validate(configFile, json, z.object({ peft_type: z.string() }).loose(), 'adapter_config.json');
  if (head.peft_type !== 'LORA') {
    refuse(configFile, 'peft_type', `field "peft_type" is ${show(head.peft_type)}, but AdapterLens compares LoRA adapters only (peft_type "LORA").`);
  }
  const cfg = validate(configFile, json, adapterConfigSchema, 'adapter_config.json');
  const warnings = checkRefusals(configFile, cfg);
  const targeting = resolveTargets(configFile, cfg, base.numLayers);
  warnings.push(...targeting.warnings);
  const r = cfg.r ?? 8;
  const alpha = cfg.lora_alpha ?? 8;
  const useRslora = cfg.use_rslora ?? false;
  // PEFT: the first key k with re.match(rf"(.*\.)?({k})$", key).
  const rankPattern = Object.entries(cfg.rank_pattern ?? {}).map(
    ([k, v]) => [compile(configFile, `rank_pattern.${k}`, k, (s) => `(?:.*\\.)?(?:${s})`), v] as const,
  );
  const alphaPattern = Object.entries(cfg.alpha_pattern ?? {}).map(
    ([k, v]) => [compile(configFile, `alpha_pattern.${k}`, k, (s) => `(?:.*\\.)?(?:${s})`), v] as const,
  );
  const pick = (patterns: (readonly [LinearRegex, number])[], key: string, dflt: number): number =>
    patterns.find(([re]) => re.fullMatch(key))?.[1] ?? dflt;
  onProgress?.(1, 2);
  signal?.throwIfAborted();

  // ---- adapter_model.safetensors
  if ((await kindOf(weightsFile)) !== 'file') {
    const bin = join(dir, 'adapter_model.bin');
    if ((await kindOf(bin)) === 'file') {
      throw new LoadError({
        file: bin,
        message:
          'this adapter has PyTorch pickle weights only, which AdapterLens does not read (they can run code when loaded); convert them in the adapter folder with `python -c "import torch; from safetensors.torch import save_file; save_file(torch.load(\'adapter_model.bin\', map_location=\'cpu\'), \'adapter_model.safetensors\')"`, or re-save the adapter with save_pretrained(..., safe_serialization=True).',
      });
    }
    throw new LoadError({
      file: dir,
      field: 'adapter_model.safetensors',
      message: 'this folder has adapter_config.json but no adapter_model.safetensors; copy the adapter\'s weights file next to its config.',
    });
  }
  const header = await readSafetensorsHeader(weightsFile);
  onProgress?.(2, 2);

  // key -> {A, B}
  const found = new Map<string, { A?: SafetensorsEntry; B?: SafetensorsEntry }>();
  for (const [name, entry] of header.entries) {
    const m = TENSOR_NAME.exec(name);
    if (!m) throw new LoadError({ file: weightsFile, field: name, message: unexpectedTensorMessage(name) });
    const key = m[1]!;
    const role = m[2] as 'A' | 'B';
    const slot = found.get(key) ?? {};
    if (slot[role]) {
      throw new LoadError({ file: weightsFile, field: name, message: `tensor "${name}" duplicates lora_${role} of ${key} (both with and without ".default"); the file is malformed.` });
    }
    slot[role] = entry;
    found.set(key, slot);
  }
  const expectedKeys = new Set(targeting.modules.map((m) => m.key));
  for (const [key, slot] of found) {
    if (!expectedKeys.has(key)) {
      const name = (slot.A ?? slot.B)!.name;
      const lin = parseLinearKey(key);
      const why =
        lin && lin.layer >= base.numLayers
          ? `${baseMismatchMessage(inferTrainedBase(found), base, cfg.base_model_name_or_path ?? null)} (tensor "${name}" adapts layer ${lin.layer}, but the base model has ${base.numLayers} layers.)`
          : lin
            ? `tensor "${name}" adapts ${key}, which adapter_config.json does not target (target_modules ${show(cfg.target_modules)}${cfg.layers_to_transform != null ? `, layers_to_transform ${show(cfg.layers_to_transform)}` : ''}); the config and the weights do not belong together.`
            : unexpectedTensorMessage(name);
      throw new LoadError({ file: weightsFile, field: name, message: why });
    }
  }

  // Tensors missing for every targeted module from some layer on are not an incomplete
  // file but an adapter trained on a shallower base: say so in terms of the two models.
  const missingKeys = targeting.modules.filter((t) => !found.get(t.key)?.A || !found.get(t.key)?.B);
  if (missingKeys.length > 0) {
    const trained = inferTrainedBase(found);
    const depthMismatch = trained.layers < base.numLayers && missingKeys.every((t) => t.layer >= trained.layers);
    if (depthMismatch) {
      throw new LoadError({ file: weightsFile, field: `base_model.model.${missingKeys[0]!.key}.lora_A.weight`, message: baseMismatchMessage(trained, base, cfg.base_model_name_or_path ?? null) });
    }
  }

  const modules: NativeLoraModule[] = [];
  const perModule: AdapterModuleSummary[] = [];
  const dtypes = new Set<StoredDType>();
  let bytes = 0;
  let parameterCount = 0;
  for (const t of targeting.modules) {
    const slot = found.get(t.key);
    for (const role of ['A', 'B'] as const) {
      if (!slot?.[role]) {
        const name = `base_model.model.${t.key}.lora_${role}.weight`;
        throw new LoadError({
          file: weightsFile,
          field: name,
          message: `tensor "${name}" is missing, but adapter_config.json targets ${t.key}; the weights file is incomplete or belongs to another config.`,
        });
      }
    }
    const a = slot!.A!;
    const b = slot!.B!;
    const rank = pick(rankPattern, t.key, r);
    const modAlpha = pick(alphaPattern, t.key, alpha);
    const f = moduleFeatures(base, t.module);
    const rankWhy = rank === r ? `r=${r}` : `rank_pattern gives ${rank}`;
    const checks: [SafetensorsEntry, number[], string][] = [
      [a, [rank, f.inFeatures], `[r, in_features] from adapter_config.json (${rankWhy}) and the base config.json (${f.basis})`],
      [b, [f.outFeatures, rank], `[out_features, r] from the base config.json (${f.basis}) and adapter_config.json (${rankWhy})`],
    ];
    for (const [entry, shape, why] of checks) {
      if (entry.shape.length !== 2 || entry.shape[0] !== shape[0] || entry.shape[1] !== shape[1]) {
        const detail = `tensor ${entry.name} has shape [${entry.shape.join(', ')}], expected [${shape.join(', ')}] = ${why}`;
        const trained = inferTrainedBase(found);
        // The adapter's own shapes agree with each other but not with this model: another base.
        const message = trained.hiddenSize !== null && differsFrom(trained, base)
          ? `${baseMismatchMessage(trained, base, cfg.base_model_name_or_path ?? null)} (${detail}.)`
          : `${detail}; the adapter does not fit this base model or its config${cfg.base_model_name_or_path ? ` (it names base model ${show(cfg.base_model_name_or_path)})` : ''}.`;
        throw new LoadError({ file: weightsFile, field: entry.name, message });
      }
    }
    const scale = useRslora ? modAlpha / Math.sqrt(rank) : modAlpha / rank;
    const aRef = weightRef(header, a);
    const bRef = weightRef(header, b);
    modules.push({ layer: t.layer, module: t.module, rank, scale, a: aRef, b: bRef });
    perModule.push({ layer: t.layer, module: t.module, rank, alpha: modAlpha, scale });
    for (const ref of [aRef, bRef]) {
      dtypes.add(ref.dtype);
      bytes += ref.nbytes;
      parameterCount += ref.shape.reduce((x, y) => x * y, 1);
    }
  }

  const dtypeOrder: StoredDType[] = ['BF16', 'F16', 'F32'];
  const summary: AdapterSummary = {
    name: basename(dir),
    dir,
    configFile,
    weightsFile,
    r,
    alpha,
    useRslora,
    targetModules: LORA_MODULES.filter((m) => modules.some((x) => x.module === m)),
    layers: [...new Set(modules.map((m) => m.layer))].sort((x, y) => x - y),
    perModule,
    maxRank: Math.max(...modules.map((m) => m.rank)),
    bytes,
    parameterCount,
    dtypeSummary: dtypeOrder.filter((d) => dtypes.has(d)).join('+'),
    baseModelNameOrPath: cfg.base_model_name_or_path ?? null,
    warnings,
  };
  return { spec: { modules }, summary };
}
