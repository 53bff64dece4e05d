// The KV strategies, error sums and outsideSpan of the native engine against independent
// float64 computations in TS, on tiny random GQA models. (Per-layer errors against
// transformers + PEFT live in tests/parity/strategies-parity.test.ts.)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { NativeAdapter, NativeErrorSums, NativeKvCache, NativeModel, NativeModelConfig, NativeStrategySpec } from '../../main/engine/native-types.js';
import { addon, baseConfig, rejectsWith, relErr, tokenSeq, writeAdapter, writeCheckpoint } from './tiny-model.js';
import type { AdapterFile, RefLoraModule } from './tiny-model.js';

// ---------------------------------------------------------------------------------------
// Float64 helpers over cache layers: [kvHeads, T, headDim] ↔ rows [T, D], D = kvHeads·headDim.

const cfg: NativeModelConfig = { ...baseConfig, numLayers: 3 };
const H = cfg.numKvHeads;
const hd = cfg.headDim;
const D = H * hd;
const L = cfg.numLayers;
const T = 20;

function toRows(x: Float32Array, heads: number, headDim: number): Float64Array {
  const tokens = x.length / (heads * headDim);
  const out = new Float64Array(x.length);
  for (let h = 0; h < heads; h++)
    for (let t = 0; t < tokens; t++)
      for (let d = 0; d < headDim; d++) out[t * heads * headDim + h * headDim + d] = x[(h * tokens + t) * headDim + d]!;
  return out;
}

/** (a − b) subtracted in fp32, as the engine does, then as rows [T, D]. */
function deltaRows(a: Float32Array, b: Float32Array, heads = H, headDim = hd): Float64Array {
  const d = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) d[i] = a[i]! - b[i]!;
  return toRows(d, heads, headDim);
}

function sub(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! - b[i]!;
  return out;
}

function sumSq(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * a[i]!;
  return s;
}

/** Solves the symmetric positive definite system G x = y (n×n) by Gaussian elimination. */
function solve(g: Float64Array, y: Float64Array, n: number): Float64Array {
  const a = Float64Array.from(g);
  const x = Float64Array.from(y);
  for (let c = 0; c < n; c++) {
    for (let r = c + 1; r < n; r++) {
      const f = a[r * n + c]! / a[c * n + c]!;
      for (let k = c; k < n; k++) a[r * n + k] = a[r * n + k]! - f * a[c * n + k]!;
      x[r] = x[r]! - f * x[c]!;
    }
  }
  for (let c = n - 1; c >= 0; c--) {
    let s = x[c]!;
    for (let k = c + 1; k < n; k++) s -= a[c * n + k]! * x[k]!;
    x[c] = s / a[c * n + c]!;
  }
  return x;
}

/** B·pinv(B)·Δ per token (rows [T, D]) via the normal equations BᵀB m = BᵀΔ, in double. */
function projectOntoB(m: RefLoraModule, delta: Float64Array, out: number): Float64Array {
  const r = m.rank;
  const b = m.b; // [out, r]
  const g = new Float64Array(r * r);
  for (let i = 0; i < r; i++) for (let j = 0; j < r; j++) for (let o = 0; o < out; o++) g[i * r + j] = g[i * r + j]! + b[o * r + i]! * b[o * r + j]!;
  const tokens = delta.length / out;
  const proj = new Float64Array(delta.length);
  for (let t = 0; t < tokens; t++) {
    const rhs = new Float64Array(r);
    for (let i = 0; i < r; i++) for (let o = 0; o < out; o++) rhs[i] = rhs[i]! + b[o * r + i]! * delta[t * out + o]!;
    const mini = solve(g, rhs, r);
    for (let o = 0; o < out; o++) {
      let s = 0;
      for (let i = 0; i < r; i++) s += b[o * r + i]! * mini[i]!;
      proj[t * out + o] = s;
    }
  }
  return proj;
}

/** Eigenvalues of the symmetric n×n matrix a (cyclic Jacobi), descending. */
function symEigenvalues(a0: Float64Array, n: number): number[] {
  const a = Float64Array.from(a0);
  for (let sweep = 0; sweep < 60; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q]! ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q]!;
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (a[q * n + q]! - a[p * n + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p]!;
          const akq = a[k * n + q]!;
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k]!;
          const aqk = a[q * n + k]!;
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
      }
    }
  }
  return Array.from({ length: n }, (_, i) => a[i * n + i]!).sort((x, y) => y - x);
}

