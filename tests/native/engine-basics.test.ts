// Unit checks of the native CPU engine against a naive float64 reference forward pass
// (tiny-model.ts). Tiny random checkpoints are written to a temp dir as real safetensors
// files. (HF-parity against transformers fixtures lives in tests/parity/.)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { NativeKvCache, NativeModel, NativeModelConfig, NativeSampling, NativeTensorRef } from '../../main/engine/native-types.js';
import {
  addon,
  relErr,
  assertClose,
  assertSame,
  baseConfig,
  writeCheckpoint,
  allModules,
  writeAdapter,
  refForward,
  greedy,
  ids,
  tokenSeq,
  prefillAll,
  checkAgainstReference,
  rejectsWith,
} from './tiny-model.js';
import type { Checkpoint, AdapterFile } from './tiny-model.js';

// ---------------------------------------------------------------------------------------

let dir = '';
let ckA: Checkpoint; // untied, F32, no bias, default rope, two shards
let ckB: Checkpoint; // tied, F16, biases, llama3 rope
let ckC: Checkpoint; // untied, BF16, biases, linear rope
let modelA: NativeModel;
let modelB: NativeModel;
let modelC: NativeModel;
let adapterQV: AdapterFile; // q_proj + v_proj, rank 4
let adapterAll: AdapterFile; // all seven modules, rank 3, BF16
const T = 11;
const tokens = tokenSeq(T, baseConfig.vocabSize, 99);

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'adapterlens-native-'));
  ckA = writeCheckpoint(dir, 'a', baseConfig, 'F32', 1, 2);
  ckB = writeCheckpoint(dir, 'b', {
    ...baseConfig,
    tieWordEmbeddings: true,
    attentionBias: true,
    // wavelengths 6.3, 63, 628, 6283 against bounds 16 and 64: high, medium and low bands.
    ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 },
  }, 'F16', 2);
  ckC = writeCheckpoint(dir, 'c', { ...baseConfig, attentionBias: true, ropeTheta: 500000, ropeScaling: { type: 'linear', factor: 2.5 } }, 'BF16', 3);
  adapterQV = writeAdapter(dir, 'qv', baseConfig, ['q_proj', 'v_proj'], 4, 2.0, 'F32', 11);
  adapterAll = writeAdapter(dir, 'all', baseConfig, allModules, 3, 0.75, 'BF16', 12);
  [modelA, modelB, modelC] = await Promise.all([ckA, ckB, ckC].map((ck) => addon.loadModel(ck.config, ck.refs, null, null))) as [NativeModel, NativeModel, NativeModel];
});

