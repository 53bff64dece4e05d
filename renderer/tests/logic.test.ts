import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TokenEvent } from '../../shared/compare.js';
import { firstDivergence, firstDivergenceSoFar } from '../src/logic/divergence.js';
import { count, percent, sig3 } from '../src/logic/format.js';
import { adapterCountTooltip, scatterTooltip, stackedBytesTooltip } from '../src/logic/chart-tooltips.js';
import { appendTokens, cellKey, gridFromReport, gridFromStream, onlyDiffering } from '../src/logic/grid.js';
import { errorMatrix, heatmapData, sharedDomain, summaryMatrix, tokenColumnLabels } from '../src/logic/heatmap.js';
import { adaptersThatFit, memoryBars, scalingAxisMax, scalingLines, totalFor } from '../src/logic/memory.js';
import { buildRequest, contextUse, baseName, type SetupSnapshot } from '../src/logic/request.js';
import { paretoFront, scatterPoints } from '../src/logic/scatter.js';
import { overallFraction, stageViews } from '../src/logic/stages.js';
import { EMPTY_SELECTION, selectedFit, selectedStrategies, selectionFromIds } from '../src/logic/strategy-selection.js';
import { orderStrategies } from '../src/logic/strategy-order.js';
import { makeReport } from './fixtures.js';

describe('format', () => {
  it('gives 3 significant digits', () => {
    assert.equal(sig3(0.0041234), '0.00412');
    assert.equal(sig3(1.23456), '1.23');
    assert.equal(sig3(15.2408), '15.2');
    assert.equal(sig3(1234.5), '1235');
    assert.equal(sig3(9.894e-6), '9.89e-6');
    assert.equal(sig3(0), '0');
    assert.equal(sig3(Number.NaN), '—');
    assert.equal(sig3(null), '—');
    assert.equal(percent(0.6875), '68.8%');
    assert.equal(count(2220608), '2,220,608');
  });
});

describe('divergence', () => {
  it('finds the first differing token, or where the shorter ends', () => {
    assert.equal(firstDivergence([1, 2, 3], [1, 2, 3]), null);
    assert.equal(firstDivergence([1, 5, 3], [1, 2, 3]), 1);
    assert.equal(firstDivergence([1, 2], [1, 2, 3]), 2);
    assert.equal(firstDivergence([], []), null);
  });
  it('while streaming, a sequence only behind the reference has not diverged', () => {
    assert.equal(firstDivergenceSoFar([1, 2], [1, 2, 3]), null);
    assert.equal(firstDivergenceSoFar([1, 2, 3], [1]), null);
    assert.equal(firstDivergenceSoFar([1, 4], [1, 2, 3]), 1);
  });
});

