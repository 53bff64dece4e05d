import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { LoraModuleName } from '../../main/engine/native-types.js';
import { openAdapter } from '../../main/model/adapter.js';
import { pythonToRe2 } from '../../main/model/python-regex.js';
import { LORA_MODULES } from '../../main/model/checkpoint.js';
import { LoadError } from '../../main/model/errors.js';
import { decodeToFloat32, readTensorBytes } from '../../main/model/safetensors.js';
import { type AdapterOptions, TINY_NATIVE, adapterConfig, allModules, loraName, tempDir, valuesFor, writeAdapter } from './model-fixtures.js';

const ALL = LORA_MODULES;

function isLoadError(check: (e: LoadError) => void): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof LoadError, String(e));
    check(e);
    return true;
  };
}

function pairs(mods: { layer: number; module: LoraModuleName }[]): string[] {
  return mods.map((m) => `${m.layer}.${m.module}`);
}

describe('PEFT adapter folder', () => {
  let root = '';
  let cleanup = async () => {};
  let n = 0;
  before(async () => {
    ({ dir: root, cleanup } = await tempDir());
  });
  after(() => cleanup());

  async function make(options: AdapterOptions = {}): Promise<string> {
    const dir = join(root, `ad${n++}`);
    await writeAdapter(dir, TINY_NATIVE, options);
    return dir;
  }

  async function refused(options: AdapterOptions, file: 'adapter_config.json' | 'adapter_model.safetensors', field: string, pattern: RegExp): Promise<void> {
    const dir = await make(options);
    await assert.rejects(
      openAdapter(dir, TINY_NATIVE),
      isLoadError((e) => {
        assert.equal(e.file, join(dir, file), e.message);
        assert.equal(e.field, field, e.message);
        assert.ok(e.message.includes(join(dir, file)), e.message);
        assert.match(e.message, pattern);
      }),
    );
  }

  it('list target_modules: spec, scales, shapes and offsets', async () => {
    const dir = await make();
    const { spec, summary } = await openAdapter(dir, TINY_NATIVE);
    assert.deepEqual(pairs(spec.modules), ['0.q_proj', '0.v_proj', '1.q_proj', '1.v_proj']);
    for (const m of spec.modules) {
      assert.equal(m.rank, 4);
      assert.equal(m.scale, 2);
      assert.equal(m.a.name, loraName(m.layer, m.module, 'A'));
      assert.equal(m.a.file, join(dir, 'adapter_model.safetensors'));
      assert.deepEqual(m.a.shape, [4, 16]);
      assert.deepEqual(m.b.shape, m.module === 'q_proj' ? [16, 4] : [8, 4]);
      for (const ref of [m.a, m.b]) {
        const numel = ref.shape[0]! * ref.shape[1]!;
        assert.deepEqual([...decodeToFloat32(await readTensorBytes(ref), ref.dtype)], [...valuesFor(ref.name, numel)]);
      }
    }
    assert.equal(summary.name, `ad${n - 1}`);
    assert.equal(summary.r, 4);
    assert.equal(summary.alpha, 8);
    assert.deepEqual(summary.targetModules, ['q_proj', 'v_proj']);
    assert.deepEqual(summary.layers, [0, 1]);
    assert.equal(summary.maxRank, 4);
    assert.equal(summary.baseModelNameOrPath, 'tiny-llama');
    assert.equal(summary.parameterCount, 2 * (4 * 16 + 16 * 4 + 4 * 16 + 8 * 4));
    assert.equal(summary.bytes, summary.parameterCount * 4);
    assert.equal(summary.dtypeSummary, 'F32');
    assert.deepEqual(summary.warnings, []);
  });

  it('accepts ".default." tensor names and BF16', async () => {
    const dir = await make({ defaultInfix: true, dtype: 'BF16' });
    const { spec, summary } = await openAdapter(dir, TINY_NATIVE);
    assert.equal(spec.modules.length, 4);
    assert.equal(spec.modules[0]!.a.name, loraName(0, 'q_proj', 'A', true));
    assert.equal(summary.dtypeSummary, 'BF16');
  });

  it('regex target_modules uses full-match semantics', async () => {
    const dir = await make({ config: adapterConfig({ target_modules: '.*\\.(q_proj|o_proj)' }), modules: allModules(2, ['q_proj', 'o_proj'], 4) });
    assert.deepEqual(pairs((await openAdapter(dir, TINY_NATIVE)).spec.modules), ['0.q_proj', '0.o_proj', '1.q_proj', '1.o_proj']);
    // A partial match does not count: "q_proj" alone full-matches no module key.
    await refused({ config: adapterConfig({ target_modules: 'q_proj' }) }, 'adapter_config.json', 'target_modules', /selects no Linear layer/);
    const one = await make({
      config: adapterConfig({ target_modules: 'model\\.layers\\.(?P<l>1)\\.(self_attn|mlp)\\.(v_proj|down_proj)' }),
      modules: [{ layer: 1, module: 'v_proj', rank: 4 }, { layer: 1, module: 'down_proj', rank: 4 }],
    });
    assert.deepEqual(pairs((await openAdapter(one, TINY_NATIVE)).spec.modules), ['1.v_proj', '1.down_proj']);
  });

  it('"all-linear" is every Linear except lm_head', async () => {
    const dir = await make({ config: adapterConfig({ target_modules: 'all-linear' }), modules: allModules(2, ALL, 4) });
    const { spec, summary } = await openAdapter(dir, TINY_NATIVE);
    assert.equal(spec.modules.length, 14);
    assert.deepEqual(summary.targetModules, [...ALL]);
    const down = spec.modules.find((m) => m.module === 'down_proj')!;
    assert.deepEqual(down.a.shape, [4, 24]);
    assert.deepEqual(down.b.shape, [16, 4]);
    const gate = spec.modules.find((m) => m.module === 'gate_proj')!;
    assert.deepEqual(gate.b.shape, [24, 4]);
    const o = spec.modules.find((m) => m.module === 'o_proj')!;
    assert.deepEqual(o.a.shape, [4, 16]);
  });

  it('layers_to_transform (list or int) with and without layers_pattern', async () => {
    const only1 = [{ layer: 1, module: 'q_proj' as const, rank: 4 }, { layer: 1, module: 'v_proj' as const, rank: 4 }];
    const a = await make({ config: adapterConfig({ layers_to_transform: [1] }), modules: only1 });
    assert.deepEqual((await openAdapter(a, TINY_NATIVE)).summary.layers, [1]);
    const b = await make({ config: adapterConfig({ layers_to_transform: 1, layers_pattern: 'layers' }), modules: only1 });
    assert.deepEqual((await openAdapter(b, TINY_NATIVE)).summary.layers, [1]);
    const c = await make({ config: adapterConfig({ layers_to_transform: [0], layers_pattern: ['h', 'layers'] }), modules: allModules(1, ['q_proj', 'v_proj'], 4) });
    assert.deepEqual((await openAdapter(c, TINY_NATIVE)).summary.layers, [0]);
    // A pattern that names no layer list selects nothing (as in PEFT).
    await refused({ config: adapterConfig({ layers_to_transform: [0], layers_pattern: 'h' }) }, 'adapter_config.json', 'target_modules', /selects no Linear layer/);
    // Tensors for a layer the config leaves out are unexpected.
    await refused({ config: adapterConfig({ layers_to_transform: [1] }) }, 'adapter_model.safetensors', loraName(0, 'q_proj', 'A'), /does not target/);
    await refused({ config: adapterConfig({ layers_to_transform: [1], target_modules: '.*q_proj' }) }, 'adapter_config.json', 'layers_to_transform', /regular expression/);
    await refused({ config: adapterConfig({ layers_pattern: 'layers' }) }, 'adapter_config.json', 'layers_pattern', /without "layers_to_transform"/);
  });

  it('rank_pattern / alpha_pattern pick the first matching key', async () => {
    const cfg = adapterConfig({
      target_modules: ['q_proj', 'v_proj', 'down_proj'],
      rank_pattern: { 'model.layers.1.self_attn.q_proj': 2, v_proj: 6, 'layers.1.self_attn.v_proj': 3, 'mlp\\.down_proj': 1 },
      alpha_pattern: { 'layers\\.[01]\\.self_attn\\.v_proj': 12 },
    });
    const modules = [
      { layer: 0, module: 'q_proj' as const, rank: 4 },
      { layer: 0, module: 'v_proj' as const, rank: 6 },
      { layer: 0, module: 'down_proj' as const, rank: 1 },
      { layer: 1, module: 'q_proj' as const, rank: 2 },
      { layer: 1, module: 'v_proj' as const, rank: 6 }, // "v_proj" comes first in rank_pattern
      { layer: 1, module: 'down_proj' as const, rank: 1 },
    ];
    const dir = await make({ config: cfg, modules });
    const { spec, summary } = await openAdapter(dir, TINY_NATIVE);
    const got = spec.modules.map((m) => [m.layer, m.module, m.rank, m.scale]);
    assert.deepEqual(got, [
      [0, 'q_proj', 4, 2],
      [0, 'v_proj', 6, 2],
      [0, 'down_proj', 1, 8],
      [1, 'q_proj', 2, 4],
      [1, 'v_proj', 6, 2],
      [1, 'down_proj', 1, 8],
    ]);
    assert.equal(summary.maxRank, 6);
    assert.equal(summary.perModule[1]!.alpha, 12);
    // A rank that contradicts rank_pattern is caught on the tensor.
    await refused(
      { config: adapterConfig({ rank_pattern: { q_proj: 2 } }) },
      'adapter_model.safetensors',
      loraName(0, 'q_proj', 'A'),
      /shape \[4, 16\], expected \[2, 16\].*rank_pattern gives 2/,
    );
  });

  it('rsLoRA scales by alpha / sqrt(r)', async () => {
    const dir = await make({ config: adapterConfig({ use_rslora: true, r: 16, lora_alpha: 8 }) });
    const { spec, summary } = await openAdapter(dir, TINY_NATIVE);
    assert.ok(spec.modules.every((m) => m.scale === 2 && m.rank === 16));
    assert.equal(summary.useRslora, true);
  });

  it('fan_in_fan_out is reset to false with a warning, as PEFT does', async () => {
    const dir = await make({ config: adapterConfig({ fan_in_fan_out: true }) });
    const { summary } = await openAdapter(dir, TINY_NATIVE);
    assert.match(summary.warnings.join('\n'), /fan_in_fan_out.*false/);
  });

  it('exclude_modules (list and regex) and missing target_modules', async () => {
    const a = await make({ config: adapterConfig({ exclude_modules: ['model.layers.0.self_attn.q_proj'] }), modules: [{ layer: 0, module: 'v_proj', rank: 4 }, { layer: 1, module: 'q_proj', rank: 4 }, { layer: 1, module: 'v_proj', rank: 4 }] });
    assert.deepEqual(pairs((await openAdapter(a, TINY_NATIVE)).spec.modules), ['0.v_proj', '1.q_proj', '1.v_proj']);
    const b = await make({ config: adapterConfig({ exclude_modules: '.*\\.1\\..*' }), modules: allModules(1, ['q_proj', 'v_proj'], 4) });
    assert.deepEqual(pairs((await openAdapter(b, TINY_NATIVE)).spec.modules), ['0.q_proj', '0.v_proj']);
    const c = await make({ config: adapterConfig({ target_modules: null }) });
    const opened = await openAdapter(c, TINY_NATIVE);
    assert.equal(opened.spec.modules.length, 4);
    assert.match(opened.summary.warnings[0] ?? '', /default/);
  });

  it('refuses DoRA, modules_to_save, bias, lora_bias, megatron, other PEFT types', async () => {
    await refused({ config: adapterConfig({ use_dora: true }) }, 'adapter_config.json', 'use_dora', /DoRA.*use_dora=False/);
    await refused({ config: adapterConfig({ modules_to_save: ['lm_head'] }) }, 'adapter_config.json', 'modules_to_save', /"lm_head".*retrain without modules_to_save/);
    await refused({ config: adapterConfig({ bias: 'lora_only' }) }, 'adapter_config.json', 'bias', /"lora_only".*bias="none"/);
    await refused({ config: adapterConfig({ lora_bias: true }) }, 'adapter_config.json', 'lora_bias', /lora_bias=False/);
    await refused({ config: adapterConfig({ megatron_config: { tensor_model_parallel_size: 2 } }) }, 'adapter_config.json', 'megatron_config', /Megatron/);
    await refused({ config: adapterConfig({ arrow_config: { top_k: 2 } }) }, 'adapter_config.json', 'arrow_config', /Arrow/);
    await refused({ config: adapterConfig({ use_bdlora: true }) }, 'adapter_config.json', 'use_bdlora', /block-diagonal/);
    await refused({ config: adapterConfig({ peft_type: 'LOHA' }) }, 'adapter_config.json', 'peft_type', /"LOHA".*LoRA adapters only/);
    await refused({ config: adapterConfig({ r: 0 }) }, 'adapter_config.json', 'r', /field "r"/);
  });

  it('refuses LoRA on embed_tokens / lm_head and targets a Llama layer does not have', async () => {
    await refused({ config: adapterConfig({ target_modules: ['q_proj', 'embed_tokens'] }) }, 'adapter_config.json', 'target_modules', /model\.embed_tokens.*does not support/);
    await refused({ config: adapterConfig({ target_modules: ['lm_head'] }) }, 'adapter_config.json', 'target_modules', /lm_head/);
    await refused({ config: adapterConfig({ target_modules: ['q_proj', 'c_attn'] }) }, 'adapter_config.json', 'target_modules', /"c_attn".*another architecture/);
    await refused({ config: adapterConfig({ target_modules: ['self_attn'] }) }, 'adapter_config.json', 'target_modules', /not an adaptable Linear/);
    await refused({ config: adapterConfig({ target_modules: '.*(?<!v)_proj' }) }, 'adapter_config.json', 'target_modules', /cannot use.*lookahead or lookbehind/);
  });

  it('refuses missing, unexpected and misshapen tensors', async () => {
    await refused({ omit: [loraName(1, 'v_proj', 'B')] }, 'adapter_model.safetensors', loraName(1, 'v_proj', 'B'), /is missing/);
    await refused(
      { modules: [...allModules(2, ['q_proj', 'v_proj'], 4), { layer: 0, module: 'k_proj', rank: 4 }] },
      'adapter_model.safetensors',
      loraName(0, 'k_proj', 'A'),
      /does not target/,
    );
    await refused(
      { modules: [...allModules(3, ['q_proj', 'v_proj'], 4)] },
      'adapter_model.safetensors',
      loraName(2, 'q_proj', 'A'),
      /trained for a base with 3 layers \/ hidden size 16 \/ q_proj 16→16, v_proj 16→8; the chosen model has 2 layers \/ hidden size 16 .*names "tiny-llama".*adapts layer 2, but the base model has 2 layers/,
    );
    // Every targeted module present up to some layer and none after it: a shallower base, not a torn file.
    const shallow = { ...TINY_NATIVE, numLayers: 4 };
    const shallowDir = await make();
    await assert.rejects(
      openAdapter(shallowDir, shallow),
      isLoadError((e) => {
        assert.match(e.message, /trained for a base with 2 layers \/ hidden size 16 \/ q_proj 16→16, v_proj 16→8; the chosen model has 4 layers \/ hidden size 16/);
        assert.match(e.message, /or check that adapter_model\.safetensors is complete/);
        assert.doesNotMatch(e.message, /is missing/);
      }),
    );
    // A wider base: the adapter's shapes agree with each other, not with the model.
    const wide = { ...TINY_NATIVE, hiddenSize: TINY_NATIVE.hiddenSize * 2 };
    await assert.rejects(
      openAdapter(await make(), wide),
      isLoadError((e) => {
        assert.match(e.message, new RegExp(`trained for a base with 2 layers / hidden size 16 / q_proj 16→16, v_proj 16→8; the chosen model has 2 layers / hidden size ${wide.hiddenSize} / q_proj ${wide.hiddenSize}→16`));
        assert.doesNotMatch(e.message, /safetensors is complete/);
      }),
    );
    await refused(
      { shapes: { [loraName(0, 'v_proj', 'B')]: [16, 4] } },
      'adapter_model.safetensors',
      loraName(0, 'v_proj', 'B'),
      /shape \[16, 4\], expected \[8, 4\] = \[out_features, r\].*num_key_value_heads=2/,
    );
    const magnitude = `base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector`;
    await refused({ extra: [{ name: magnitude, dtype: 'F32', shape: [16], data: new Float32Array(16) }] }, 'adapter_model.safetensors', magnitude, /DoRA/);
    const emb = 'base_model.model.model.embed_tokens.lora_embedding_A';
    await refused({ extra: [{ name: emb, dtype: 'F32', shape: [4, 32], data: new Float32Array(128) }] }, 'adapter_model.safetensors', emb, /embedding/);
  });

  it('refuses .bin-only adapters with the fix, and non-adapter folders', async () => {
    const dir = await make();
    await rm(join(dir, 'adapter_model.safetensors'));
    await writeFile(join(dir, 'adapter_model.bin'), 'pickle');
    await assert.rejects(openAdapter(dir, TINY_NATIVE), isLoadError((e) => {
      assert.equal(e.file, join(dir, 'adapter_model.bin'));
      assert.match(e.message, /save_file\(torch\.load\('adapter_model\.bin'/);
      assert.match(e.message, /safe_serialization=True/);
    }));
    const empty = join(root, 'empty');
    await mkdir(empty);
    await assert.rejects(openAdapter(empty, TINY_NATIVE), isLoadError((e) => {
      assert.equal(e.file, empty);
      assert.match(e.message, /no adapter_config\.json; a PEFT adapter folder is expected/);
    }));
  });

  it('is cancellable and reports progress', async () => {
    const dir = await make();
    const progress: number[] = [];
    await openAdapter(dir, TINY_NATIVE, { onProgress: (d) => progress.push(d) });
    assert.deepEqual(progress, [0, 1, 2]);
    const ac = new AbortController();
    await assert.rejects(
      openAdapter(dir, TINY_NATIVE, { signal: ac.signal, onProgress: (d) => { if (d === 1) ac.abort(); } }),
      (e: unknown) => e instanceof Error && e.name === 'AbortError',
    );
  });

  it('translates Python regex syntax to RE2 and refuses what a linear-time matcher cannot run', () => {
    assert.equal(pythonToRe2('(?P<x>a)\\Z'), '(?P<x>a)\\z');
    assert.equal(pythonToRe2('\\Aq_proj'), '\\Aq_proj');
    assert.equal(pythonToRe2('a\\\\Z'), 'a\\\\Z');
    assert.equal(pythonToRe2('(?i)q'), '(?i)q');
    assert.equal(pythonToRe2('(?au:q)'), '(?:q)');
    assert.equal(pythonToRe2('x{,2}'), 'x{0,2}');
    assert.throws(() => pythonToRe2('(?P<x>a)(?P=x)'), /back-reference/);
    assert.throws(() => pythonToRe2('(a)\\1'), /back-reference/);
    assert.throws(() => pythonToRe2('q(?=_proj)'), /lookahead or lookbehind/);
  });
});
