// A tiny random Llama-family checkpoint toolkit for the native tests: seeded numbers,
// fp16/bf16 round trips, a safetensors writer, random checkpoints and PEFT-style adapters,
// a naive float64 reference forward pass (HF's Llama, LoRA unmerged), and helpers over
// the addon.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mulberry32 } from '../seeded-random.js';
import type {
  LoraModuleName,
  NativeAdapter,
  NativeAdapterSpec,
  NativeAddon,
  NativeKvCache,
  NativeModel,
  NativeModelConfig,
  NativeSampling,
  NativeTensorRef,
  StoredDType,
} from '../../main/engine/native-types.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const addon = createRequire(import.meta.url)(
  path.join(repoRoot, 'native/build/Release/adapterlens_cpu.node'),
) as NativeAddon;

// ---------------------------------------------------------------------------------------
// Numbers: seeded RNG, fp16 / bf16 round trips, comparisons.

export { mulberry32 };

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function f16Bits(v: number): number {
  const sign = v < 0 ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a >= 65520) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | roundHalfEven(a / 2 ** -24); // subnormal (1024 rounds up to the smallest normal)
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  let m = roundHalfEven((a / 2 ** e - 1) * 1024);
  if (m === 1024) {
    m = 0;
    e++;
  }
  return sign | ((e + 15) << 10) | m;
}

export function f16Value(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 31;
  const m = h & 1023;
  if (e === 0) return s * m * 2 ** -24;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

export function bf16Bits(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16Value(h: number): number {
  u32[0] = h << 16;
  return f32[0]!;
}

export function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  assert.equal(got.length, want.length, 'length mismatch');
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    num += (got[i]! - want[i]!) ** 2;
    den += want[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

export function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, what: string, tol = 1e-4): void {
  const e = relErr(got, want);
  assert.ok(e < tol, `${what}: relative error ${e.toExponential(2)} >= ${tol}`);
}

export function assertSame(got: Float32Array | null, want: Float32Array | null, what: string): void {
  assert.ok(got && want, `${what}: missing logits`);
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) assert.fail(`${what}: differs at ${i}: ${got[i]} vs ${want[i]}`);
  }
}

// ---------------------------------------------------------------------------------------
// Safetensors writer: 8-byte little-endian header length, JSON header, raw data.

export interface TensorData {
  name: string;
  shape: number[];
  /** The exact values the file stores (already rounded to the storage dtype). */
  values: Float64Array;
  dtype: StoredDType;
}

export function encode(values: ArrayLike<number>, dtype: StoredDType): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(Float32Array.from(values).buffer);
  const bits = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) bits[i] = dtype === 'F16' ? f16Bits(values[i]!) : bf16Bits(values[i]!);
  return new Uint8Array(bits.buffer);
}

/** Rounds values to what `dtype` can store, as the file will hold them. */
export function storable(values: number[], dtype: StoredDType): Float64Array {
  const out = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    out[i] = dtype === 'F32' ? Math.fround(v) : dtype === 'F16' ? f16Value(f16Bits(v)) : bf16Value(bf16Bits(v));
  }
  return out;
}

export function writeSafetensors(file: string, tensors: TensorData[]): NativeTensorRef[] {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  const blobs: Uint8Array[] = [];
  let pos = 0;
  for (const t of tensors) {
    const bytes = encode(t.values, t.dtype);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [pos, pos + bytes.length] };
    blobs.push(bytes);
    pos += bytes.length; // no padding: F16 tensors leave later ones unaligned, as real files may
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(file, Buffer.concat([len, Buffer.from(json), ...blobs]));
  const refs: NativeTensorRef[] = [];
  let offset = 8 + json.length;
  tensors.forEach((t, i) => {
    const nbytes = blobs[i]!.length;
    refs.push({ name: t.name, file, offset, nbytes, dtype: t.dtype, shape: t.shape });
    offset += nbytes;
  });
  return refs;
}

// ---------------------------------------------------------------------------------------
// Random checkpoints.

export const baseConfig: NativeModelConfig = {
  vocabSize: 53,
  hiddenSize: 24,
  intermediateSize: 40,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 8, // ≠ hiddenSize / numHeads
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  ropeScaling: { type: 'default' },
  maxPositionEmbeddings: 256,
  tieWordEmbeddings: false,
  attentionBias: false,
};

export type Weights = Map<string, Float64Array>;

export interface Checkpoint {
  config: NativeModelConfig;
  weights: Weights;
  refs: NativeTensorRef[];
  floats: number;
}