/** Squared singular values of rows [T, cols], descending (eigenvalues of XᵀX). */
function squaredSingularValues(x: Float64Array, cols: number): number[] {
  const g = new Float64Array(cols * cols);
  const rows = x.length / cols;
  for (let t = 0; t < rows; t++)
    for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) g[i * cols + j] = g[i * cols + j]! + x[t * cols + i]! * x[t * cols + j]!;
  return symEigenvalues(g, cols);
}

/** Per-layer ‖X_s − X_exact‖ / ‖X_exact‖ from error sums. */
function layerRel(s: NativeErrorSums, which: 'k' | 'v'): number[] {
  const diff = which === 'k' ? s.kDiffByHead : s.vDiffByHead;
  const norm = which === 'k' ? s.kNormByHead : s.vNormByHead;
  return Array.from({ length: s.numLayers }, (_, l) => {
    let d = 0;
    let n = 0;
    for (let h = 0; h < s.numKvHeads; h++) {
      d += diff[l * s.numKvHeads + h]!;
      n += norm[l * s.numKvHeads + h]!;
    }
    return Math.sqrt(d / n);
  });
}

function assertBitEqual(got: Float32Array, want: Float32Array, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) assert.fail(`${what}: differs at ${i}: ${got[i]} vs ${want[i]}`);
}

// ---------------------------------------------------------------------------------------

let dir = '';
let model: NativeModel;
let adapterFile: AdapterFile; // q/k/v rank 4 on layers 0, 1; q/k only on layer 2
let adapter: NativeAdapter;
let base: NativeKvCache;
let exact: NativeKvCache; // prefilled with captureLoraV, in chunks of 3
const doc = tokenSeq(T, cfg.vocabSize, 5);
const R = 4;
const vLayers = [0, 1];
const seedBytes = vLayers.length * R * T * 4;
const owned: { dispose(): void }[] = [];
const own = <X extends { dispose(): void }>(x: X): X => {
  owned.push(x);
  return x;
};

async function prefill(cache: NativeKvCache, tokens: number[], a: NativeAdapter | null, captureLoraV = false, chunkSize = 3): Promise<NativeKvCache> {
  await model.prefill(cache, Int32Array.from(tokens), a, { chunkSize, logits: 'none', captureLoraV }, null, null);
  return cache;
}

async function rebuild(spec: NativeStrategySpec, b = base, e = exact, a = adapter) {
  const store = own(await model.encodeStore(spec, b, e, a));
  const cache = own(await store.decode(b, e.length + 4));
  return { store, cache, sums: await model.compareCaches(cache, e) };
}

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'adapterlens-strategies-'));
  const ck = writeCheckpoint(dir, 'm', cfg, 'F32', 21);
  adapterFile = writeAdapter(dir, 'qkv', cfg, ['q_proj', 'k_proj', 'v_proj'], R, 1.5, 'F32', 22);
  adapterFile.spec.modules = adapterFile.spec.modules.filter((m) => !(m.layer === 2 && m.module === 'v_proj'));
  adapterFile.lora.delete('2.v_proj');
  model = await addon.loadModel(ck.config, ck.refs, null, null);
  adapter = await model.loadAdapter(adapterFile.spec, null, null);
  base = await prefill(model.newCache(T), doc, null);
  exact = await prefill(model.newCache(T), doc, adapter, true);
});

