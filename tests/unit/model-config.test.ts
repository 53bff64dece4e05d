import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveModelConfig } from '../../main/model/checkpoint-config.js';
import { LoadError } from '../../main/model/errors.js';
import { TINY_NATIVE, tinyConfig } from './model-fixtures.js';

const FILE = '/models/tiny/config.json';

function refusal(overrides: Record<string, unknown>, field: string, pattern: RegExp): void {
  assert.throws(
    () => resolveModelConfig(FILE, tinyConfig(overrides)),
    (e: unknown) => {
      assert.ok(e instanceof LoadError, String(e));
      assert.equal(e.file, FILE);
      assert.equal(e.field, field);
      assert.ok(e.message.startsWith(`${FILE}: `), e.message);
      assert.match(e.message, pattern);
      return true;
    },
  );
}

describe('checkpoint config.json', () => {
  it('resolves a Llama config (legacy rope_theta form)', () => {
    const r = resolveModelConfig(FILE, tinyConfig());
    assert.deepEqual(r.native, TINY_NATIVE);
    assert.equal(r.architecture, 'LlamaForCausalLM');
    assert.equal(r.modelType, 'llama');
    assert.equal(r.ropeSource, 'rope_theta');
    assert.equal(r.slidingWindow, null);
    assert.equal(r.torchDtype, 'bfloat16');
    assert.deepEqual(r.warnings, []);
  });

  it('applies transformers defaults', () => {
    const cfg = tinyConfig();
    for (const k of ['num_key_value_heads', 'rms_norm_eps', 'max_position_embeddings', 'rope_theta', 'tie_word_embeddings', 'hidden_act', 'torch_dtype']) delete cfg[k];
    const r = resolveModelConfig(FILE, cfg);
    assert.equal(r.native.numKvHeads, 4);
    assert.equal(r.native.rmsNormEps, 1e-6);
    assert.equal(r.native.maxPositionEmbeddings, 2048);
    assert.equal(r.native.ropeTheta, 10000);
    assert.equal(r.native.tieWordEmbeddings, false);
    assert.equal(r.torchDtype, null);
  });

  it('honours explicit head_dim, tie_word_embeddings and transformers-5 dtype', () => {
    const r = resolveModelConfig(FILE, tinyConfig({ head_dim: 8, tie_word_embeddings: true, torch_dtype: undefined, dtype: 'float16' }));
    assert.equal(r.native.headDim, 8);
    assert.equal(r.native.tieWordEmbeddings, true);
    assert.equal(r.torchDtype, 'float16');
  });

  it('falls back to model_type without architectures', () => {
    const r = resolveModelConfig(FILE, tinyConfig({ architectures: undefined, model_type: 'mistral', sliding_window: null }));
    assert.equal(r.architecture, 'MistralForCausalLM');
    assert.equal(r.native.attentionBias, false);
  });

  it('reads llama3 scaling from legacy rope_scaling and from rope_parameters', () => {
    const llama3 = { factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
    const expected = { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 };
    const legacy = resolveModelConfig(FILE, tinyConfig({ rope_theta: 500000, rope_scaling: { ...llama3, rope_type: 'llama3' } }));
    assert.deepEqual(legacy.native.ropeScaling, expected);
    assert.equal(legacy.native.ropeTheta, 500000);
    assert.equal(legacy.ropeSource, 'rope_scaling');
    const legacyType = resolveModelConfig(FILE, tinyConfig({ rope_scaling: { ...llama3, type: 'llama3' } }));
    assert.deepEqual(legacyType.native.ropeScaling, expected);
    const v5cfg = tinyConfig({ rope_parameters: { ...llama3, rope_type: 'llama3', rope_theta: 500000 } });
    delete v5cfg.rope_theta;
    const v5 = resolveModelConfig(FILE, v5cfg);
    assert.deepEqual(v5.native.ropeScaling, expected);
    assert.equal(v5.native.ropeTheta, 500000);
    assert.equal(v5.ropeSource, 'rope_parameters');
  });

  it('reads linear and default scaling in both forms', () => {
    assert.deepEqual(resolveModelConfig(FILE, tinyConfig({ rope_scaling: { type: 'linear', factor: 2 } })).native.ropeScaling, { type: 'linear', factor: 2 });
    const v5 = resolveModelConfig(FILE, tinyConfig({ rope_theta: undefined, rope_parameters: { rope_type: 'linear', factor: 4, rope_theta: 1e6 } }));
    assert.deepEqual(v5.native.ropeScaling, { type: 'linear', factor: 4 });
    assert.equal(v5.native.ropeTheta, 1e6);
    const d = resolveModelConfig(FILE, tinyConfig({ rope_theta: undefined, rope_parameters: { rope_type: 'default', rope_theta: 20000 } }));
    assert.deepEqual(d.native.ropeScaling, { type: 'default' });
    assert.equal(d.native.ropeTheta, 20000);
    assert.deepEqual(resolveModelConfig(FILE, tinyConfig({ rope_scaling: null })).native.ropeScaling, { type: 'default' });
  });

  it('refuses unsupported RoPE types and incomplete llama3 settings', () => {
    refusal({ rope_scaling: { rope_type: 'yarn', factor: 4 } }, 'rope_scaling.rope_type', /"yarn".*"default", "linear" and "llama3"/);
    refusal({ rope_scaling: { type: 'dynamic', factor: 2 } }, 'rope_scaling.type', /"dynamic"/);
    refusal({ rope_parameters: { rope_type: 'longrope', rope_theta: 1e4 } }, 'rope_parameters.rope_type', /"longrope"/);
    refusal({ rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4 } }, 'rope_scaling.original_max_position_embeddings', /missing.*llama3/);
    refusal({ rope_scaling: { rope_type: 'linear' } }, 'rope_scaling.factor', /linear/);
  });

  it('refuses unsupported architectures naming the field, the value and what is supported', () => {
    refusal({ architectures: ['GPT2LMHeadModel'] }, 'architectures[0]', /"GPT2LMHeadModel".*LlamaForCausalLM, MistralForCausalLM and Qwen2ForCausalLM/);
    refusal({ architectures: [], model_type: 'gemma' }, 'model_type', /"gemma"/);
    refusal({ architectures: undefined, model_type: undefined }, 'architectures', /neither/);
  });

  it('refuses what the engine cannot run', () => {
    refusal({ hidden_act: 'gelu' }, 'hidden_act', /"gelu".*silu/);
    refusal({ attention_bias: true }, 'attention_bias', /o_proj/);
    refusal({ mlp_bias: true }, 'mlp_bias', /mlp_bias/);
    refusal({ quantization_config: { quant_method: 'gptq' } }, 'quantization_config', /gptq.*unquantized/);
    refusal({ num_key_value_heads: 3 }, 'num_key_value_heads', /divide/);
    refusal({ hidden_size: 18 }, 'hidden_size', /multiple/);
    refusal({ vocab_size: 'many' }, 'vocab_size', /vocab_size/);
    refusal({ num_hidden_layers: undefined }, 'num_hidden_layers', /missing/);
  });

  it('Qwen2: q/k/v bias always, sliding window only when enabled', () => {
    const base = { architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', tie_word_embeddings: true };
    const r = resolveModelConfig(FILE, tinyConfig({ ...base, use_sliding_window: false, sliding_window: 64 }));
    assert.equal(r.native.attentionBias, true);
    assert.equal(r.native.tieWordEmbeddings, true);
    assert.equal(r.slidingWindow, null);
    const sw = resolveModelConfig(FILE, tinyConfig({ ...base, use_sliding_window: true, sliding_window: 64, max_window_layers: 1 }));
    assert.equal(sw.slidingWindow, 64);
    assert.match(sw.warnings[0] ?? '', /64 tokens/);
    const none = resolveModelConfig(FILE, tinyConfig({ ...base, use_sliding_window: true, sliding_window: 64, max_window_layers: 2 }));
    assert.equal(none.slidingWindow, null);
  });

  it('Mistral: sliding window exposed when below max positions (default 4096 when absent)', () => {
    const m = { architectures: ['MistralForCausalLM'], model_type: 'mistral' };
    assert.equal(resolveModelConfig(FILE, tinyConfig({ ...m, sliding_window: 32 })).slidingWindow, 32);
    assert.equal(resolveModelConfig(FILE, tinyConfig({ ...m, sliding_window: 4096 })).slidingWindow, null); // >= 128 positions
    assert.equal(resolveModelConfig(FILE, tinyConfig({ ...m, sliding_window: null })).slidingWindow, null);
    assert.equal(resolveModelConfig(FILE, tinyConfig({ ...m, max_position_embeddings: 32768 })).slidingWindow, 4096);
    assert.equal(resolveModelConfig(FILE, tinyConfig({ ...m, attention_bias: true })).native.attentionBias, false);
  });
});
