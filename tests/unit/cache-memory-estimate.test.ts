import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  checkContext,
  checkFits,
  estimateMemory,
  kvCacheBytes,
  lowrankEncodeScratchBytes,
  storeBytes,
  type MemoryEstimateInput,
  type MemoryModelShape,
} from '../../main/cache/memory-estimate.js';
import { formatBytes } from '../../shared/format.js';

// 2 layers, 2 KV heads, head dim 4: one token of one layer's K or V is 2·4 = 8 values.
const model: MemoryModelShape = {
  numLayers: 2,
  numKvHeads: 2,
  headDim: 4,
  vocabSize: 10,
  hiddenSize: 8,
  intermediateSize: 16,
  numHeads: 2,
};
const A = { vRanks: [2, 0], paramBytes: 1000 };
const B = { vRanks: [4, 4], paramBytes: 3000 };

describe('storeBytes (10 document tokens, fp32)', () => {
  const T = 10;
  it('matches the hand-computed size of each strategy kind', () => {
    // full cache: 10 tokens · 2 layers · 2 (K,V) · 2 heads · 4 dims · 4 bytes
    assert.equal(kvCacheBytes(model, T), 1280);
    assert.equal(storeBytes('exact', model, A, T), 1280);
    assert.equal(storeBytes('base', model, A, T), 0);
    // Σ r_v = 2 (layer 1 not adapted) · 10 tokens · 4 bytes
    assert.equal(storeBytes('seed-minikv', model, A, T), 80);
    assert.equal(storeBytes('lragent', model, A, T), 80);
    assert.equal(storeBytes('seed-minikv', model, B, T), 320);
    // 10 · 2 · 2 · 2 · (4 int8 + 4 scale)
    assert.equal(storeBytes('delta-int8', model, A, T), 640);
    // 10 · 2 · 2 · 2 · (2 packed + 4 scale)
    assert.equal(storeBytes('delta-int4', model, A, T), 480);
    // 2 layers · 2 · k=1 · (10 tokens + 2·4) · 4
    assert.equal(storeBytes('lowrank:1', model, A, T), 288);
    assert.equal(storeBytes('lowrank:3', model, A, T), 864);
    // seed 80 + 1 exact layer: 10 · 2 · 2 · 4 · 4 = 640
    assert.equal(storeBytes('hybrid:1', model, A, T), 720);
    // n beyond the layer count is capped at every layer
    assert.equal(storeBytes('hybrid:5', model, A, T), 80 + 1280);
    assert.equal(storeBytes('hybrid:0', model, A, T), 80);
    // bytesPerValue scales the exact parts only
    assert.equal(storeBytes('exact', model, A, T, 2), 640);
    assert.equal(storeBytes('hybrid:1', model, A, T, 2), 80 + 320);
    assert.throws(() => storeBytes('nope', model, A, T), /unknown strategy/);
  });
});

describe('lowrankEncodeScratchBytes', () => {
  it('counts the engine\'s batches of Δ rows: as many as fit 512 MiB, in even batches', () => {
    // Llama-2-7B shape, 1,098 tokens: a delta is 1098 · 4096 · 4 = 17,989,632 bytes, 29 fit,
    // so 64 deltas go in 3 batches of at most 22; each delta's sketches (1098 + 8192) · 16 · 4.
    const llama = { ...model, numLayers: 32, numKvHeads: 32, headDim: 128 };
    assert.equal(lowrankEncodeScratchBytes(llama, 1098, 8), 22 * (17_989_632 + 594_560));
    // A delta over the budget still goes one at a time.
    assert.equal(lowrankEncodeScratchBytes(llama, 2 ** 20, 8), 2 ** 20 * 4096 * 4 + (2 ** 20 + 8192) * 16 * 4);
    assert.equal(lowrankEncodeScratchBytes(llama, 0, 8), 0);
  });
});