describe('output grid', () => {
  it('puts exact on top, adapters as columns, and marks tokens from the first divergence', () => {
    const g = gridFromReport(makeReport());
    assert.deepEqual(g.adapters, ['a', 'b']);
    assert.deepEqual(g.rows.map((r) => r.strategy), ['exact', 'base', 'seed-minikv']);
    const base = g.rows[1]!.cells[0]!;
    assert.equal(base.firstDivergence, 1);
    assert.deepEqual(base.tokens.map((t) => t.diverged), [false, true, true]);
    assert.deepEqual(base.tokens.map((t) => t.kl), [0, 2, 3]);
    assert.equal(base.tokens[0]!.prob, 0.9);
    assert.equal(g.rows[1]!.differs, true);
    assert.equal(g.rows[2]!.differs, false);
    assert.equal(g.rows[0]!.cells[0]!.differs, false);
  });
  it('"only what differs" keeps exact and the rows that differ somewhere', () => {
    const g = onlyDiffering(gridFromReport(makeReport()));
    assert.deepEqual(g.rows.map((r) => r.strategy), ['exact', 'base']);
  });
  it('builds the live grid from streamed steps, ignoring repeats, with divergence so far', () => {
    const ev = (adapter: number, strategy: TokenEvent['strategy'], step: number, token: number): TokenEvent => ({ adapter, strategy, step, token, piece: `p${token}`, prob: 0.5 });
    let s = appendTokens({}, [ev(0, 'exact', 0, 1), ev(0, 'base', 0, 1)]);
    const before = s;
    s = appendTokens(s, [ev(0, 'exact', 1, 2), ev(0, 'base', 1, 7), ev(0, 'base', 1, 8)]);
    assert.equal(before[cellKey(0, 'exact')]!.length, 1, 'earlier state is not mutated');
    assert.equal(s[cellKey(0, 'base')]!.length, 2);
    const g = gridFromStream(['a'], ['exact', 'base'], s);
    assert.deepEqual(g.rows.map((r) => r.strategy), ['exact', 'base']);
    assert.equal(g.rows[1]!.cells[0]!.firstDivergence, 1);
    assert.equal(g.rows[1]!.cells[0]!.tokens[1]!.piece, 'p7');
    assert.equal(g.rows[1]!.cells[0]!.tokens[1]!.kl, null);
  });
  it('keeps the view of a token that did not change from one live flush to the next (its span is not rendered again)', () => {
    const ev = (strategy: TokenEvent['strategy'], step: number, token: number): TokenEvent => ({ adapter: 0, strategy, step, token, piece: `p${token}`, prob: 0.5 });
    const s1 = appendTokens({}, [ev('exact', 0, 1), ev('base', 0, 1), ev('exact', 1, 2), ev('base', 1, 2)]);
    const g1 = gridFromStream(['a'], ['exact', 'base'], s1);
    const s2 = appendTokens(s1, [ev('exact', 2, 3), ev('base', 2, 9)]);
    const g2 = gridFromStream(['a'], ['exact', 'base'], s2);
    const base1 = g1.rows[1]!.cells[0]!.tokens;
    const base2 = g2.rows[1]!.cells[0]!.tokens;
    assert.equal(base2[0], base1[0], 'same object for an unchanged token');
    assert.equal(base2[1], base1[1]);
    assert.equal(base2[2]!.diverged, true);
    // Diverging earlier marks tokens already shown: they get a new view with the flag.
    const s3 = appendTokens({}, [ev('exact', 0, 1), ev('base', 0, 5)]);
    const g3a = gridFromStream(['a'], ['exact', 'base'], { [cellKey(0, 'exact')]: s3[cellKey(0, 'exact')]!.slice(0, 0), [cellKey(0, 'base')]: s3[cellKey(0, 'base')]! });
    const g3b = gridFromStream(['a'], ['exact', 'base'], s3);
    assert.equal(g3a.rows[1]!.cells[0]!.tokens[0]!.diverged, false, 'nothing to compare with yet');
    assert.equal(g3b.rows[1]!.cells[0]!.tokens[0]!.diverged, true);
    assert.notEqual(g3b.rows[1]!.cells[0]!.tokens[0], g3a.rows[1]!.cells[0]!.tokens[0]);
  });
});

describe('heatmaps', () => {
  it('shares one domain across adapters, anchored at 0, ignoring NaN', () => {
    assert.deepEqual(sharedDomain([[[0.1, 0.5]], [[Number.NaN, 2]]]), [0, 2]);
    assert.deepEqual(sharedDomain([]), [0, 1]);
    const [lo, hi] = sharedDomain([[[0, 0]]]);
    assert.ok(hi > lo);
  });
  it('has a row per layer for tokens and heads, with token-range labels', () => {
    const r = makeReport();
    const m = errorMatrix(r, r.adapters[1]!, 'seed-minikv', 'tokens', 'k')!;
    assert.deepEqual(m.rows, ['L0', 'L1']);
    assert.deepEqual(m.columns, ['0–1', '2–3', '4']);
    assert.equal(m.values[1]![2], 2);
    const h = errorMatrix(r, r.adapters[0]!, 'base', 'heads', 'v')!;
    assert.deepEqual(h.columns, ['H0', 'H1']);
    assert.equal(errorMatrix(r, r.adapters[0]!, 'lragent', 'heads', 'v'), null);
    assert.deepEqual(tokenColumnLabels(1, 3, 3), ['0', '1', '2']);
    assert.deepEqual(heatmapData({ rows: ['L0'], columns: ['a', 'b'], values: [[1, Number.NaN]] }), [[0, 0, 1]]);
  });
  it('summarises layer × strategy without exact', () => {
    const r = makeReport();
    const m = summaryMatrix(r, r.adapters[0]!, 'v');
    assert.deepEqual(m.columns, ['base', 'seed-minikv']);
    assert.deepEqual(m.values, [[0.2, 0.2], [0.4, 0.4]]);
  });
});

