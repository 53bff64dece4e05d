// The model-loading layer against the checkpoints, adapters and token ids that
// transformers + PEFT produced (tests/reference/make_fixtures.py -> tests/fixtures/).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { openAdapter } from '../../main/model/adapter.js';
import { openCheckpoint } from '../../main/model/checkpoint.js';
import { loadTokenizer } from '../../main/model/tokenizer.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));

const manifestSchema = z.object({
  documentText: z.string(),
  promptText: z.string(),
  tokenizer: z.array(z.object({ text: z.string(), withSpecial: z.array(z.number()), withoutSpecial: z.array(z.number()), decoded: z.string() })),
  models: z.record(z.string(), z.object({ dir: z.string(), adapters: z.record(z.string(), z.string()) })),
  cases: z.array(z.object({ id: z.string(), model: z.string(), documentTokens: z.array(z.number()), promptTokens: z.array(z.number()) }).loose()),
});
const manifest = manifestSchema.parse(JSON.parse(readFileSync(join(FIXTURES, 'reference/manifest.json'), 'utf8')));

function modelDir(name: string): string {
  return join(FIXTURES, manifest.models[name]!.dir);
}
function adapterDir(model: string, adapter: string): string {
  return join(FIXTURES, manifest.models[model]!.adapters[adapter]!);
}

describe('HF fixtures: tokenizer parity with transformers', () => {
  it('every reference text encodes and decodes as transformers does', async () => {
    const tok = await loadTokenizer(modelDir('llama-gqa-bf16'));
    for (const e of manifest.tokenizer) {
      assert.deepEqual(tok.encodeDocument(e.text), e.withSpecial, JSON.stringify(e.text));
      assert.deepEqual(tok.encodePrompt(e.text), e.withoutSpecial, JSON.stringify(e.text));
      if (e.withSpecial.length > 0) assert.equal(tok.decode(e.withSpecial, { skipSpecialTokens: true }), e.decoded, JSON.stringify(e.text));
    }
    const llamaCase = manifest.cases.find((c) => c.model === 'llama-gqa-bf16')!;
    assert.deepEqual(tok.encodeDocument(manifest.documentText), llamaCase.documentTokens);
    assert.deepEqual(tok.encodePrompt(manifest.promptText), llamaCase.promptTokens);
  });
});

describe('HF fixtures: checkpoints written by save_pretrained', () => {
  it('llama-gqa-bf16: sharded, tied, BF16, transformers-5 rope_parameters', async () => {
    const ck = await openCheckpoint(modelDir('llama-gqa-bf16'));
    const index = JSON.parse(readFileSync(join(modelDir('llama-gqa-bf16'), 'model.safetensors.index.json'), 'utf8')) as {
      metadata: { total_parameters: number; total_size: number };
    };
    assert.equal(ck.format, 'sharded');
    assert.equal(ck.files.length, 2);
    assert.equal(ck.dtypeSummary, 'BF16');
    assert.equal(ck.parameterCount, index.metadata.total_parameters);
    assert.equal(ck.totalBytes, index.metadata.total_size);
    assert.equal(ck.config.torchDtype, 'bfloat16');
    assert.equal(ck.config.ropeSource, 'rope_parameters');
    assert.deepEqual(ck.config.native, {
      vocabSize: 32000, hiddenSize: 64, intermediateSize: 160, numLayers: 4, numHeads: 4, numKvHeads: 2, headDim: 16,
      rmsNormEps: 1e-5, ropeTheta: 10000, ropeScaling: { type: 'default' }, maxPositionEmbeddings: 2048,
      tieWordEmbeddings: true, attentionBias: false,
    });
    assert.ok(!ck.tensors.some((t) => t.name === 'lm_head.weight'));
    assert.deepEqual(ck.warnings, []);
  });

  it('llama-untied-f32-llama3: legacy rope_theta + rope_scaling llama3, untied', async () => {
    const ck = await openCheckpoint(modelDir('llama-untied-f32-llama3'));
    assert.equal(ck.config.ropeSource, 'rope_scaling');
    assert.equal(ck.config.native.ropeTheta, 500000);
    assert.deepEqual(ck.config.native.ropeScaling, { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 32 });
    assert.equal(ck.config.native.headDim, 16); // explicit, != hidden / heads
    assert.equal(ck.dtypeSummary, 'F32');
    assert.deepEqual(ck.tensors.at(-1)!.shape, [512, 48]);
  });

  it('qwen2-bias-f16: q/k/v biases, F16', async () => {
    const ck = await openCheckpoint(modelDir('qwen2-bias-f16'));
    assert.equal(ck.config.native.attentionBias, true);
    assert.equal(ck.config.slidingWindow, null);
    assert.equal(ck.dtypeSummary, 'F16');
    assert.equal(ck.tensors.filter((t) => t.name.endsWith('.bias')).length, 2 * 3);
  });

  it('mistral-mqa-f32: one KV head, no sliding window', async () => {
    const ck = await openCheckpoint(modelDir('mistral-mqa-f32'));
    assert.equal(ck.config.architecture, 'MistralForCausalLM');
    assert.equal(ck.config.native.numKvHeads, 1);
    assert.equal(ck.config.slidingWindow, null);
  });
});

describe('HF fixtures: adapters written by PEFT save_pretrained', () => {
  async function spec(model: string, adapter: string) {
    const ck = await openCheckpoint(modelDir(model));
    return openAdapter(adapterDir(model, adapter), ck.config.native);
  }
  const rows = (s: Awaited<ReturnType<typeof spec>>) => s.spec.modules.map((m) => [m.layer, m.module, m.rank, m.scale]);

  it('qv-r8: alpha / r', async () => {
    const s = await spec('llama-gqa-bf16', 'qv-r8');
    assert.deepEqual(rows(s), [0, 1, 2, 3].flatMap((l) => [[l, 'q_proj', 8, 2], [l, 'v_proj', 8, 2]]));
    assert.deepEqual(s.spec.modules[1]!.b.shape, [32, 8]);
  });

  it('all-linear-rslora: every Linear, alpha / sqrt(r)', async () => {
    const s = await spec('llama-gqa-bf16', 'all-linear-rslora');
    assert.equal(s.spec.modules.length, 4 * 7);
    assert.ok(s.spec.modules.every((m) => m.rank === 4 && m.scale === 4));
    assert.deepEqual(s.summary.targetModules, ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
  });

  it('patterns: layers_to_transform, rank_pattern, alpha_pattern', async () => {
    const s = await spec('llama-gqa-bf16', 'patterns');
    assert.deepEqual(rows(s), [1, 3].flatMap((l) => [[l, 'k_proj', 4, 1], [l, 'v_proj', 6, 4 / 6], [l, 'down_proj', 4, 3]]));
    assert.deepEqual(s.summary.layers, [1, 3]);
  });

  it('qv-r4 on the llama3-rope model, qkvo-r4 on Qwen2, regex-v-up on Mistral', async () => {
    assert.deepEqual(rows(await spec('llama-untied-f32-llama3', 'qv-r4')), [0, 1, 2].flatMap((l) => [[l, 'q_proj', 4, 2], [l, 'v_proj', 4, 2]]));
    const q = await spec('qwen2-bias-f16', 'qkvo-r4');
    assert.deepEqual(rows(q), [0, 1].flatMap((l) => ['q_proj', 'k_proj', 'v_proj', 'o_proj'].map((m) => [l, m, 4, 4])));
    assert.deepEqual(rows(await spec('mistral-mqa-f32', 'regex-v-up')), [[1, 'v_proj', 2, 1], [1, 'up_proj', 2, 1]]);
  });
});