describe('estimateMemory', () => {
  const input: MemoryEstimateInput = {
    model,
    weightsBytes: 50_000,
    documentTokens: 10,
    promptTokens: 3,
    maxNewTokens: 2,
    adapters: [A, B],
    strategies: ['seed-minikv', 'delta-int8', 'seed-minikv'], // exact is added, duplicates dropped
  };

  it('breaks the memory down into hand-computed items', () => {
    const e = estimateMemory(input);
    const by = Object.fromEntries(e.breakdown.map((i) => [i.id, i.bytes]));
    assert.deepEqual(by, {
      weights: 50_000,
      'adapter-weights': 4000,
      'base-cache': 1280,
      'exact-caches': 2560,
      'store:seed-minikv': 80 + 320,
      'store:delta-int8': 2 * 640,
      // 2 adapters × 3 strategies = 6 sequences, each holding only its own 3 + 2 + 1 = 6
      // positions (the document is read from the shared caches): 6 · 6·2·2·2·4·4
      'sequence-caches': 6 * 768,
      // logits 6·10·4 = 240; activations 6·4·(3·8 + (2·2 + 2·2)·4 + 2·16) = 6·4·88 = 2112;
      // attention partials 6 rows · 2 heads · 2 parts · 1 chunk · (4 + 2 + 64) · 4 = 6720
      'decode-scratch': 240 + 2112 + 6720,
      // 6 sequences · 2 scored positions · 10 vocab · 4
      'scoring-logits': 480,
    });
    assert.equal(e.cacheBytes, 4000 + 1280 + 2560 + 400 + 1280 + 4608 + 9072 + 480);
    assert.equal(e.cacheBytes, 23680);
    assert.equal(e.total, 23680 + 50_000);
    assert.deepEqual(
      e.breakdown.filter((i) => !i.inCacheBudget).map((i) => i.id),
      ['weights'],
    );
    assert.equal(e.breakdown.find((i) => i.id === 'exact-caches')!.item, '2 exact caches');
  });

  it('lists base (0 bytes), lowrank and hybrid stores, and scales with bytesPerValue', () => {
    const e = estimateMemory({ ...input, adapters: [A], strategies: ['base', 'lowrank:1', 'hybrid:1', 'lragent', 'delta-int4'], bytesPerValue: 4 });
    const by = Object.fromEntries(e.breakdown.map((i) => [i.id, i.bytes]));
    assert.equal(by['store:base'], 0);
    assert.equal(by['store:lowrank:1'], 288);
    assert.equal(by['store:hybrid:1'], 720);
    assert.equal(by['store:lragent'], 80);
    assert.equal(by['store:delta-int4'], 480);
    assert.equal(by['sequence-caches'], 6 * 768); // 1 adapter × 6 strategies (exact added)
    // lowrank:1's encode: all 2L = 4 deltas in one batch (4 · 10 · 8 · 4 = 1280) and their
    // sketches, 4 · (10 + 2·8) · min(1 + 8, 10, 8) · 4 = 3328.
    assert.equal(by['encode-scratch'], 1280 + 3328);
    assert.equal(by['encode-scratch'], lowrankEncodeScratchBytes(model, 10, 1));
    assert.equal('encode-scratch' in Object.fromEntries(estimateMemory(input).breakdown.map((i) => [i.id, i.bytes])), false);
    const half = estimateMemory({ ...input, bytesPerValue: 2 });
    const byHalf = Object.fromEntries(half.breakdown.map((i) => [i.id, i.bytes]));
    assert.equal(byHalf['base-cache'], 640);
    assert.equal(byHalf['store:seed-minikv'], 400); // fp32 regardless
  });

  it('refuses shapes that cannot be right', () => {
    assert.throws(() => estimateMemory({ ...input, adapters: [{ vRanks: [1], paramBytes: 0 }] }), /vRanks has 1 entries, the model has 2 layers/);
    assert.throws(() => estimateMemory({ ...input, documentTokens: -1 }), /documentTokens/);
    assert.throws(() => estimateMemory({ ...input, strategies: ['lowrank:0'] }), /rank must be at least 1/);
  });
});

describe('checkFits / checkContext', () => {
  const e = estimateMemory({
    model,
    weightsBytes: 50_000,
    documentTokens: 10,
    promptTokens: 3,
    maxNewTokens: 2,
    adapters: [A, B],
    strategies: ['exact', 'seed-minikv', 'delta-int8', 'base'],
  });

  it('returns null when the cache items fit (the model weights are not counted, adapters are)', () => {
    assert.equal(e.cacheBytes, 4000 + 1280 + 2560 + 400 + 1280 + 8 * 768 + (8 * 40 + 8 * 4 * 88 + 8 * 2 * 2 * 70 * 4) + 8 * 80);
    assert.equal(checkFits(e, e.cacheBytes), null);
    assert.notEqual(checkFits(e, e.cacheBytes - 1), null);
  });

  it('names the total, each non-zero item and the budget', () => {
    assert.equal(
      checkFits(e, 8 * 1024),
      'This comparison needs about 27.7 KiB (adapter weights 3.9 KiB, base cache 1.3 KiB, 2 exact caches 2.5 KiB, 2 seed-minikv stores 400 B, ' +
        '2 delta-int8 stores 1.3 KiB, 8 sequence caches (prompt and new tokens) 6.0 KiB, decode scratch 11.8 KiB, ' +
        'scoring logits (8 sequences) 640 B) but the cache budget is 8.0 KiB: ' +
        'shorten the document, use fewer adapters or strategies, or raise the budget.',
    );
  });

  it('checkContext names both numbers', () => {
    assert.equal(checkContext(4096, 4096), null);
    const msg = checkContext(5000, 4096);
    assert.equal(
      msg,
      'This comparison needs 5000 positions (document + prompt + new tokens) but the model supports at most 4096: ' +
        'shorten the document or the prompt, or lower the number of new tokens.',
    );
    assert.throws(() => checkContext(-1, 10), RangeError);
  });
});

describe('formatBytes', () => {
  it('uses B, KiB, MiB, GiB with one decimal', () => {
    assert.equal(formatBytes(0), '0 B');
    assert.equal(formatBytes(1023), '1023 B');
    assert.equal(formatBytes(1024), '1.0 KiB');
    assert.equal(formatBytes(1536), '1.5 KiB');
    assert.equal(formatBytes(1024 * 1024 - 1), '1.0 MiB'); // not "1024.0 KiB"
    assert.equal(formatBytes(12.4 * 1024 ** 3), '12.4 GiB');
    assert.equal(formatBytes(8 * 1024 ** 3), '8.0 GiB');
    assert.equal(formatBytes(5 * 1024 ** 4), '5120.0 GiB');
    assert.equal(formatBytes(-2048), '-2.0 KiB');
  });
});