describe('memory', () => {
  it('stacks the shared base (not for exact) and each adapter store, per strategy', () => {
    const b = memoryBars(makeReport());
    assert.deepEqual(b.strategies, ['exact', 'base', 'seed-minikv']);
    assert.deepEqual(b.series.map((s) => s.name), ['shared base cache', 'a', 'b']);
    assert.deepEqual(b.series[0]!.values, [0, 800, 800]);
    assert.deepEqual(b.series[1]!.values, [1000, 0, 100]);
    assert.deepEqual(b.totals, [2000, 800, 1200]);
    assert.deepEqual(b.ratioToExact, [1, 0.4, 0.6]);
  });
  it('counts the adapters that fit in a budget', () => {
    assert.equal(adaptersThatFit(800, 200, 2000), 6);
    assert.equal(adaptersThatFit(800, 0, 2000), Number.POSITIVE_INFINITY);
    assert.equal(adaptersThatFit(800, 10, 500), 0);
    const lines = scalingLines(makeReport(), 10_000);
    const seed = lines.find((l) => l.strategy === 'seed-minikv')!;
    assert.equal(seed.perAdapterBytes, 200);
    assert.equal(seed.fixedBytes, 800);
    assert.equal(seed.fits, 46);
    assert.equal(totalFor(seed, 10), 2800);
    assert.equal(lines.find((l) => l.strategy === 'exact')!.fits, 10);
    // 1.5 × where exact leaves the budget (15), up to a round number of adapters: the axis ends on a labelled tick.
    assert.equal(scalingAxisMax(lines, 2), 20);
  });
});

describe('quality scatter', () => {
  it('has a point per adapter and strategy, and a Pareto front', () => {
    const r = makeReport();
    const pts = scatterPoints(r, 'meanKl');
    assert.equal(pts.length, 6);
    const front = paretoFront(pts, 'meanKl').map((p) => `${p.adapterName}/${p.strategy}`);
    // Per adapter, not pooled: for a, base (0 B, KL 1.67) and seed-minikv (100 B, KL 0.01) are each unbeaten,
    // exact (1000 B, KL 0.01) is beaten by seed-minikv; for b, base (0 B, KL 0.01) beats the rest.
    assert.deepEqual(front, ['a/base', 'a/seed-minikv', 'b/base']);
    const top1 = paretoFront(scatterPoints(r, 'top1Agreement'), 'top1Agreement').map((p) => `${p.adapterName}/${p.strategy}`);
    assert.deepEqual(top1, ['a/base', 'a/seed-minikv', 'b/base']);
  });
});

describe('strategies', () => {
  it('orders exact first', () => {
    assert.deepEqual(orderStrategies(['base', 'exact', 'lowrank:4', 'base']), ['exact', 'base', 'lowrank:4']);
  });
  it('turns the picker into ids and back, with parameter errors in words', () => {
    const sel = { ...EMPTY_SELECTION, simple: { ...EMPTY_SELECTION.simple, base: true }, lowrank: { on: true, ranks: '4, 8,4' }, hybrid: { on: true, layers: '1' } };
    assert.deepEqual(selectedStrategies(sel), { ids: ['exact', 'base', 'lowrank:4', 'lowrank:8', 'hybrid:1'], errors: [] });
    const bad = selectedStrategies({ ...sel, lowrank: { on: true, ranks: '0' } });
    assert.match(bad.errors[0]!, /lowrank ranks: "0" is not a whole number ≥ 1/);
    const back = selectionFromIds(['exact', 'seed-minikv', 'lowrank:4', 'hybrid:1', 'nonsense']);
    assert.equal(back.simple['seed-minikv'], true);
    assert.deepEqual(back.lowrank, { on: true, ranks: '4' });
    assert.deepEqual(back.hybrid, { on: true, layers: '1' });
  });
});

