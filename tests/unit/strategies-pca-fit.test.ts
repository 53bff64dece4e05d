// Strategy ids of pca and fit (shared/strategies.ts) and the pure rules of fit to budget
// (main/compare/fit.ts): parsing, canonical ids, weights ↔ exponents, problems on a model,
// the rates a fit tries and the choice it makes.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ALL_STRATEGIES, parseStrategy, parseStrategyList, pcaExponents, pcaId, pcaWeights, strategyId, strategyProblem } from '../../shared/strategies.js';
import { bitsForBudget, cachedValues, chooseFit, FIT_LADDER, fitIds, fitRates, probeBits, probeWeights } from '../../main/compare/fit.js';
import type { FitPoint } from '../../shared/report.js';

describe('pca and fit ids', () => {
  test('parse, canonicalize and round-trip', () => {
    assert.deepEqual(parseStrategy('pca:2'), { kind: 'pca', bitsPerValue: 2, weightExponents: null });
    assert.deepEqual(parseStrategy(' pca:1.50@0.3.12 '), { kind: 'pca', bitsPerValue: 1.5, weightExponents: [0, 3, 12] });
    assert.equal(strategyId(parseStrategy('pca:1.50@0.3.12')), 'pca:1.5@0.3.12');
    assert.equal(strategyId(parseStrategy('pca:0.1234')), 'pca:0.123');
    assert.deepEqual(parseStrategy('fit'), { kind: 'fit' });
    for (const bad of ['pca', 'pca:', 'pca:0', 'pca:16.5', 'pca:-1', 'pca:2@', 'pca:2@1,2', 'pca:2@41', 'pca:x', 'pca:2@1..2']) {
      assert.throws(() => parseStrategy(bad), Error, bad);
    }
  });
  test('all selects pca:2 (an eighth of a 16-bit cache); lists keep weighted ids whole', () => {
    assert.ok(ALL_STRATEGIES.includes('pca:2'));
    assert.ok(parseStrategyList('all').includes('pca:2'));
    assert.deepEqual(parseStrategyList('pca:1@0.2.4,base'), ['exact', 'pca:1@0.2.4', 'base']);
  });
  test('weights ↔ exponents: half-octaves below the heaviest, capped', () => {
    assert.deepEqual(pcaExponents([1, 0.5, 0.25, 1e-30]), [0, 2, 4, 40]);
    assert.deepEqual(pcaWeights([0, 2, 4]), [1, 0.5, 0.25]);
    assert.equal(pcaId(2, pcaExponents([4, 2])), 'pca:2@0.2');
  });
  test('a weighted id must carry two weights per layer of the model', () => {
    const model = { numLayers: 2, numKvHeads: 2, headDim: 8 };
    assert.equal(strategyProblem('pca:2@0.1.2.3', model, null), null);
    assert.match(strategyProblem('pca:2@0.1.2', model, null)!, /needs one weight for K and one for V of every layer \(4\)/);
  });
});

describe('fit to budget: rules', () => {
  const shape = { numLayers: 8, numKvHeads: 2, headDim: 64 };
  const values = cachedValues(shape, 1024);
  test('bits a budget buys; rates tried stay within it', () => {
    assert.equal(values, 8 * 2 * 128 * 1024);
    assert.equal(bitsForBudget(values / 4, values), 2);
    const rates = fitRates({ budgetBytes: values / 4 }, values);
    assert.ok(rates.every((b) => b <= 2) && rates.includes(2));
    assert.deepEqual(fitRates({ targetKl: 1e-3 }, values), [...FIT_LADDER]);
    assert.equal(probeBits({ targetKl: 1e-3 }, values), 2);
    assert.equal(probeBits({ budgetBytes: values / 8 }, values), 1);
  });
  test('probe weights: KL per squared error, parts without error get the smallest weight', () => {
    assert.deepEqual(probeWeights([{ meanKl: 2e-4, sqErr: 2 }, { meanKl: 1e-6, sqErr: 1 }, { meanKl: 0, sqErr: 0 }]), [1e-4, 1e-6, 1e-6]);
    const ids = fitIds([1, 2, 2], [1e-4, 1e-6]);
    assert.deepEqual(ids, ['pca:1@0.13', 'pca:2@0.13']);
  });
  const pts: FitPoint[] = [
    { strategy: 'pca:0.5@0.1', bytes: 100, meanKl: 5e-3, top1Agreement: 0.95 },
    { strategy: 'pca:1@0.1', bytes: 200, meanKl: 8e-4, top1Agreement: 0.98 },
    { strategy: 'pca:2@0.1', bytes: 400, meanKl: 2e-4, top1Agreement: 0.996 },
    { strategy: 'pca:4@0.1', bytes: 800, meanKl: 1e-5, top1Agreement: 1 },
  ];
  test('the cheapest point meeting KL and top-1, within the budget', () => {
    assert.deepEqual(chooseFit(pts, { targetKl: 1e-3 }).chosen, 'pca:1@0.1');
    const both = chooseFit(pts, { targetKl: 1e-3, minTop1: 0.99 });
    assert.equal(both.chosen, 'pca:2@0.1');
    assert.equal(both.met, true);
    const tight = chooseFit(pts, { targetKl: 1e-3, minTop1: 0.99, budgetBytes: 300 });
    assert.equal(tight.met, false);
    assert.equal(tight.chosen, 'pca:1@0.1', 'the lowest KL within the budget');
    assert.match(tight.reason, /no store tried reaches/);
  });
  test('a budget alone: the most bits within it; nothing within it is not met', () => {
    const b = chooseFit(pts, { budgetBytes: 500 });
    assert.equal(b.chosen, 'pca:2@0.1');
    assert.equal(b.met, true);
    assert.equal(chooseFit(pts, { budgetBytes: 50 }).met, false);
  });
});