export function randomTensor(rnd: () => number, name: string, shape: number[], dtype: StoredDType, scale: number, center = 0) {
  const n = shape.reduce((a, b) => a * b, 1);
  const raw: number[] = [];
  for (let i = 0; i < n; i++) raw.push(center + scale * (2 * rnd() - 1));
  return { name, shape, dtype, values: storable(raw, dtype) };
}

export function modelTensors(c: NativeModelConfig, dtype: StoredDType, seed: number): TensorData[] {
  const rnd = mulberry32(seed);
  const H = c.hiddenSize;
  const I = c.intermediateSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const lin = (name: string, out: number, inp: number) => randomTensor(rnd, name, [out, inp], dtype, 1.2 / Math.sqrt(inp));
  const t: TensorData[] = [randomTensor(rnd, 'model.embed_tokens.weight', [c.vocabSize, H], dtype, 1)];
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}.`;
    t.push(randomTensor(rnd, p + 'input_layernorm.weight', [H], dtype, 0.2, 1));
    t.push(lin(p + 'self_attn.q_proj.weight', q, H), lin(p + 'self_attn.k_proj.weight', kv, H));
    t.push(lin(p + 'self_attn.v_proj.weight', kv, H), lin(p + 'self_attn.o_proj.weight', H, q));
    if (c.attentionBias) {
      t.push(randomTensor(rnd, p + 'self_attn.q_proj.bias', [q], dtype, 0.3));
      t.push(randomTensor(rnd, p + 'self_attn.k_proj.bias', [kv], dtype, 0.3));
      t.push(randomTensor(rnd, p + 'self_attn.v_proj.bias', [kv], dtype, 0.3));
    }
    t.push(randomTensor(rnd, p + 'post_attention_layernorm.weight', [H], dtype, 0.2, 1));
    t.push(lin(p + 'mlp.gate_proj.weight', I, H), lin(p + 'mlp.up_proj.weight', I, H), lin(p + 'mlp.down_proj.weight', H, I));
  }
  t.push(randomTensor(rnd, 'model.norm.weight', [H], dtype, 0.2, 1));
  if (!c.tieWordEmbeddings) t.push(lin('lm_head.weight', c.vocabSize, H));
  return t;
}

/** Writes the checkpoint over `shards` files, as sharded HF checkpoints are. */
export function writeCheckpoint(dir: string, name: string, config: NativeModelConfig, dtype: StoredDType, seed: number, shards = 1): Checkpoint {
  const tensors = modelTensors(config, dtype, seed);
  const refs: NativeTensorRef[] = [];
  const per = Math.ceil(tensors.length / shards);
  for (let s = 0; s < shards; s++) {
    refs.push(...writeSafetensors(path.join(dir, `${name}-${s}.safetensors`), tensors.slice(s * per, (s + 1) * per)));
  }
  // A tensor the engine must ignore, as HF checkpoints sometimes carry.
  if (config.tieWordEmbeddings) {
    refs.push(...writeSafetensors(path.join(dir, `${name}-extra.safetensors`), [
      { name: 'model.rotary_emb.inv_freq', shape: [2], dtype: 'F32', values: new Float64Array([1, 2]) },
    ]));
  }
  const weights: Weights = new Map(tensors.map((t) => [t.name, t.values]));
  const floats = tensors.reduce((n, t) => n + t.values.length, 0);
  return { config, weights, refs, floats };
}

export const allModules: LoraModuleName[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

export function linearDims(c: NativeModelConfig, m: LoraModuleName): [number, number] {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  switch (m) {
    case 'q_proj': return [c.hiddenSize, q];
    case 'k_proj':
    case 'v_proj': return [c.hiddenSize, kv];
    case 'o_proj': return [q, c.hiddenSize];
    case 'gate_proj':
    case 'up_proj': return [c.hiddenSize, c.intermediateSize];
    case 'down_proj': return [c.intermediateSize, c.hiddenSize];
  }
}

export interface RefLoraModule {
  scale: number;
  rank: number;
  a: Float64Array; // [rank, in]
  b: Float64Array; // [out, rank]
}
/** key: `${layer}.${module}` */
export type RefLora = Map<string, RefLoraModule>;

export interface AdapterFile {
  spec: NativeAdapterSpec;
  lora: RefLora;
}

export function writeAdapter(dir: string, name: string, c: NativeModelConfig, modules: LoraModuleName[], rank: number, scale: number, dtype: StoredDType, seed: number): AdapterFile {
  const rnd = mulberry32(seed);
  const tensors: TensorData[] = [];
  const lora: RefLora = new Map();
  const plan: { layer: number; module: LoraModuleName; ai: number; bi: number }[] = [];
  for (let l = 0; l < c.numLayers; l++) {
    for (const m of modules) {
      const [inp, out] = linearDims(c, m);
      const group = m === 'q_proj' || m === 'k_proj' || m === 'v_proj' || m === 'o_proj' ? 'self_attn' : 'mlp';
      const p = `base_model.model.model.layers.${l}.${group}.${m}.`;
      const a = randomTensor(rnd, p + 'lora_A.weight', [rank, inp], dtype, 1 / Math.sqrt(inp));
      const b = randomTensor(rnd, p + 'lora_B.weight', [out, rank], dtype, 0.8 / Math.sqrt(rank));
      plan.push({ layer: l, module: m, ai: tensors.length, bi: tensors.length + 1 });
      tensors.push(a, b);
      lora.set(`${l}.${m}`, { scale, rank, a: a.values, b: b.values });
    }
  }
  const refs = writeSafetensors(path.join(dir, `${name}.safetensors`), tensors);
  const spec: NativeAdapterSpec = {
    modules: plan.map((p) => ({ layer: p.layer, module: p.module, rank, scale, a: refs[p.ai]!, b: refs[p.bi]! })),
  };
  return { spec, lora };
}

// ---------------------------------------------------------------------------------------
// The reference: HF's Llama forward, written out with naive float64 loops.

export function refInvFreq(c: NativeModelConfig): number[] {
  const inv: number[] = [];
  for (let i = 0; i < c.headDim / 2; i++) inv.push(1 / c.ropeTheta ** ((2 * i) / c.headDim));
  const r = c.ropeScaling;
  if (r.type === 'linear') return inv.map((f) => f / r.factor);
  if (r.type === 'llama3') {
    const low = r.originalMaxPositionEmbeddings / r.lowFreqFactor;
    const high = r.originalMaxPositionEmbeddings / r.highFreqFactor;
    return inv.map((f) => {
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < high) return f;
      if (wavelen > low) return f / r.factor;
      const smooth = (r.originalMaxPositionEmbeddings / wavelen - r.lowFreqFactor) / (r.highFreqFactor - r.lowFreqFactor);
      return ((1 - smooth) * f) / r.factor + smooth * f;
    });
  }
  return inv;
}

export interface RefOutput {
  logits: Float64Array; // [T, vocab]
  k: Float64Array[]; // per layer [numKvHeads, T, headDim]
  v: Float64Array[];
}

export function refForward(ck: Checkpoint, tokens: number[], lora: RefLora | null = null): RefOutput {
  const c = ck.config;
  const W = (name: string) => {
    const w = ck.weights.get(name);
    assert.ok(w, `reference: no weight ${name}`);
    return w;
  };
  const H = c.hiddenSize;
  const hd = c.headDim;
  const T = tokens.length;
  const half = hd / 2;
  const inv = refInvFreq(c);

  const rmsnorm = (x: Float64Array, w: Float64Array) => {
    let ss = 0;
    for (const v of x) ss += v * v;
    const r = 1 / Math.sqrt(ss / x.length + c.rmsNormEps);
    return x.map((v, i) => v * r * w[i]!);
  };
  const matvec = (w: Float64Array, out: number, x: Float64Array) => {
    const y = new Float64Array(out);
    for (let o = 0; o < out; o++) {
      let s = 0;
      for (let i = 0; i < x.length; i++) s += w[o * x.length + i]! * x[i]!;
      y[o] = s;
    }
    return y;
  };
  const linear = (layer: number, module: LoraModuleName, weight: string, bias: string | null, x: Float64Array) => {
    const [, out] = linearDims(c, module);
    const y = matvec(W(weight), out, x);
    if (bias) y.forEach((v, i) => (y[i] = v + W(bias)[i]!));
    const m = lora?.get(`${layer}.${module}`);
    if (m) {
      const ax = matvec(m.a, m.rank, x);
      const bax = matvec(m.b, out, ax);
      y.forEach((v, i) => (y[i] = v + m.scale * bax[i]!));
    }
    return y;
  };
  const rope = (x: Float64Array, heads: number, pos: number) => {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < half; i++) {
        const a = x[h * hd + i]!;
        const b = x[h * hd + i + half]!;
        const cs = Math.cos(pos * inv[i]!);
        const sn = Math.sin(pos * inv[i]!);
        x[h * hd + i] = a * cs - b * sn;
        x[h * hd + i + half] = b * cs + a * sn;
      }
    }
  };

  let xs = tokens.map((t) => W('model.embed_tokens.weight').slice(t * H, (t + 1) * H));
  const out: RefOutput = { logits: new Float64Array(T * c.vocabSize), k: [], v: [] };
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}.`;
    const bias = (n: string) => (c.attentionBias ? p + `self_attn.${n}.bias` : null);
    const K = new Float64Array(c.numKvHeads * T * hd);
    const V = new Float64Array(c.numKvHeads * T * hd);
    const qs: Float64Array[] = [];
    xs.forEach((x, t) => {
      const n1 = rmsnorm(x, W(p + 'input_layernorm.weight'));
      const q = linear(l, 'q_proj', p + 'self_attn.q_proj.weight', bias('q_proj'), n1);
      const k = linear(l, 'k_proj', p + 'self_attn.k_proj.weight', bias('k_proj'), n1);
      const v = linear(l, 'v_proj', p + 'self_attn.v_proj.weight', bias('v_proj'), n1);
      rope(q, c.numHeads, t);
      rope(k, c.numKvHeads, t);
      for (let h = 0; h < c.numKvHeads; h++) {
        for (let d = 0; d < hd; d++) {
          K[(h * T + t) * hd + d] = k[h * hd + d]!;
          V[(h * T + t) * hd + d] = v[h * hd + d]!;
        }
      }
      qs.push(q);
    });
    out.k.push(K);
    out.v.push(V);
    const group = c.numHeads / c.numKvHeads;
    xs = xs.map((x, t) => {
      const att = new Float64Array(c.numHeads * hd);
      for (let h = 0; h < c.numHeads; h++) {
        const kvh = Math.floor(h / group);
        const s: number[] = [];
        for (let j = 0; j <= t; j++) {
          let dot = 0;
          for (let d = 0; d < hd; d++) dot += qs[t]![h * hd + d]! * K[(kvh * T + j) * hd + d]!;
          s.push(dot / Math.sqrt(hd));
        }
        const mx = Math.max(...s);
        const e = s.map((v) => Math.exp(v - mx));
        const sum = e.reduce((a, b) => a + b, 0);
        for (let j = 0; j <= t; j++) {
          for (let d = 0; d < hd; d++) att[h * hd + d] = att[h * hd + d]! + (e[j]! / sum) * V[(kvh * T + j) * hd + d]!;
        }
      }
      const h1 = x.map((v, i) => v + linear(l, 'o_proj', p + 'self_attn.o_proj.weight', null, att)[i]!);
      const n2 = rmsnorm(h1, W(p + 'post_attention_layernorm.weight'));
      const g = linear(l, 'gate_proj', p + 'mlp.gate_proj.weight', null, n2);
      const u = linear(l, 'up_proj', p + 'mlp.up_proj.weight', null, n2);
      const a = g.map((gv, i) => (gv / (1 + Math.exp(-gv))) * u[i]!);
      const down = linear(l, 'down_proj', p + 'mlp.down_proj.weight', null, a);
      return h1.map((v, i) => v + down[i]!);
    });
  }
  const head = c.tieWordEmbeddings ? W('model.embed_tokens.weight') : W('lm_head.weight');
  xs.forEach((x, t) => out.logits.set(matvec(head, c.vocabSize, rmsnorm(x, W('model.norm.weight'))), t * c.vocabSize));
  return out;
}