after(() => {
  for (const x of owned) x.dispose();
  base?.dispose();
  exact?.dispose();
  adapter?.dispose();
  model?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe('captureLoraV', () => {
  test('is counted in bytes, survives fork and chunked prefill, and is cut by truncate', async () => {
    assert.equal(exact.bytes, base.bytes + vLayers.length * T * R * 4);
    // Two prefill calls (and chunks of 1 and 7) capture the same u as one.
    const split = own(model.newCache(T));
    await prefill(split, doc.slice(0, 7), adapter, true, 1);
    await prefill(split, doc.slice(7), adapter, true, 7);
    const a = await rebuild({ kind: 'lragent' });
    const b = await rebuild({ kind: 'lragent' }, base, split);
    const forked = own(exact.fork(T + 5));
    assert.equal(forked.bytes, exact.bytes / T * (T + 5));
    const c = await rebuild({ kind: 'lragent' }, base, forked);
    for (let l = 0; l < L; l++) {
      assertBitEqual(b.cache.readLayer(l).v, a.cache.readLayer(l).v, `split prefill layer ${l}`);
      assertBitEqual(c.cache.readLayer(l).v, a.cache.readLayer(l).v, `fork layer ${l}`);
    }
    // Truncated base and exact: lragent over the first 9 positions.
    const b9 = own(base.fork(T));
    const e9 = own(exact.fork(T));
    b9.truncate(9);
    e9.truncate(9);
    const t9 = await rebuild({ kind: 'lragent' }, b9, e9);
    assert.equal(t9.store.tokens, 9);
    for (let l = 0; l < L; l++) {
      assertBitEqual(t9.cache.readLayer(l).v, a.cache.readLayer(l).v.filter((_, i) => i % (T * hd) < 9 * hd), `truncated layer ${l}`);
    }
    // Prefilling on after truncate continues the capture.
    await prefill(e9, doc.slice(9), adapter, true);
    const again = await rebuild({ kind: 'lragent' }, base, e9);
    for (let l = 0; l < L; l++) assertBitEqual(again.cache.readLayer(l).v, a.cache.readLayer(l).v, `re-extended layer ${l}`);
  });

  test('refuses to start mid-sequence or without an adapter', async () => {
    const c = own(await prefill(model.newCache(T), doc.slice(0, 4), adapter));
    await rejectsWith(model.prefill(c, Int32Array.from(doc.slice(4)), adapter, { chunkSize: 4, logits: 'none', captureLoraV: true }, null, null),
      /captureLoraV: the cache holds 4 positions whose LoRA-V inputs of this adapter were not captured/);
    await rejectsWith(model.prefill(model.newCache(4), Int32Array.from([1]), null, { chunkSize: 4, logits: 'none', captureLoraV: true }, null, null),
      /captureLoraV keeps the adapter's own LoRA-V inputs: pass the adapter/);
    assert.equal(c.length, 4);
  });
});

describe('strategies', () => {
  test('base: nothing stored, the base cache back', async () => {
    const { store, cache } = await rebuild({ kind: 'base' });
    assert.equal(store.bytes, 0);
    assert.equal(store.tokens, T);
    assert.equal(cache.length, T);
    assert.equal(cache.capacity, T + 4);
    for (let l = 0; l < L; l++) {
      assertBitEqual(cache.readLayer(l).k, base.readLayer(l).k, `layer ${l} K`);
      assertBitEqual(cache.readLayer(l).v, base.readLayer(l).v, `layer ${l} V`);
    }
  });

  test('seed-minikv: exact at layer 0, K base, V = V_base + B·pinv(B)·ΔV', async () => {
    const { store, cache, sums } = await rebuild({ kind: 'seed-minikv' });
    assert.equal(store.bytes, seedBytes);
    assert.ok(layerRel(sums, 'v')[0]! < 1e-5, `layer 0 vRelErr ${layerRel(sums, 'v')[0]}`);
    for (let l = 0; l < L; l++) {
      const got = cache.readLayer(l);
      const b = base.readLayer(l);
      assertBitEqual(got.k, b.k, `layer ${l} K`);
      const m = adapterFile.lora.get(`${l}.v_proj`);
      if (!m) {
        assertBitEqual(got.v, b.v, `layer ${l} V (v_proj not adapted)`);
        continue;
      }
      const want = projectOntoB(m, deltaRows(exact.readLayer(l).v, b.v), D);
      const e = relErr(toRows(Float32Array.from(sub(got.v, b.v)), H, hd), want);
      assert.ok(e < 1e-4, `layer ${l}: seed delta vs TS pinv, relative error ${e}`);
    }
  });

  test('lragent: V_base + B·(s·A·x) equals the exact V at layer 0; bytes Σ r·T·4', async () => {
    const { store, cache, sums } = await rebuild({ kind: 'lragent' });
    assert.equal(store.bytes, seedBytes);
    assert.ok(layerRel(sums, 'v')[0]! < 1e-5, `layer 0 vRelErr ${layerRel(sums, 'v')[0]}`);
    assert.ok(layerRel(sums, 'v')[1]! > 1e-3, 'layer 1 differs (inputs differ there)');
    for (let l = 0; l < L; l++) assertBitEqual(cache.readLayer(l).k, base.readLayer(l).k, `layer ${l} K`);
    assertBitEqual(cache.readLayer(2).v, base.readLayer(2).v, 'layer 2 V (v_proj not adapted)');
  });

  for (const [kind, qmax, payload] of [['delta-int8', 127, hd], ['delta-int4', 7, hd / 2]] as const) {
    test(`${kind}: every element within scale/2, bytes = payload + scales`, async () => {
      const { store, cache } = await rebuild({ kind });
      assert.equal(store.bytes, L * 2 * H * T * (payload + 4));
      for (let l = 0; l < L; l++) {
        const got = cache.readLayer(l);
        const e = exact.readLayer(l);
        const b = base.readLayer(l);
        for (const w of ['k', 'v'] as const) {
          for (let row = 0; row < H * T; row++) {
            let amax = 0;
            for (let d = 0; d < hd; d++) amax = Math.max(amax, Math.abs(Math.fround(e[w][row * hd + d]! - b[w][row * hd + d]!)));
            const scale = Math.fround(amax / qmax);
            for (let d = 0; d < hd; d++) {
              const i = row * hd + d;
              const err = Math.abs(got[w][i]! - e[w][i]!);
              const slack = 4 * 2 ** -23 * (Math.abs(e[w][i]!) + Math.abs(b[w][i]!));
              assert.ok(err <= scale / 2 + slack, `${kind} layer ${l} ${w} [${row}, ${d}]: error ${err} > scale/2 = ${scale / 2}`);
            }
          }
        }
      }
    });
  }

  test('lowrank: full rank is exact, errors fall with k, and match Eckart–Young', async () => {
    const full = Math.min(T, D);
    const errs: { k: number[]; v: number[] }[] = [];
    for (const k of [1, 2, 3, 5, 8, 12, full]) {
      const { store, sums } = await rebuild({ kind: 'lowrank', rank: k });
      assert.equal(store.bytes, L * 2 * k * (T + D) * 4, `bytes at k = ${k}`);
      const ek = layerRel(sums, 'k');
      const ev = layerRel(sums, 'v');
      errs.push({ k: ek, v: ev });
      for (let l = 0; l < L; l++) {
        for (const [w, err] of [['k', ek[l]!], ['v', ev[l]!]] as const) {
          // Optimal rank-k error²: the tail of the squared singular values of Δ.
          const e = exact.readLayer(l)[w];
          const s2 = squaredSingularValues(deltaRows(e, base.readLayer(l)[w]), D);
          const optimal = Math.sqrt(s2.slice(k).reduce((a, x) => a + Math.max(x, 0), 0) / sumSq(e));
          assert.ok(Math.abs(err - optimal) <= 1e-5 + 1e-3 * optimal, `k = ${k} layer ${l} ${w}: ${err} vs optimal ${optimal}`);
        }
      }
    }
    const last = errs.at(-1)!;
    for (let l = 0; l < L; l++) {
      assert.ok(last.k[l]! < 1e-5 && last.v[l]! < 1e-5, `layer ${l}: k = ${full} error ${last.k[l]} / ${last.v[l]}`);
      for (let i = 1; i < errs.length; i++) {
        assert.ok(errs[i]!.k[l]! <= errs[i - 1]!.k[l]! * (1 + 1e-6) + 1e-9, `layer ${l} K error rises at step ${i}`);
        assert.ok(errs[i]!.v[l]! <= errs[i - 1]!.v[l]! * (1 + 1e-6) + 1e-9, `layer ${l} V error rises at step ${i}`);
      }
    }
    // k beyond min(T, D) is clamped.
    assert.equal((await rebuild({ kind: 'lowrank', rank: 1000 })).store.bytes, L * 2 * full * (T + D) * 4);
    // Fewer tokens than features: the factorization goes through the token-side Gram.
    const b6 = own(base.fork(T));
    const e6 = own(exact.fork(T));
    b6.truncate(6);
    e6.truncate(6);
    const short = await rebuild({ kind: 'lowrank', rank: 6 }, b6, e6);
    for (let l = 0; l < L; l++) assert.ok(layerRel(short.sums, 'k')[l]! < 1e-5 && layerRel(short.sums, 'v')[l]! < 1e-5, `T = 6, layer ${l}`);
  });

  test('lowrank on a wide model (D = 544, T = 520): randomized subspace iteration recovers low-rank deltas', async () => {
    const wide: NativeModelConfig = { ...baseConfig, hiddenSize: 32, intermediateSize: 48, numHeads: 4, numKvHeads: 4, headDim: 136 };
    const ck = writeCheckpoint(dir, 'wide', wide, 'F32', 31);
    const af = writeAdapter(dir, 'wide-qv', wide, ['q_proj', 'v_proj'], 3, 2, 'F32', 32);
    const m = own(await addon.loadModel(ck.config, ck.refs, null, null));
    const a = own(await m.loadAdapter(af.spec, null, null));
    const tokens = Int32Array.from(tokenSeq(520, wide.vocabSize, 33));
    const b = own(m.newCache(520));
    const e = own(m.newCache(520));
    await m.prefill(b, tokens, null, { chunkSize: 64, logits: 'none' }, null, null);
    await m.prefill(e, tokens, a, { chunkSize: 64, logits: 'none' }, null, null);
    let previous = [Infinity, Infinity];
    for (const k of [1, 3, 8]) {
      const store = own(await m.encodeStore({ kind: 'lowrank', rank: k }, b, e, a));
      const sums = await m.compareCaches(own(await store.decode(b, 520)), e);
      const [k0, v0, v1] = [layerRel(sums, 'k')[0]!, layerRel(sums, 'v')[0]!, layerRel(sums, 'v')[1]!];
      assert.equal(k0, 0, 'layer 0 K is untouched by a q/v adapter');
      if (k >= 3) assert.ok(v0 < 1e-5, `k = ${k}: layer 0 ΔV has rank 3, error ${v0}`);
      else assert.ok(v0 > 1e-3, 'k = 1 cannot hold a rank-3 delta');
      assert.ok(v1 <= previous[1]! * (1 + 1e-6), `layer 1 V error rises at k = ${k}`);
      previous = [v0, v1];
    }
    // The engine runs the layers' SVDs as one batch (kLowRankBatchBytes); one delta at a time
    // must give the same factors, bit for bit.
    const batched = own(await (own(await m.encodeStore({ kind: 'lowrank', rank: 3 }, b, e, a))).decode(b, 520));
    process.env.ADAPTERLENS_LOWRANK_BATCH_BYTES = '1';
    let single;
    try {
      single = own(await (own(await m.encodeStore({ kind: 'lowrank', rank: 3 }, b, e, a))).decode(b, 520));
    } finally {
      delete process.env.ADAPTERLENS_LOWRANK_BATCH_BYTES;
    }
    for (let l = 0; l < wide.numLayers; l++) {
      assertBitEqual(single.readLayer(l).k, batched.readLayer(l).k, `layer ${l} K, a delta at a time vs batched`);
      assertBitEqual(single.readLayer(l).v, batched.readLayer(l).v, `layer ${l} V, a delta at a time vs batched`);
    }
  });

  test('hybrid: listed layers exact, the others seed-minikv', async () => {
    const seed = await rebuild({ kind: 'seed-minikv' });
    const { store, cache, sums } = await rebuild({ kind: 'hybrid', exactLayers: [1] });
    assert.equal(store.bytes, R * T * 4 + 2 * H * T * hd * 4);
    assert.equal(sums.kDiffByHead.slice(H, 2 * H).reduce((a, x) => a + x, 0), 0);
    assert.equal(sums.vDiffByHead.slice(H, 2 * H).reduce((a, x) => a + x, 0), 0);
    for (const l of [0, 2]) assertBitEqual(cache.readLayer(l).v, seed.cache.readLayer(l).v, `layer ${l} V`);
    const none = await rebuild({ kind: 'hybrid', exactLayers: [] });
    assert.equal(none.store.bytes, seedBytes);
    const all = await rebuild({ kind: 'hybrid', exactLayers: [0, 1, 2] });
    assert.equal(all.store.bytes, L * 2 * H * T * hd * 4);
    assert.ok(all.sums.kDiffByToken.every((x) => x === 0) && all.sums.vDiffByToken.every((x) => x === 0));
  });

  test('pca: within its budget, errors fall with the bits, exact parts exact, weights move bits', async () => {
    const values = L * 2 * D * T;
    let last = Infinity, first = 0;
    for (const b of [0.5, 1, 2, 4, 8, 16]) {
      const { store, sums } = await rebuild({ kind: 'pca', bitsPerValue: b });
      assert.ok(store.bytes <= (b / 8) * values, `pca:${b}: ${store.bytes} bytes over its budget ${(b / 8) * values}`);
      const err = Math.hypot(...layerRel(sums, 'k'), ...layerRel(sums, 'v'));
      assert.ok(err <= last * 1.0001, `pca:${b}: error ${err} above pca at fewer bits (${last})`);
      if (b === 0.5) first = err;
      last = err;
    }
    // 20 tokens: a component's basis costs as much as its coefficients, so even 16 bits a value
    // buys only part of the spectrum; the error still falls several-fold.
    assert.ok(last < first / 4, `pca:16 error ${last} vs pca:0.5 ${first}`);
    // The fit's probes: every part exact but layer 1's V.
    const exactParts = Array.from({ length: 2 * L }, (_, p) => p).filter((p) => p !== 3);
    const probe = await rebuild({ kind: 'pca', bitsPerValue: 1, exactParts });
    for (let l = 0; l < L; l++) {
      for (let h = 0; h < H; h++) {
        assert.equal(probe.sums.kDiffByHead[l * H + h], 0, `layer ${l} K is exact`);
        if (l !== 1) assert.equal(probe.sums.vDiffByHead[l * H + h], 0, `layer ${l} V is exact`);
      }
    }
    assert.ok(layerRel(probe.sums, 'v')[1]! > 0, 'layer 1 V is coded');
    // Weights move bits: all weight on layer 1's V codes it better than unweighted.
    const weights = Array.from({ length: 2 * L }, (_, p) => (p === 3 ? 1 : 1e-6));
    const flat = await rebuild({ kind: 'pca', bitsPerValue: 1 });
    const heavy = await rebuild({ kind: 'pca', bitsPerValue: 1, weights });
    assert.ok(layerRel(heavy.sums, 'v')[1]! < layerRel(flat.sums, 'v')[1]!, 'the heavy part gets more bits');
  });

  test('a zero delta (exact = base) rebuilds exactly under every strategy, without NaN', async () => {
    const specs: NativeStrategySpec[] = [{ kind: 'base' }, { kind: 'seed-minikv' }, { kind: 'delta-int8' }, { kind: 'delta-int4' }, { kind: 'lowrank', rank: 3 }, { kind: 'lowrank', rank: 1000 }, { kind: 'hybrid', exactLayers: [2] }, { kind: 'pca', bitsPerValue: 2 }];
    for (const spec of specs) {
      const { sums } = await rebuild(spec, base, base);
      assert.ok(sums.kDiffByToken.every((x) => x === 0) && sums.vDiffByToken.every((x) => x === 0), `${spec.kind}`);
    }
  });

  test('stores encode concurrently from shared caches and outlive their adapter and model', async () => {
    const ck = writeCheckpoint(dir, 'life', cfg, 'F32', 21);
    const m = await addon.loadModel(ck.config, ck.refs, null, null);
    const a = await m.loadAdapter(adapterFile.spec, null, null);
    const b = own(m.newCache(T));
    const e = own(m.newCache(T));
    await m.prefill(b, Int32Array.from(doc), null, { chunkSize: 8, logits: 'none' }, null, null);
    await m.prefill(e, Int32Array.from(doc), a, { chunkSize: 8, logits: 'none', captureLoraV: true }, null, null);
    const specs: NativeStrategySpec[] = [{ kind: 'seed-minikv' }, { kind: 'lragent' }, { kind: 'delta-int8' }, { kind: 'lowrank', rank: 3 }];
    const stores = (await Promise.all(specs.map((s) => m.encodeStore(s, b, e, a)))).map(own);
    const before = await Promise.all(stores.map(async (s) => (own(await s.decode(b, T))).readLayer(0).v));
    a.dispose();
    m.dispose();
    for (const [i, s] of stores.entries()) assertBitEqual(own(await s.decode(b, T)).readLayer(0).v, before[i]!, `${specs[i]!.kind} after dispose`);
  });
});

describe('metrics', () => {
  test('compareCaches: zero against itself, hand-computed sums against a perturbed copy', async () => {
    const self = await model.compareCaches(exact, exact);
    assert.equal(self.numLayers, L);
    assert.equal(self.numKvHeads, H);
    assert.equal(self.tokens, T);
    for (const a of [self.kDiffByHead, self.vDiffByHead, self.kDiffByToken, self.vDiffByToken]) {
      assert.ok(a instanceof Float64Array);
      assert.ok(a.every((x) => x === 0));
    }
    for (let l = 0; l < L; l++) {
      const { k, v } = exact.readLayer(l);
      for (let h = 0; h < H; h++) {
        const want = sumSq(k.subarray(h * T * hd, (h + 1) * T * hd));
        assert.ok(Math.abs(self.kNormByHead[l * H + h]! - want) <= 1e-12 * want, `layer ${l} head ${h} K norm`);
      }
      let vt = 0;
      for (let h = 0; h < H; h++) vt += sumSq(v.subarray((h * T + 7) * hd, (h * T + 8) * hd));
      assert.ok(Math.abs(self.vNormByToken[l * T + 7]! - vt) <= 1e-12 * vt, `layer ${l} token 7 V norm`);
    }

    const p = own(exact.fork(T));
    const { k, v } = p.readLayer(1);
    const ki = (1 * T + 3) * hd + 2; // head 1, token 3, d 2
    const vi = (0 * T + 5) * hd + 7; // head 0, token 5, d 7
    const k0 = k[ki]!;
    const v0 = v[vi]!;
    k[ki] = k0 + 0.5;
    v[vi] = v0 - 0.25;
    p.writeLayer(1, k, v, T);
    const dk = (k[ki]! - k0) ** 2;
    const dv = (v[vi]! - v0) ** 2;
    const s = await model.compareCaches(p, exact);
    for (let i = 0; i < L * H; i++) {
      assert.equal(s.kDiffByHead[i], i === 1 * H + 1 ? dk : 0, `kDiffByHead[${i}]`);
      assert.equal(s.vDiffByHead[i], i === 1 * H + 0 ? dv : 0, `vDiffByHead[${i}]`);
    }
    for (let i = 0; i < L * T; i++) {
      assert.equal(s.kDiffByToken[i], i === 1 * T + 3 ? dk : 0, `kDiffByToken[${i}]`);
      assert.equal(s.vDiffByToken[i], i === 1 * T + 5 ? dv : 0, `vDiffByToken[${i}]`);
    }
    assert.deepEqual(s.kNormByHead, self.kNormByHead);
    // The common length of caches of different lengths.
    p.truncate(11);
    const short = await model.compareCaches(p, exact);
    assert.equal(short.tokens, 11);
    assert.equal(short.kDiffByToken.length, L * 11);
  });

  test('outsideSpan: ~0 at layer 0, the TS projection residual at layer 1, NaN without v_proj', async () => {
    const o = await model.outsideSpan(base, exact, adapter);
    assert.ok(o instanceof Float64Array);
    assert.equal(o.length, L);
    assert.ok(o[0]! >= 0 && o[0]! < 1e-9, `layer 0: ${o[0]}`);
    const dv = deltaRows(exact.readLayer(1).v, base.readLayer(1).v);
    const want = sumSq(sub(dv, projectOntoB(adapterFile.lora.get('1.v_proj')!, dv, D))) / sumSq(dv);
    assert.ok(want > 1e-3 && Math.abs(o[1]! - want) < 1e-9 + 1e-6 * want, `layer 1: ${o[1]} vs ${want}`);
    assert.ok(Number.isNaN(o[2]!), 'layer 2 has no v_proj LoRA');
  });
});

describe('failures are readable errors', () => {
  test('mismatched lengths, missing capture, bad specs, capacity', async () => {
    const short = own(base.fork(T));
    short.truncate(5);
    await rejectsWith(model.encodeStore({ kind: 'seed-minikv' }, short, exact, adapter), /encodeStore: base holds 5 positions and exact holds 20; both must be prefilled over the same document/);
    await rejectsWith(model.outsideSpan(short, exact, adapter), /outsideSpan: base holds 5 positions and exact holds 20/);
    const noCapture = own(await prefill(model.newCache(T), doc, adapter));
    await rejectsWith(model.encodeStore({ kind: 'lragent' }, base, noCapture, adapter), /lragent needs the adapter prefill with captureLoraV/);
    const other = own(await model.loadAdapter(adapterFile.spec, null, null));
    await rejectsWith(model.encodeStore({ kind: 'lragent' }, base, exact, other), /captured LoRA-V inputs come from a different adapter/);
    const partial = own(exact.fork(T + 2));
    await prefill(partial, [1, 2], adapter); // no capture for the last two positions
    const base22 = own(await prefill(model.newCache(T + 2), [...doc, 1, 2], null));
    await rejectsWith(model.encodeStore({ kind: 'lragent' }, base22, partial, adapter), /captured LoRA-V inputs for only 20 of its 22 positions/);

    await rejectsWith(model.encodeStore({ kind: 'hybrid', exactLayers: [1, 1] }, base, exact, adapter), /exactLayers lists layer 1 twice/);
    await rejectsWith(model.encodeStore({ kind: 'hybrid', exactLayers: [3] }, base, exact, adapter), /strategy\.exactLayers\[0\] must be an integer in \[0, 2\]/);
    await rejectsWith(model.encodeStore({ kind: 'lowrank', rank: 0 }, base, exact, adapter), /strategy\.rank must be an integer in \[1, /);
    await rejectsWith(model.encodeStore({ kind: 'exact' } as unknown as NativeStrategySpec, base, exact, adapter), /'exact' needs no store/);
    await rejectsWith(model.encodeStore({ kind: 'zip' } as unknown as NativeStrategySpec, base, exact, adapter), /strategy\.kind must be one of/);
    await rejectsWith(model.encodeStore({ kind: 'base' }, base, exact, null as unknown as NativeAdapter), /adapter must be a NativeAdapter/);

    const store = own(await model.encodeStore({ kind: 'seed-minikv' }, base, exact, adapter));
    await rejectsWith(store.decode(base, T - 1), /capacity 19 is less than the 20 tokens the store holds/);
    await rejectsWith(store.decode(short, T), /base holds 5 positions but the store was encoded over 20/);
    const otherCk = writeCheckpoint(dir, 'other', { ...cfg, numKvHeads: 4 }, 'F32', 9);
    const otherModel = own(await addon.loadModel(otherCk.config, otherCk.refs, null, null));
    await rejectsWith(store.decode(own(otherModel.newCache(T)), T), /base was created for a different model/);
    await rejectsWith(model.compareCaches(own(otherModel.newCache(T)), exact), /rebuilt was created for a different model/);
  });

  test('disposed inputs and busy caches', async () => {
    const gone = model.newCache(T);
    gone.dispose();
    await rejectsWith(model.encodeStore({ kind: 'base' }, gone, exact, adapter), /KV cache has been disposed/);
    await rejectsWith(model.compareCaches(exact, gone), /KV cache has been disposed/);
    const a = await model.loadAdapter(adapterFile.spec, null, null);
    a.dispose();
    await rejectsWith(model.encodeStore({ kind: 'seed-minikv' }, base, exact, a), /adapter has been disposed/);
    await rejectsWith(model.outsideSpan(base, exact, a), /adapter has been disposed/);
    const store = await model.encodeStore({ kind: 'base' }, base, exact, adapter);
    store.dispose();
    store.dispose(); // idempotent
    assert.throws(() => store.bytes, /KV store has been disposed/);
    await rejectsWith(store.decode(base, T), /KV store has been disposed/);

    // Readers share a cache; writers wait for them, and readers for writers.
    const c = own(exact.fork(T + 1));
    const reading = model.compareCaches(c, exact);
    assert.throws(() => c.truncate(3), /while a job reading it .* is running/);
    await rejectsWith(model.prefill(c, Int32Array.from([1]), adapter, { chunkSize: 1, logits: 'none' }, null, null), /being read by a running job/);
    await reading;
    const writing = model.prefill(c, Int32Array.from([1]), adapter, { chunkSize: 1, logits: 'none' }, null, null);
    await rejectsWith(model.compareCaches(c, exact), /already in use by a running prefill or decode/);
    await writing;
    assert.equal(c.length, T + 1);
  });
});