describe('run stages', () => {
  it('marks earlier stages done, encode/measure as one step, and finishes everything at the end', () => {
    const seen = {
      load: { stage: 'load' as const, done: 2, total: 3 },
      encode: { stage: 'encode' as const, done: 3, total: 4 },
      measure: { stage: 'measure' as const, done: 2, total: 4 },
    };
    const v = stageViews(seen, 'measure', false);
    const by = Object.fromEntries(v.map((x) => [x.stage, x]));
    assert.equal(by.load!.status, 'done');
    assert.equal(by.load!.done, 3, 'a finished stage shows its full count');
    assert.equal(by.encode!.status, 'active');
    assert.equal(by.measure!.status, 'active');
    assert.equal(by.generate!.status, 'pending');
    assert.ok(overallFraction(v) > 0.1 && overallFraction(v) < 0.5);
    const g = stageViews({ ...seen, generate: { stage: 'generate', done: 1, total: 10 } }, 'generate', false);
    assert.equal(g.find((x) => x.stage === 'measure')!.status, 'done');
    assert.ok(stageViews(seen, 'measure', true).filter((x) => x.status !== 'pending').every((x) => x.status === 'done'));
  });
});

describe('request', () => {
  const snapshot = (): SetupSnapshot => ({
    modelDir: '/m',
    model: { dir: '/m', hasTokenizer: true, numLayers: 2, numKvHeads: 2, headDim: 8, maxPositionEmbeddings: 64 } as SetupSnapshot['model'],
    modelError: null,
    tokenizerDir: '',
    adapters: [{ dir: '/x/qv', name: 'qv', info: null, error: null, loading: false }],
    documentText: 'hello',
    promptText: ' p',
    tokenCount: { documentTokens: 10, promptTokens: 2, contextLimit: 64, complete: true },
    strategies: { ...EMPTY_SELECTION, simple: { ...EMPTY_SELECTION.simple, base: true } },
    settings: { maxNewTokens: 8, sampling: 'greedy', temperature: 0.7, topP: 0.9, seed: 1, dtype: 'fp32', device: 'auto', stopAtEos: true },
  });
  it('builds a greedy request', () => {
    const { request, problems } = buildRequest(snapshot());
    assert.deepEqual(problems, []);
    assert.deepEqual(request, {
      modelDir: '/m',
      adapters: [{ dir: '/x/qv', name: 'qv' }],
      documentText: 'hello',
      promptText: ' p',
      strategies: ['exact', 'base'],
      maxNewTokens: 8,
      temperature: 0,
      topP: 1,
      seed: 1,
      dtype: 'fp32',
      device: 'auto',
      stopAtEos: true,
    });
  });
  it('says what is missing or wrong', () => {
    const s = snapshot();
    const { request, problems } = buildRequest({
      ...s,
      adapters: [...s.adapters, { dir: '/y/qv', name: 'qv', info: null, error: 'rank 0', loading: false }],
      documentText: '  ',
      settings: { ...s.settings, maxNewTokens: 60 },
    });
    assert.equal(request, null);
    assert.ok(problems.some((p) => p.includes('qv cannot be used: rank 0')));
    assert.ok(problems.some((p) => p.includes('Two adapters are named "qv"')));
    assert.ok(problems.some((p) => p.includes('Paste or type a document')));
    assert.ok(problems.some((p) => p.includes("Over the model's context of 64 positions by 8 tokens")));
  });
  it('measures context use', () => {
    assert.deepEqual(contextUse({ documentTokens: 50, promptTokens: 5, contextLimit: 64, complete: true }, 4), { used: 59, limit: 64, over: false, near: true, atLeast: false });
    assert.equal(contextUse(null, 4), null);
    assert.equal(baseName('/a/b/qv-r8/'), 'qv-r8');
  });
});