after(() => {
  for (const m of [modelA, modelB, modelC]) m?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

test('info() describes the CPU backend', () => {
  const info = addon.info();
  assert.equal(info.backend, 'cpu');
  assert.match(info.engineVersion, /^\d+\.\d+\.\d+/);
  assert.ok(Number.isInteger(info.threads) && info.threads >= 1);
  assert.equal(info.device, `x86_64 CPU, ${info.threads} thread${info.threads === 1 ? '' : 's'}`);
});

test('start() starts the device off the JS thread: it settles for every caller, and info() answers after it', async () => {
  assert.deepEqual(await Promise.all([addon.start(), addon.start()]), [undefined, undefined]);
  assert.equal(addon.info().backend, 'cpu');
});

describe('forward pass matches the reference', () => {
  test('GQA, untied, F32, two shards, default RoPE', async () => {
    const { cache, logits } = await prefillAll(modelA, tokens);
    checkAgainstReference(cache, logits, refForward(ckA, tokens), baseConfig.numLayers, 'A');
    assert.equal(modelA.bytes, ckA.floats * 4);
  });

  test('tied embeddings, q/k/v biases, llama3 RoPE, F16', async () => {
    const { cache, logits } = await prefillAll(modelB, tokens);
    checkAgainstReference(cache, logits, refForward(ckB, tokens), baseConfig.numLayers, 'B');
    assert.equal(modelB.bytes, ckB.floats * 4); // tied: no lm_head, and the extra tensor is ignored
  });

  test('untied, biases, linear RoPE, BF16', async () => {
    const { cache, logits } = await prefillAll(modelC, tokens);
    checkAgainstReference(cache, logits, refForward(ckC, tokens), baseConfig.numLayers, 'C');
  });

  test('positions far out exercise every RoPE band', async () => {
    const long = tokenSeq(70, baseConfig.vocabSize, 5);
    const { cache, logits } = await prefillAll(modelB, long, null, 32, 80);
    checkAgainstReference(cache, logits, refForward(ckB, long), baseConfig.numLayers, 'B long');
  });

  test("logits 'last' and 'none'", async () => {
    const all = (await prefillAll(modelA, tokens)).logits;
    const last = await modelA.prefill(modelA.newCache(16), Int32Array.from(tokens), null, { chunkSize: 3, logits: 'last' }, null, null);
    assertSame(last, all.slice((T - 1) * baseConfig.vocabSize), 'last');
    const cache = modelA.newCache(16);
    assert.equal(await modelA.prefill(cache, Int32Array.from(tokens), null, { chunkSize: 3, logits: 'none' }, null, null), null);
    assert.equal(cache.length, T);
  });
});

describe('LoRA (unmerged)', () => {
  test('q_proj + v_proj adapter', async () => {
    const adapter = await modelA.loadAdapter(adapterQV.spec, null, null);
    assert.equal(adapter.rank, 4);
    assert.equal(adapter.bytes, adapterQV.spec.modules.reduce((n, m) => n + m.a.nbytes + m.b.nbytes, 0));
    const { cache, logits } = await prefillAll(modelA, tokens, adapter);
    checkAgainstReference(cache, logits, refForward(ckA, tokens, adapterQV.lora), baseConfig.numLayers, 'A+qv');
    assert.ok(relErr(logits, refForward(ckA, tokens).logits) > 1e-2, 'the adapter changes the logits');
    // Layer 0's K does not depend on a q/v adapter.
    assertSame(cache.readLayer(0).k, (await prefillAll(modelA, tokens)).cache.readLayer(0).k, 'layer 0 K');
    adapter.dispose();
  });

  test('all seven modules, BF16 adapter on an F16 model with biases', async () => {
    const adapter = await modelB.loadAdapter(adapterAll.spec, null, null);
    const { cache, logits } = await prefillAll(modelB, tokens, adapter);
    checkAgainstReference(cache, logits, refForward(ckB, tokens, adapterAll.lora), baseConfig.numLayers, 'B+all');
    adapter.dispose();
  });

  test('loadAdapter reports progress in bytes', async () => {
    const calls: [number, number][] = [];
    const adapter = await modelA.loadAdapter(adapterAll.spec, (d, t) => calls.push([d, t]), null);
    const total = adapterAll.spec.modules.reduce((n, m) => n + m.a.nbytes + m.b.nbytes, 0);
    assert.equal(calls.length, adapterAll.spec.modules.length);
    assert.deepEqual(calls.at(-1), [total, total]);
    adapter.dispose();
  });
});

describe('prefill and decode agree', () => {
  test('chunked prefill equals one-shot prefill, bit for bit', async () => {
    const adapter = await modelC.loadAdapter(adapterAll.spec, null, null);
    const one = await prefillAll(modelC, tokens, adapter, 100);
    for (const chunk of [1, 3, 4]) {
      const c = await prefillAll(modelC, tokens, adapter, chunk);
      assertSame(c.logits, one.logits, `chunk ${chunk} logits`);
      for (let l = 0; l < baseConfig.numLayers; l++) {
        assertSame(c.cache.readLayer(l).k, one.cache.readLayer(l).k, `chunk ${chunk} layer ${l} K`);
        assertSame(c.cache.readLayer(l).v, one.cache.readLayer(l).v, `chunk ${chunk} layer ${l} V`);
      }
    }
    adapter.dispose();
  });

  test('prefill(T) + decode steps equals prefill(T + steps)', async () => {
    const adapter = await modelA.loadAdapter(adapterQV.spec, null, null);
    const V = baseConfig.vocabSize;
    const full = await prefillAll(modelA, tokens, adapter);
    const cache = modelA.newCache(32);
    const split = 7;
    const last = await modelA.prefill(cache, Int32Array.from(tokens.slice(0, split)), adapter, { chunkSize: 4, logits: 'last' }, null, null);
    assertSame(last, full.logits.slice((split - 1) * V, split * V), 'prefill last');
    for (let t = split; t < T; t++) {
      const r = await modelA.decode([{ cache, adapter, token: tokens[t]!, sampling: greedy }], { logits: true });
      assertSame(r.logits, full.logits.slice(t * V, (t + 1) * V), `decode position ${t}`);
      assert.equal(cache.length, t + 1);
    }
    for (let l = 0; l < baseConfig.numLayers; l++) assertSame(cache.readLayer(l).v, full.cache.readLayer(l).v, `layer ${l} V`);
    adapter.dispose();
  });

  test('a batch of three sequences with different adapters equals each decoded alone', async () => {
    const qv = await modelA.loadAdapter(adapterQV.spec, null, null);
    const all = await modelA.loadAdapter(adapterAll.spec, null, null);
    const seqs = [
      { adapter: qv, prefix: tokenSeq(5, 53, 1), sampling: greedy },
      { adapter: null, prefix: tokenSeq(8, 53, 2), sampling: { temperature: 0.8, topP: 0.9, seed: 7 } },
      { adapter: all, prefix: tokenSeq(3, 53, 3), sampling: { temperature: 1.3, topP: 1, seed: 9 } },
    ];
    const run = async (which: number[]) => {
      const caches = await Promise.all(which.map(async (i) => {
        const cache = modelA.newCache(32);
        await modelA.prefill(cache, Int32Array.from(seqs[i]!.prefix), seqs[i]!.adapter, { chunkSize: 8, logits: 'none' }, null, null);
        return cache;
      }));
      const next = which.map((i) => seqs[i]!.prefix.at(-1)!);
      const out: { tokens: number[]; logits: Float32Array[] }[] = which.map(() => ({ tokens: [], logits: [] }));
      for (let step = 0; step < 4; step++) {
        const r = await modelA.decode(
          which.map((i, j) => ({ cache: caches[j]!, adapter: seqs[i]!.adapter, token: next[j]!, sampling: seqs[i]!.sampling })),
          { logits: true },
        );
        which.forEach((_, j) => {
          next[j] = r.tokens[j]!;
          out[j]!.tokens.push(r.tokens[j]!);
          out[j]!.logits.push(r.logits!.slice(j * 53, (j + 1) * 53));
        });
      }
      return out;
    };
    const batched = await run([0, 1, 2]);
    for (let i = 0; i < 3; i++) {
      const [alone] = await run([i]);
      assert.deepEqual(batched[i]!.tokens, alone!.tokens, `sequence ${i} tokens`);
      batched[i]!.logits.forEach((l, s) => assertSame(l, alone!.logits[s]!, `sequence ${i} step ${s}`));
    }
    qv.dispose();
    all.dispose();
  });
});

describe('sampling', () => {
  async function sample(sampling: NativeSampling, steps = 10): Promise<number[]> {
    const cache = modelB.newCache(32);
    await modelB.prefill(cache, Int32Array.from(tokens.slice(0, 4)), null, { chunkSize: 4, logits: 'none' }, null, null);
    const out: number[] = [];
    let token = tokens[4]!;
    for (let i = 0; i < steps; i++) {
      token = (await modelB.decode([{ cache, adapter: null, token, sampling }], { logits: false })).tokens[0]!;
      out.push(token);
    }
    return out;
  }

  test('seeded sampling reproduces; different seeds differ', async () => {
    const a = await sample({ temperature: 1.5, topP: 1, seed: 1 });
    assert.deepEqual(await sample({ temperature: 1.5, topP: 1, seed: 1 }), a);
    assert.notDeepEqual(await sample({ temperature: 1.5, topP: 1, seed: 2 }), a);
    const n = await sample({ temperature: 1.5, topP: 0.8, seed: 1 });
    assert.deepEqual(await sample({ temperature: 1.5, topP: 0.8, seed: 1 }), n);
  });

  test('top-p samples stay inside the nucleus and vary with the seed', async () => {
    const cache = modelB.newCache(8);
    await modelB.prefill(cache, ids(1, 2, 3), null, { chunkSize: 8, logits: 'none' }, null, null);
    const step = (sampling: NativeSampling, logits: boolean) =>
      modelB.decode([{ cache: cache.fork(8), adapter: null, token: 4, sampling }], { logits });
    const l = (await step(greedy, true)).logits!;
    const temperature = 8;
    const mx = Math.max(...l);
    const e = Array.from(l, (v) => Math.exp((v - mx) / temperature));
    const sum = e.reduce((a, b) => a + b, 0);
    const order = e.map((v, i) => [v / sum, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
    const nucleus = new Set<number>();
    let mass = 0;
    for (const [p, i] of order) {
      nucleus.add(i);
      mass += p;
      if (mass >= 0.6) break;
    }
    assert.ok(nucleus.size >= 2, 'the test needs a nucleus of several tokens');
    const seen = new Set<number>();
    for (let seed = 0; seed < 40; seed++) {
      const t = (await step({ temperature, topP: 0.6, seed }, false)).tokens[0]!;
      assert.ok(nucleus.has(t), `seed ${seed} sampled ${t}, outside the nucleus`);
      seen.add(t);
    }
    assert.ok(seen.size >= 2, 'different seeds pick different tokens');
  });

  test('greedy is the argmax of the logits; a tiny top-p equals greedy', async () => {
    const g = await sample(greedy);
    assert.deepEqual(await sample({ temperature: 1, topP: 1e-6, seed: 3 }), g);
    const cache = modelB.newCache(8);
    await modelB.prefill(cache, ids(1, 2), null, { chunkSize: 8, logits: 'none' }, null, null);
    const step = await modelB.decode([{ cache, adapter: null, token: 3, sampling: greedy }], { logits: true });
    const l = step.logits!;
    let best = 0;
    for (let i = 1; i < l.length; i++) if (l[i]! > l[best]!) best = i;
    assert.equal(step.tokens[0], best);
  });
});

describe('progress and cancellation', () => {
  test('prefill progress: increasing done, final done === total, all before the promise settles', async () => {
    const calls: [number, number][] = [];
    await modelA.prefill(modelA.newCache(16), Int32Array.from(tokens), null, { chunkSize: 3, logits: 'none' }, (d, t) => calls.push([d, t]), null);
    assert.deepEqual(calls, [[3, T], [6, T], [9, T], [T, T]]);
  });

  test('loadModel progress in bytes', async () => {
    const calls: [number, number][] = [];
    const m = await addon.loadModel(ckC.config, ckC.refs, (d, t) => calls.push([d, t]), null);
    const total = ckC.refs.reduce((n, r) => n + r.nbytes, 0);
    for (let i = 1; i < calls.length; i++) assert.ok(calls[i]![0] > calls[i - 1]![0]);
    assert.deepEqual(calls.at(-1), [total, total]);
    m.dispose();
  });

  test('cancel mid-prefill rejects with CANCELLED and leaves the cache as it was', async () => {
    const config: NativeModelConfig = { ...baseConfig, vocabSize: 256, hiddenSize: 128, intermediateSize: 256, numLayers: 4, headDim: 32 };
    const ck = writeCheckpoint(dir, 'big', config, 'F32', 4);
    const model = await addon.loadModel(config, ck.refs, null, null);
    const cache = model.newCache(1100);
    await model.prefill(cache, ids(1, 2, 3, 4, 5), null, { chunkSize: 8, logits: 'none' }, null, null);
    const before = cache.readLayer(3);

    const token = new addon.CancelToken();
    const seen: number[] = [];
    const long = Int32Array.from(tokenSeq(1024, 256, 8));
    const err = await rejectsWith(
      model.prefill(cache, long, null, { chunkSize: 4, logits: 'all' }, (done) => {
        seen.push(done);
        token.cancel();
      }, token),
      /^cancelled$/,
    );
    assert.equal((err as Error & { code?: string }).code, 'CANCELLED');
    assert.ok(token.cancelled);
    assert.ok(seen.length >= 1 && seen.at(-1)! < 1024, `stopped early (saw ${seen.length} chunks)`);
    assert.equal(cache.length, 5);
    assertSame(cache.readLayer(3).k, before.k, 'K kept');

    // The cache keeps working, exactly as if the cancelled call never happened.
    const next = await model.prefill(cache, ids(6, 7), null, { chunkSize: 8, logits: 'all' }, null, null);
    const fresh = await model.prefill(model.newCache(8), ids(1, 2, 3, 4, 5, 6, 7), null, { chunkSize: 8, logits: 'all' }, null, null);
    assertSame(next, fresh!.slice(5 * 256), 'after cancel');
    model.dispose();
  });

  test('an already cancelled token rejects loadModel, loadAdapter and prefill', async () => {
    const token = new addon.CancelToken();
    token.cancel();
    const check = async (p: Promise<unknown>) => {
      const e = await rejectsWith(p, /^cancelled$/);
      assert.equal((e as Error & { code?: string }).code, 'CANCELLED');
    };
    await check(addon.loadModel(ckA.config, ckA.refs, null, token));
    await check(modelA.loadAdapter(adapterQV.spec, null, token));
    const cache = modelA.newCache(16);
    await check(modelA.prefill(cache, ids(1, 2), null, { chunkSize: 1, logits: 'none' }, null, token));
    assert.equal(cache.length, 0);
  });

  test('a throwing progress callback rejects the job with its error', async () => {
    const cache = modelA.newCache(16);
    await rejectsWith(
      modelA.prefill(cache, Int32Array.from(tokens), null, { chunkSize: 1, logits: 'none' }, () => {
        throw new Error('callback broke');
      }, null),
      /callback broke/,
    );
    assert.equal(cache.length, 0);
  });
});

describe('KV cache', () => {
  test('readLayer / writeLayer / fork / truncate', async () => {
    const { cache } = await prefillAll(modelA, tokens, null, 4, 16);
    const kvSize = baseConfig.numKvHeads * baseConfig.headDim;
    assert.equal(cache.capacity, 16);
    assert.equal(cache.bytes, 2 * baseConfig.numLayers * kvSize * 16 * 4);
    assert.equal(cache.readLayer(1).k.length, kvSize * T);

    const copy = cache.fork(32);
    assert.equal(copy.capacity, 32);
    assert.equal(copy.length, T);
    assertSame(copy.readLayer(1).v, cache.readLayer(1).v, 'fork');

    // Truncate, then re-run the tail: the same as never truncating.
    copy.truncate(6);
    assert.equal(copy.length, 6);
    const tail = await modelA.prefill(copy, Int32Array.from(tokens.slice(6)), null, { chunkSize: 4, logits: 'all' }, null, null);
    const full = (await prefillAll(modelA, tokens)).logits;
    assertSame(tail, full.slice(6 * baseConfig.vocabSize), 'after truncate');
    assert.equal(cache.length, T, 'the original is independent of its fork');

    // A cache rebuilt through writeLayer decodes exactly like the original.
    const rebuilt = modelA.newCache(16);
    for (let l = 0; l < baseConfig.numLayers; l++) {
      const { k, v } = cache.readLayer(l);
      rebuilt.writeLayer(l, k, v, T);
    }
    assert.equal(rebuilt.length, T);
    const step = (c: NativeKvCache) => modelA.decode([{ cache: c, adapter: null, token: 5, sampling: greedy }], { logits: true });
    assertSame((await step(rebuilt)).logits, (await step(cache)).logits, 'rebuilt cache');
  });

  test('layers written to different lengths are refused by the model', async () => {
    const { cache } = await prefillAll(modelA, tokens, null, 4, 16);
    const part = modelA.newCache(16);
    const { k, v } = cache.readLayer(0);
    part.writeLayer(0, k, v, T);
    assert.equal(part.length, 0);
    await rejectsWith(modelA.prefill(part, ids(1), null, { chunkSize: 1, logits: 'none' }, null, null), /different lengths.*layer 1: 0/);
    assert.throws(() => part.writeLayer(0, k, v.subarray(1), T), /v has \d+ values but .* needs/);
    assert.throws(() => part.writeLayer(2, k, v, T), /layer must be an integer in \[0, 1\]/);
    assert.throws(() => part.truncate(3), /cannot truncate a KV cache holding 0 positions to 3/);
    assert.throws(() => cache.fork(4), /holding 11 positions into capacity 4/);
  });
});

describe('failures are readable errors, never crashes', () => {
  const cfg = baseConfig;
  const refsWith = (patch: (r: NativeTensorRef) => NativeTensorRef | null) =>
    ckA.refs.map((r) => patch({ ...r })).filter((r): r is NativeTensorRef => r !== null);

  test('wrong tensor shape', async () => {
    const refs = refsWith((r) => (r.name === 'model.layers.1.self_attn.k_proj.weight' ? { ...r, shape: [24, 16] } : r));
    await rejectsWith(addon.loadModel(cfg, refs, null, null),
      /tensor 'model\.layers\.1\.self_attn\.k_proj\.weight' in '.*a-\d\.safetensors' has shape \[24, 16\] but the model config implies \[16, 24\]/);
    // headDim ≠ hidden / numHeads: a config assuming 6 = 24 / 4 no longer fits the weights.
    await rejectsWith(addon.loadModel({ ...cfg, headDim: 6 }, ckA.refs, null, null), /q_proj\.weight.*has shape \[32, 24\] but the model config implies \[24, 24\]/);
  });

  test('missing tensor, byte length mismatch, truncated or absent file, duplicate names', async () => {
    await rejectsWith(addon.loadModel(cfg, refsWith((r) => (r.name === 'model.norm.weight' ? null : r)), null, null),
      /checkpoint has no tensor 'model\.norm\.weight' \(expected shape \[24\]\)/);
    await rejectsWith(addon.loadModel(cfg, refsWith((r) => (r.name === 'lm_head.weight' ? null : r)), null, null), /lm_head\.weight.*tieWordEmbeddings/);
    await rejectsWith(addon.loadModel(cfg, refsWith((r) => (r.name === 'model.norm.weight' ? { ...r, nbytes: r.nbytes - 4 } : r)), null, null),
      /'model\.norm\.weight'.* is 92 bytes but shape \[24\] of F32 needs 96 bytes/);
    await rejectsWith(addon.loadModel(cfg, refsWith((r) => ({ ...r, file: path.join(dir, 'nope.safetensors') })), null, null),
      /cannot open '.*nope\.safetensors': No such file or directory/);
    await rejectsWith(addon.loadModel(cfg, [...ckA.refs, ckA.refs[0]!], null, null), /listed twice/);

    const ck = writeCheckpoint(dir, 'trunc', cfg, 'F16', 5);
    truncateSync(ck.refs[0]!.file, ck.refs.at(-1)!.offset + 10);
    await rejectsWith(addon.loadModel(cfg, ck.refs, null, null), /'lm_head\.weight' in '.*trunc-0\.safetensors' spans bytes .* but the file has only \d+ bytes \(truncated/);
  });

  test('bad config and argument types', async () => {
    await rejectsWith(addon.loadModel({ ...cfg, numKvHeads: 3 }, ckA.refs, null, null), /numHeads \(4\) must be a multiple of numKvHeads \(3\)/);
    await rejectsWith(addon.loadModel({ ...cfg, hiddenSize: 0 }, ckA.refs, null, null), /config\.hiddenSize must be an integer in \[1, /);
    await rejectsWith(addon.loadModel({ ...cfg, ropeScaling: { type: 'yarn' } } as unknown as NativeModelConfig, ckA.refs, null, null), /ropeScaling\.type must be/);
    await rejectsWith(addon.loadModel(cfg, [{ ...ckA.refs[0]!, dtype: 'F8' } as unknown as NativeTensorRef], null, null), /dtype must be F32, F16 or BF16/);
    await rejectsWith(addon.loadModel(cfg, ckA.refs, 'nope' as unknown as null, null), /onProgress must be a function or null/);
    await rejectsWith(addon.loadModel(cfg, ckA.refs, null, {} as unknown as null), /cancel must be a CancelToken/);
    const cache = modelA.newCache(8);
    await rejectsWith(modelA.prefill(cache, [1, 2] as unknown as Int32Array, null, { chunkSize: 1, logits: 'none' }, null, null), /tokens must be an Int32Array/);
    await rejectsWith(modelA.prefill(cache, ids(1), null, { chunkSize: 0, logits: 'none' }, null, null), /options\.chunkSize must be an integer/);
    await rejectsWith(modelA.prefill(cache, ids(1), null, { chunkSize: 1, logits: 'some' as 'all' }, null, null), /options\.logits must be/);
    await rejectsWith(modelA.prefill({} as NativeKvCache, ids(1), null, { chunkSize: 1, logits: 'none' }, null, null), /cache must be a NativeKvCache/);
    await rejectsWith(modelA.decode([{ cache, adapter: null, token: 1, sampling: { temperature: 1, topP: 0, seed: 1 } }], { logits: false }), /sequences\[0\]\.sampling\.topP must be in \(0, 1\]/);
    assert.throws(() => modelA.newCache(0), /capacity must be an integer/);
  });

  test('token out of range and capacity exceeded leave the cache untouched', async () => {
    const cache = modelA.newCache(8);
    await modelA.prefill(cache, ids(1, 2, 3), null, { chunkSize: 2, logits: 'none' }, null, null);
    await rejectsWith(modelA.prefill(cache, ids(4, 53), null, { chunkSize: 2, logits: 'none' }, null, null),
      /tokens\[1\] = 53 is out of range: the vocabulary has 53 tokens/);
    await rejectsWith(modelA.prefill(cache, ids(-1), null, { chunkSize: 2, logits: 'none' }, null, null), /tokens\[0\] = -1 is out of range/);
    await rejectsWith(modelA.prefill(cache, ids(1, 2, 3, 4, 5, 6), null, { chunkSize: 2, logits: 'none' }, null, null),
      /KV cache capacity exceeded: the cache holds 3 of 8 positions and 6 more were requested; create or fork it with capacity >= 9/);
    await rejectsWith(modelA.decode([{ cache, adapter: null, token: 99, sampling: greedy }], { logits: false }), /sequences\[0\]\.token = 99 is out of range/);
    assert.equal(cache.length, 3);
    const full = modelA.newCache(1);
    await modelA.prefill(full, ids(1), null, { chunkSize: 1, logits: 'none' }, null, null);
    await rejectsWith(modelA.decode([{ cache: full, adapter: null, token: 1, sampling: greedy }], { logits: false }), /capacity exceeded/);
  });

  test('disposed objects', async () => {
    const ck = writeCheckpoint(dir, 'disp', baseConfig, 'F32', 6);
    const model = await addon.loadModel(ck.config, ck.refs, null, null);
    const cache = model.newCache(8);
    cache.dispose();
    cache.dispose(); // idempotent
    assert.throws(() => cache.length, /KV cache has been disposed/);
    assert.throws(() => cache.readLayer(0), /KV cache has been disposed/);
    await rejectsWith(model.prefill(cache, ids(1), null, { chunkSize: 1, logits: 'none' }, null, null), /KV cache has been disposed/);
    const adapter = await model.loadAdapter(adapterQV.spec, null, null);
    adapter.dispose();
    assert.throws(() => adapter.rank, /adapter has been disposed/);
    await rejectsWith(model.prefill(model.newCache(8), ids(1), adapter, { chunkSize: 1, logits: 'none' }, null, null), /adapter has been disposed/);
    model.dispose();
    assert.throws(() => model.newCache(8), /model has been disposed/);
    assert.throws(() => model.bytes, /model has been disposed/);
    await rejectsWith(model.prefill(modelA.newCache(8), ids(1), null, { chunkSize: 1, logits: 'none' }, null, null), /model has been disposed/);
    await rejectsWith(model.loadAdapter(adapterQV.spec, null, null), /model has been disposed/);
  });

  test('adapters and caches are checked against the model', async () => {
    const adapterB = await modelB.loadAdapter(adapterQV.spec, null, null);
    await rejectsWith(modelA.prefill(modelA.newCache(8), ids(1), adapterB, { chunkSize: 1, logits: 'none' }, null, null), /adapter was loaded for a different model/);
    adapterB.dispose();
    const ckOther = writeCheckpoint(dir, 'other', { ...baseConfig, numKvHeads: 4 }, 'F32', 7);
    const other = await addon.loadModel(ckOther.config, ckOther.refs, null, null);
    await rejectsWith(modelA.prefill(other.newCache(8), ids(1), null, { chunkSize: 1, logits: 'none' }, null, null), /cache was created for a different model/);
    other.dispose();

    const bad = structuredClone(adapterQV.spec);
    bad.modules[1]!.rank = 5;
    await rejectsWith(modelA.loadAdapter(bad, null, null), /lora_A\.weight' in .* has shape \[4, 24\] but the model config implies \[5, 24\]/);
    bad.modules[1]!.rank = 4;
    bad.modules[1]!.layer = 2;
    await rejectsWith(modelA.loadAdapter(bad, null, null), /layers\.2\.v_proj: layer is out of range \(the model has 2 layers\)/);
    bad.modules[1]!.layer = 0;
    bad.modules[2]!.layer = 0;
    await rejectsWith(modelA.loadAdapter(bad, null, null), /layers\.0\.q_proj appears twice/);
  });

  test('a cache in use by a running job is protected', async () => {
    const cache = modelA.newCache(64);
    const running = modelA.prefill(cache, Int32Array.from(tokenSeq(60, 53, 4)), null, { chunkSize: 1, logits: 'none' }, null, null);
    await rejectsWith(modelA.prefill(cache, ids(1), null, { chunkSize: 1, logits: 'none' }, null, null), /already in use by a running prefill or decode/);
    const twice = modelA.newCache(8);
    await rejectsWith(modelA.decode([0, 1].map(() => ({ cache: twice, adapter: null, token: 1, sampling: greedy })), { logits: false }),
      /sequences\[1\]\.cache is the same cache as sequences\[0\]\.cache/);
    assert.throws(() => cache.truncate(0), /while a prefill or decode on it is running/);
    await running;
    assert.equal(cache.length, 60);
    cache.truncate(0);
  });

  test('disposing the model or cache while a job runs is safe', async () => {
    const ck = writeCheckpoint(dir, 'dispose-mid', baseConfig, 'F32', 8);
    const model = await addon.loadModel(ck.config, ck.refs, null, null);
    const cache = model.newCache(64);
    const seq = tokenSeq(40, 53, 5);
    const p = model.prefill(cache, Int32Array.from(seq), null, { chunkSize: 2, logits: 'all' }, null, null);
    model.dispose();
    cache.dispose();
    const logits = await p;
    assertClose(logits!, refForward(ck, seq).logits, 'after dispose');
  });

  test('the process survives all of the above', async () => {
    const { cache, logits } = await prefillAll(modelA, tokens);
    checkAgainstReference(cache, logits, refForward(ckA, tokens), baseConfig.numLayers, 'A again');
  });
});