// ---------------------------------------------------------------------------------------
// Helpers over the addon.

export const greedy: NativeSampling = { temperature: 0, topP: 1, seed: 0 };

export function ids(...xs: number[]): Int32Array {
  return Int32Array.from(xs);
}

export function tokenSeq(n: number, vocab: number, seed: number): number[] {
  const rnd = mulberry32(seed);
  return Array.from({ length: n }, () => Math.floor(rnd() * vocab));
}

export async function prefillAll(model: NativeModel, tokens: number[], adapter: NativeAdapter | null = null, chunkSize = 4, capacity = 64) {
  const cache = model.newCache(capacity);
  const logits = await model.prefill(cache, Int32Array.from(tokens), adapter, { chunkSize, logits: 'all' }, null, null);
  assert.ok(logits);
  return { cache, logits };
}

export function checkAgainstReference(cache: NativeKvCache, logits: Float32Array, ref: RefOutput, layers: number, what: string) {
  assertClose(logits, ref.logits, `${what}: logits`);
  for (let l = 0; l < layers; l++) {
    const { k, v } = cache.readLayer(l);
    assertClose(k, ref.k[l]!, `${what}: layer ${l} K`);
    assertClose(v, ref.v[l]!, `${what}: layer ${l} V`);
  }
}

export async function rejectsWith(p: Promise<unknown>, pattern: RegExp): Promise<Error> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof Error, `expected an Error, got ${String(e)}`);
    assert.match(e.message, pattern);
    return e;
  }
  assert.fail(`expected a rejection matching ${pattern}`);
}