describe('pca and fit to budget in the picker and the scatter', () => {
  it('pca bits become ids (weighted ones kept), fit adds its row and its request', () => {
    const sel = { ...EMPTY_SELECTION, pca: { on: true, bits: '2, 1.50, 1@0.3.4' }, fit: { on: true, budgetBytes: '4096', targetKl: '0.001', minTop1: '0.99' } };
    const { ids, errors } = selectedStrategies(sel);
    assert.deepEqual(errors, []);
    assert.deepEqual(ids, ['exact', 'pca:2', 'pca:1.5', 'pca:1@0.3.4', 'fit']);
    assert.deepEqual(selectedFit(sel), { fit: { budgetBytes: 4096, targetKl: 0.001, minTop1: 0.99 }, errors: [] });
    const back = selectionFromIds(ids);
    assert.equal(back.pca.on, true);
    assert.equal(back.pca.bits, '2, 1.5, 1@0.3.4');
    assert.equal(back.fit.on, true);
    // A report's fit run again ("Edit & rerun") keeps its targets, not the form's defaults.
    const rerun = selectionFromIds(ids, { budgetBytes: 8192, targetKl: 0.01 });
    assert.deepEqual(rerun.fit, { on: true, budgetBytes: '8192', targetKl: '0.01', minTop1: '' });
    assert.deepEqual(selectedFit(rerun).fit, { budgetBytes: 8192, targetKl: 0.01 });
  });
  it('says in words what is wrong with the fit fields and pca bits', () => {
    const bad = { ...EMPTY_SELECTION, pca: { on: true, bits: '0, x' }, fit: { on: true, budgetBytes: '1.5', targetKl: '', minTop1: '2' } };
    const { errors } = selectedStrategies(bad);
    assert.ok(errors.some((e) => /pca bits per value: "0"/.test(e)));
    assert.ok(errors.some((e) => /the budget "1.5" is not a whole number/.test(e)));
    assert.ok(errors.some((e) => /top-1 floor "2"/.test(e)));
    const none = selectedFit({ ...EMPTY_SELECTION, fit: { on: true, budgetBytes: '', targetKl: '', minTop1: '' } });
    assert.equal(none.fit, null);
    assert.match(none.errors[0]!, /give a budget in bytes, a target KL, or both/);
  });
  it('the scatter adds each fit budget point to its adapter, on the front when unbeaten', () => {
    const r = makeReport();
    r.adapters[0]!.fit = {
      budgetBytes: null, targetKl: 1e-3, minTop1: null, probes: [], chosen: 'pca:1@0.1', met: true, reason: 'x',
      points: [{ strategy: 'pca:1@0.1', bytes: 50, meanKl: 0.005, top1Agreement: 1 }, { strategy: 'pca:2@0.1', bytes: 200, meanKl: 0.5, top1Agreement: 1 }],
    };
    const pts = scatterPoints(r, 'meanKl');
    assert.equal(pts.filter((p) => p.budgetPoint).length, 2);
    const front = paretoFront(pts, 'meanKl').map((p) => `${p.adapterName}/${p.budgetPoint ? 'point ' : ''}${p.strategy}`);
    assert.ok(front.includes('a/point pca:1@0.1'), front.join(','));
    assert.ok(!front.includes('a/point pca:2@0.1'));
    assert.equal(scatterPoints(r, 'perplexityRatio').filter((p) => p.budgetPoint).length, 0, 'no perplexity for budget points');
  });
});

describe('chart tooltips', () => {
  const hostile = '<img src=x onerror="alert(1)">&';
  it('escape adapter names in every tooltip (echarts renders them as HTML)', () => {
    for (const html of [
      stackedBytesTooltip([{ seriesName: hostile, value: 1024, axisValueLabel: '<b>seed</b>', marker: '' }]),
      adapterCountTooltip([{ seriesName: hostile, value: [3, 2048] }]),
      scatterTooltip({ data: { name: hostile, value: [4096, 0.1] } }, 'KL 0.1'),
    ]) {
      assert.ok(!html.includes('<img'), html);
      assert.match(html, /&lt;img src=x onerror=&quot;alert\(1\)&quot;&gt;&amp;/);
    }
    assert.match(stackedBytesTooltip([{ seriesName: 'a', value: 1024, axisValueLabel: 'x' }, { seriesName: 'b', value: 1024 }]), /total 2(\.0)? KiB/);
    assert.match(adapterCountTooltip([{ seriesName: 'exact', value: [3, 2048] }]), /^<b>3 adapters<\/b>/);
  });
});
