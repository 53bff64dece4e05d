import assert from 'node:assert/strict';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { NativeModelConfig } from '../../main/engine/native-types.js';
import { expectedModelTensors, openCheckpoint } from '../../main/model/checkpoint.js';
import { LoadError } from '../../main/model/errors.js';
import { decodeToFloat32, float32ToBf16, float32ToF16, readTensorBytes, bf16ToFloat32, f16ToFloat32 } from '../../main/model/safetensors.js';
import { TINY_NATIVE, tempDir, tinyConfig, valuesFor, writeCheckpoint } from './model-fixtures.js';

function isLoadError(check: (e: LoadError) => void): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof LoadError, String(e));
    check(e);
    return true;
  };
}

/** The values the fixture wrote, after the dtype's rounding. */
function storedValues(name: string, n: number, dtype: 'F32' | 'F16' | 'BF16'): number[] {
  const v = valuesFor(name, n);
  if (dtype === 'F32') return [...v];
  return dtype === 'BF16' ? [...bf16ToFloat32(float32ToBf16(v))] : [...f16ToFloat32(float32ToF16(v))];
}

describe('checkpoint folder', () => {
  let root = '';
  let cleanup = async () => {};
  let n = 0;
  const fresh = () => join(root, `ck${n++}`);
  before(async () => {
    ({ dir: root, cleanup } = await tempDir());
  });
  after(() => cleanup());

  const TIED: NativeModelConfig = { ...TINY_NATIVE, tieWordEmbeddings: true };

  it('opens a single-file BF16 untied checkpoint; every offset points at its bytes', async () => {
    const dir = fresh();
    await writeCheckpoint(dir, TINY_NATIVE, { dtype: 'BF16' });
    const progress: [number, number][] = [];
    const ck = await openCheckpoint(dir, { onProgress: (d, t) => progress.push([d, t]) });
    assert.deepEqual(ck.config.native, TINY_NATIVE);
    assert.equal(ck.format, 'single');
    assert.deepEqual(ck.files, [join(dir, 'model.safetensors')]);
    assert.equal(ck.dtypeSummary, 'BF16');
    assert.deepEqual(progress, [[0, 1], [1, 1]]);
    const expected = expectedModelTensors(TINY_NATIVE);
    assert.deepEqual(ck.tensors.map((t) => t.name), expected.map((e) => e.name));
    assert.equal(ck.tensors.length, 1 + 2 * 9 + 1 + 1);
    assert.equal(ck.tensors.at(-1)!.name, 'lm_head.weight');
    const params = expected.reduce((a, e) => a + e.shape.reduce((x, y) => x * y, 1), 0);
    assert.equal(ck.parameterCount, params);
    assert.equal(ck.totalBytes, params * 2);
    for (const t of ck.tensors) {
      const numel = t.shape.reduce((a, b) => a * b, 1);
      assert.equal(t.nbytes, numel * 2);
      assert.deepEqual([...decodeToFloat32(await readTensorBytes(t), t.dtype)], storedValues(t.name, numel, 'BF16'), t.name);
    }
    const q = ck.tensors.find((t) => t.name === 'model.layers.1.self_attn.q_proj.weight')!;
    assert.deepEqual(q.shape, [16, 16]);
    assert.deepEqual(ck.tensors.find((t) => t.name === 'model.layers.0.self_attn.k_proj.weight')!.shape, [8, 16]);
    assert.deepEqual(ck.tensors.find((t) => t.name === 'model.layers.0.mlp.down_proj.weight')!.shape, [16, 24]);
  });

  it('tied F16 checkpoint: lm_head omitted from the table, a stored copy ignored', async () => {
    const dir = fresh();
    await writeCheckpoint(dir, TIED, { config: tinyConfig({ tie_word_embeddings: true }), dtype: 'F16', writeLmHead: true });
    const ck = await openCheckpoint(dir);
    assert.equal(ck.config.native.tieWordEmbeddings, true);
    assert.equal(ck.dtypeSummary, 'F16');
    assert.ok(!ck.tensors.some((t) => t.name === 'lm_head.weight'));
    assert.deepEqual(ck.warnings, []);
  });

  it('sharded F32 checkpoint with index.json (rope_parameters form)', async () => {
    const dir = fresh();
    const cfg = tinyConfig({ rope_theta: undefined, rope_parameters: { rope_type: 'default', rope_theta: 10000 } });
    await writeCheckpoint(dir, TINY_NATIVE, { config: cfg, dtype: 'F32', shards: 3, extra: [{ name: 'model.layers.0.self_attn.rotary_emb.inv_freq', dtype: 'F32', shape: [2], data: new Float32Array(2) }] });
    const ck = await openCheckpoint(dir);
    assert.equal(ck.format, 'sharded');
    assert.equal(ck.files.length, 3);
    assert.equal(ck.indexFile, join(dir, 'model.safetensors.index.json'));
    assert.equal(ck.config.ropeSource, 'rope_parameters');
    assert.equal(new Set(ck.tensors.map((t) => t.file)).size, 3);
    assert.deepEqual(ck.warnings, []); // inv_freq is ignored silently
    for (const t of ck.tensors) {
      const numel = t.shape.reduce((a, b) => a * b, 1);
      assert.deepEqual([...decodeToFloat32(await readTensorBytes(t), 'F32')], storedValues(t.name, numel, 'F32'));
    }
  });

  it('Qwen2 checkpoint carries q/k/v biases', async () => {
    const dir = fresh();
    const native: NativeModelConfig = { ...TINY_NATIVE, attentionBias: true };
    await writeCheckpoint(dir, native, { config: tinyConfig({ architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2' }) });
    const ck = await openCheckpoint(dir);
    const names = ck.tensors.map((t) => t.name);
    assert.ok(names.includes('model.layers.0.self_attn.q_proj.bias'));
    assert.deepEqual(ck.tensors.find((t) => t.name === 'model.layers.1.self_attn.v_proj.bias')!.shape, [8]);
    assert.ok(!names.includes('model.layers.0.self_attn.o_proj.bias'));
  });

  it('warns about unused tensors', async () => {
    const dir = fresh();
    await writeCheckpoint(dir, TINY_NATIVE, { extra: [{ name: 'model.layers.0.self_attn.q_proj.bias', dtype: 'F32', shape: [16], data: new Float32Array(16) }] });
    const ck = await openCheckpoint(dir);
    assert.match(ck.warnings[0] ?? '', /1 tensor\(s\).*q_proj\.bias/);
  });

  it('refuses a shape that disagrees with config.json', async () => {
    const dir = fresh();
    await writeCheckpoint(dir, TINY_NATIVE, { shapes: { 'model.layers.1.self_attn.k_proj.weight': [16, 16] } });
    await assert.rejects(
      openCheckpoint(dir),
      isLoadError((e) => {
        assert.equal(e.field, 'model.layers.1.self_attn.k_proj.weight');
        assert.equal(e.file, join(dir, 'model.safetensors'));
        assert.match(e.message, /tensor model\.layers\.1\.self_attn\.k_proj\.weight in model\.safetensors has shape \[16, 16\], expected \[8, 16\] from config\.json \(hidden_size=16, num_key_value_heads=2, head_dim=4\)/);
      }),
    );
  });

  it('refuses a missing shard, a tensor absent from its shard, a missing tensor, a missing lm_head', async () => {
    const dir = fresh();
    await writeCheckpoint(dir, TINY_NATIVE, { shards: 2 });
    const shard2 = join(dir, 'model-00002-of-00002.safetensors');
    const bytes = await readFile(shard2);
    await rm(shard2);
    await assert.rejects(openCheckpoint(dir), isLoadError((e) => {
      assert.equal(e.file, shard2);
      assert.match(e.message, /missing; download every shard/);
    }));
    await writeFile(shard2, bytes);

    const indexFile = join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(await readFile(indexFile, 'utf8')) as { weight_map: Record<string, string> };
    index.weight_map['model.layers.9.mlp.up_proj.weight'] = 'model-00001-of-00002.safetensors';
    await writeFile(indexFile, JSON.stringify(index));
    await assert.rejects(openCheckpoint(dir), isLoadError((e) => {
      assert.equal(e.field, 'model.layers.9.mlp.up_proj.weight');
      assert.match(e.message, /header has no such tensor/);
    }));
    delete index.weight_map['model.layers.9.mlp.up_proj.weight'];
    delete index.weight_map['model.norm.weight'];
    await writeFile(indexFile, JSON.stringify(index));
    await assert.rejects(openCheckpoint(dir), isLoadError((e) => {
      assert.equal(e.file, indexFile);
      assert.equal(e.field, 'model.norm.weight');
      assert.match(e.message, /"model\.norm\.weight" is missing from the index/);
    }));

    const noHead = fresh();
    await writeCheckpoint(noHead, TINY_NATIVE, { omit: ['lm_head.weight'] });
    await assert.rejects(openCheckpoint(noHead), isLoadError((e) => {
      assert.equal(e.field, 'lm_head.weight');
      assert.match(e.message, /tie_word_embeddings false/);
    }));
  });

  it('refuses non-float weights, naming the tensor', async () => {
    const dir = fresh();
    await writeCheckpoint(dir, TINY_NATIVE, { omit: ['model.norm.weight'], extra: [{ name: 'model.norm.weight', dtype: 'I32', shape: [16], data: new Uint8Array(64) }] });
    await assert.rejects(openCheckpoint(dir), isLoadError((e) => {
      assert.equal(e.field, 'model.norm.weight');
      assert.match(e.message, /stored as I32/);
    }));
  });

  it('refuses folders that are not Hugging Face checkpoints', async () => {
    await assert.rejects(openCheckpoint(join(root, 'absent')), isLoadError((e) => assert.match(e.message, /does not exist/)));
    const empty = fresh();
    await mkdir(empty);
    await assert.rejects(openCheckpoint(empty), isLoadError((e) => {
      assert.equal(e.file, empty);
      assert.match(e.message, /no config\.json; a Hugging Face checkpoint folder is expected/);
    }));
    await writeFile(join(empty, 'config.json'), JSON.stringify(tinyConfig()));
    await assert.rejects(openCheckpoint(empty), isLoadError((e) => assert.match(e.message, /no weights/)));
    await writeFile(join(empty, 'pytorch_model.bin'), 'not really');
    await assert.rejects(openCheckpoint(empty), isLoadError((e) => {
      assert.equal(e.file, join(empty, 'pytorch_model.bin'));
      assert.match(e.message, /convert it to safetensors/);
      assert.match(e.message, /safe_serialization=True/);
    }));
    const bad = fresh();
    await writeCheckpoint(bad, TINY_NATIVE, { config: tinyConfig({ architectures: ['PhiForCausalLM'] }) });
    await assert.rejects(openCheckpoint(bad), isLoadError((e) => {
      assert.equal(e.file, join(bad, 'config.json'));
      assert.equal(e.field, 'architectures[0]');
    }));
  });

  it('is cancellable', async () => {
    const dir = fresh();
    await writeCheckpoint(dir, TINY_NATIVE, { shards: 3 });
    const ac = new AbortController();
    await assert.rejects(
      openCheckpoint(dir, { signal: ac.signal, onProgress: (done) => { if (done === 1) ac.abort(); } }),
      (e: unknown) => e instanceof Error && e.name === 'AbortError',
    );
    const pre = new AbortController();
    pre.abort();
    await assert.rejects(openCheckpoint(dir, { signal: pre.signal }), (e: unknown) => e instanceof Error && e.name === 'AbortError');
  });
});
