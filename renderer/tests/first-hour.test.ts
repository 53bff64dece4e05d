// The logic behind issue 14 ("a new user's first hour"): the draft that survives a reload,
// the view in the URL, the output viewer's search / filters / sort, form checks in plain
// words, round axis ticks, one Pareto front per adapter, heatmap scales.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createElement } from 'react';
import { renderToStaticMarkup } from 'react-dom/server';
import { byteAxis, formatBytesTick, formatShare } from '../../shared/format.js';
import { METRIC_HELP } from '../../shared/metric-help.js';
import type { ModelInfo, TokenCount } from '../../shared/rpc.js';
import { Help } from '../src/components/Help.js';
import { OutputGrid } from '../src/components/OutputGrid.js';
import { countDelayMs } from '../src/components/DocumentEditor.js';
import { fromDraft, isBlank, toDraft } from '../src/logic/draft.js';
import { nextFocus } from '../src/logic/focus-trap.js';
import { gridFromReport } from '../src/logic/grid.js';
import { columnTokenGroups, detailDomain, heatmapHeight, logDomain } from '../src/logic/heatmap.js';
import { filterHistory } from '../src/logic/history-filter.js';
import { adapterCounts, memoryBars, niceCeil } from '../src/logic/memory.js';
import { matchedTokens, viewGrid } from '../src/logic/output-view.js';
import { contextMessage, contextUse, countLimit, engineProblems, maxNewTokensProblem, needsTokenizer, strategyProblems } from '../src/logic/request.js';
import { overlapOffsets, paretoFront, type ScatterPoint } from '../src/logic/scatter.js';
import { EMPTY_SELECTION } from '../src/logic/strategy-selection.js';
import { formatHash, parseHash } from '../src/logic/view-hash.js';
import { DEFAULT_VIEW } from '../src/store/results.js';
import { DEFAULT_GENERATION } from '../src/store/setup.js';
import { makeReport } from './fixtures.js';

const model = { dir: '/m', numLayers: 4, numKvHeads: 2, headDim: 16, maxPositionEmbeddings: 2048, hasTokenizer: true } as ModelInfo;
const counted = (documentTokens: number, complete = true): TokenCount => ({ documentTokens, promptTokens: 10, contextLimit: 2048, complete });

describe('the draft', () => {
  it('round-trips the form, numbers being typed included, and knows a blank form', () => {
    const fields = {
      modelDir: '/m',
      tokenizerDir: '/t',
      adapters: [{ dir: '/a', name: 'mine' }],
      documentText: 'doc',
      promptText: ' p',
      strategies: { ...EMPTY_SELECTION, simple: { ...EMPTY_SELECTION.simple, base: true }, lowrank: { on: true, ranks: '8, 1x' } },
      settings: { ...DEFAULT_GENERATION, maxNewTokens: Number.NaN, dtype: 'bf16' as const },
      browseDirs: { adapter: '/home/ann/adapters' },
    };
    const draft = toDraft(fields, '20261128T160000123Z-1a2b3c4d');
    assert.equal(draft.settings.maxNewTokens, null, 'NaN travels as null');
    const back = JSON.parse(JSON.stringify(draft)) as typeof draft;
    const restored = fromDraft(back, DEFAULT_GENERATION);
    assert.ok(Number.isNaN(restored.settings.maxNewTokens));
    assert.deepEqual({ ...restored, settings: { ...restored.settings, maxNewTokens: 0 } }, { ...fields, settings: { ...fields.settings, maxNewTokens: 0 } });
    assert.equal(isBlank(restored), false);
    assert.equal(isBlank({ modelDir: ' ', adapters: [], documentText: '\n', promptText: '' }), true);
  });
});

describe('the view in the URL', () => {
  it('writes only what differs from the defaults and reads it back; hostile input is ignored', () => {
    const view = { ...DEFAULT_VIEW, section: 'quality' as const, query: 'Hong Kong', hiddenAdapters: ['a,b', 'qv'], hiddenStrategies: ['lowrank:8' as const], sort: 'kl' as const, logScale: true, oneScale: false, metric: 'perplexityRatio' as const };
    const hash = formatHash('results', '20261128T160000123Z-1a2b3c4d', view);
    const parsed = parseHash(hash);
    assert.equal(parsed.tab, 'results');
    assert.equal(parsed.run, '20261128T160000123Z-1a2b3c4d');
    assert.deepEqual({ ...DEFAULT_VIEW, ...parsed.view }, view);
    assert.equal(formatHash('setup', null, DEFAULT_VIEW), '');
    const bad = parseHash('#tab=admin&run=../../etc&sort=rm&hideS=nope&sec=x');
    assert.deepEqual(bad, { tab: null, run: null, view: { hiddenStrategies: [] } });
  });
});

describe('the output viewer', () => {
  const grid = gridFromReport(makeReport());

  it('finds text across token boundaries, marks the tokens, and hides rows without a match', () => {
    assert.deepEqual([...matchedTokens(['Hon', 'g Ko', 'ng'], 'g kong')], [1, 2]);
    assert.deepEqual([...matchedTokens(['ab', 'ab'], 'B')], [0, 1]);
    // Against the definition (a token is hit when its text overlaps a match), on many tokens.
    const pieces = Array.from({ length: 3000 }, (_, i) => ['a', 'b', 'ab', '', ' a'][i % 5]!);
    const text = pieces.join('');
    const want = new Set<number>();
    let pos = 0;
    const starts = pieces.map((p) => ((pos += p.length), pos - p.length));
    for (let at = text.indexOf('ba'); at >= 0; at = text.indexOf('ba', at + 1)) pieces.forEach((p, i) => starts[i]! < at + 2 && starts[i]! + p.length > at && want.add(i));
    assert.deepEqual([...matchedTokens(pieces, 'BA')].sort((x, y) => x - y), [...want].sort((x, y) => x - y));
    const v = viewGrid(grid, { query: 'y', hiddenAdapters: [], hiddenStrategies: [], sort: 'run', onlyDiffs: false });
    assert.deepEqual(v.grid.rows.map((r) => r.strategy), ['base'], 'only a/base generated "y"');
    assert.equal(v.hiddenByQuery, 2);
    const cell = v.grid.rows[0]!.cells.find((c) => c.adapterName === 'a')!;
    assert.deepEqual([...v.hits.get(cell)!], [1]);
    const html = renderToStaticMarkup(createElement(OutputGrid, { grid, viewed: v, live: false, onlyDiffs: false, onOnlyDiffs: () => undefined }));
    assert.match(html, /class="tok div first hit"/);
    assert.match(html, /data-hits="1"/);
  });

  it('hides adapters (columns) and strategies (rows), and sorts by a score with exact kept on top', () => {
    const v = viewGrid(grid, { query: '', hiddenAdapters: ['b'], hiddenStrategies: ['seed-minikv'], sort: 'run', onlyDiffs: false });
    assert.deepEqual(v.grid.adapters, ['a']);
    assert.deepEqual(v.grid.rows.map((r) => [r.strategy, r.cells.map((c) => c.adapterName)]), [['exact', ['a']], ['base', ['a']]]);
    const byKl = viewGrid(grid, { query: '', hiddenAdapters: [], hiddenStrategies: [], sort: 'kl', onlyDiffs: false });
    // base's mean KL over a and b is (1.67 + 0.01) / 2; seed-minikv's 0.01: seed-minikv first after exact.
    assert.deepEqual(byKl.grid.rows.map((r) => r.strategy), ['exact', 'seed-minikv', 'base']);
    const byDiv = viewGrid(grid, { query: '', hiddenAdapters: [], hiddenStrategies: [], sort: 'divergence', onlyDiffs: false });
    assert.deepEqual(byDiv.grid.rows.map((r) => r.strategy), ['exact', 'seed-minikv', 'base'], 'never diverging sorts first');
  });
});

describe('the form, in plain words', () => {
  it('refuses an empty, negative or huge max new tokens, and never shows NaN in the count', () => {
    for (const n of [Number.NaN, -5, 0, 1.5, 5000]) assert.match(maxNewTokensProblem(n) ?? '', /whole number from 1 to 4,096/, String(n));
    assert.equal(maxNewTokensProblem(32), null);
    const ctx = contextUse(counted(212), Number.NaN)!;
    assert.equal(ctx.used, 222, 'new tokens count as 0 while the field is not a number');
    assert.equal(contextUse(counted(212), -5)!.used, 222);
  });

  it('says "over the context by at least N" when counting stopped at the limit', () => {
    const limit = countLimit(model, 32);
    assert.equal(limit, 2048 + 32 + 256);
    const ctx = contextUse(counted(limit, false), 32)!;
    assert.equal(ctx.atLeast, true);
    assert.equal(contextMessage(ctx), `Over the model's context of 2,048 positions by at least ${(limit + 10 + 32 - 2048).toLocaleString('en-US')} tokens: shorten the document or the prompt, or lower max new tokens.`);
    assert.match(contextMessage(contextUse(counted(2100), 32)!), /by 94 tokens/);
  });

  it('checks strategy parameters against the model: hybrid:n up to its layers, lowrank:k up to the K/V width and the document', () => {
    const sel = { ...EMPTY_SELECTION, lowrank: { on: true, ranks: '100000' }, hybrid: { on: true, layers: '99' } };
    const problems = strategyProblems(sel, model, counted(212));
    assert.deepEqual(problems, [
      "lowrank:100000 asks for rank 100000, but a layer's K and V are 32 wide (2 KV heads × 16), so the rank can be at most 32: use lowrank:32 or less.",
      'hybrid:99 keeps 99 layers exact, but the model has only 4 layers: use at most hybrid:4.',
    ]);
    assert.match(strategyProblems({ ...sel, hybrid: { on: false, layers: '' }, lowrank: { on: true, ranks: '20' } }, model, counted(12))[0] ?? '', /the document has 12 tokens, so the rank can be at most 12/);
    assert.deepEqual(strategyProblems({ ...sel, lowrank: { on: true, ranks: '32' }, hybrid: { on: true, layers: '4' } }, model, counted(212)), []);
    for (const p of problems) assert.doesNotMatch(p, /--|request\./);
  });

  it('says what the engine cannot do, and one wording for a missing tokenizer', () => {
    const cpu = {
      backend: 'cpu' as const,
      dtypes: [{ id: 'fp32' as const, available: true, reason: null }, { id: 'bf16' as const, available: false, reason: 'the CPU engine computes in fp32 only' }],
      devices: [{ id: 'cuda' as const, available: false, reason: 'this engine runs on the CPU' }],
    };
    assert.deepEqual(engineProblems({ dtype: 'bf16', device: 'cuda' }, cpu), ['Compute dtype bf16: the CPU engine computes in fp32 only.', 'Device cuda: this engine runs on the CPU.']);
    assert.deepEqual(engineProblems({ dtype: 'fp32', device: 'auto' }, cpu), []);
    assert.equal(needsTokenizer({ model: { ...model, hasTokenizer: false }, tokenizerDir: '' }), true);
    assert.equal(needsTokenizer({ model: { ...model, hasTokenizer: false }, tokenizerDir: '/tok' }), false);
  });

  it('waits longer before recounting a long text', () => {
    assert.equal(countDelayMs(100), 300);
    assert.equal(countDelayMs(4_000_000), 1300);
  });
});

describe('charts that read at a glance', () => {
  it('puts byte ticks on round binary values (never 976.6 KiB)', () => {
    const a = byteAxis(1_000_000);
    assert.equal(a.interval, 200 * 1024);
    assert.equal(a.max, 1000 * 1024);
    for (let t = 0; t <= a.max; t += a.interval) assert.match(formatBytesTick(t), /^(0|\d+ KiB)$/, formatBytesTick(t));
    assert.equal(formatBytesTick(1.5 * 1024 ** 2), '1.5 MiB');
    assert.deepEqual(byteAxis(700), { max: 800, interval: 200 });
    assert.deepEqual(byteAxis(3 * 1024 ** 3), { max: 3 * 1024 ** 3, interval: 1024 ** 3 });
    assert.deepEqual(byteAxis(212 * 1024 * 3), { max: 800 * 1024, interval: 200 * 1024 });
  });

  it('ends the adapter axis on a round count that is also the last point drawn', () => {
    assert.deepEqual([niceCeil(15), niceCeil(8), niceCeil(130)], [20, 10, 200]);
    const n = adapterCounts(20);
    assert.equal(n[0], 1);
    assert.equal(n.at(-1), 20);
    assert.ok(n.every((x) => Number.isInteger(x)));
  });

  it('one memory definition: totals with the base once against exact, and store ÷ exact per adapter, as the reports label them', () => {
    const b = memoryBars(makeReport());
    assert.deepEqual(b.ratioToExact, [1, 0.4, 0.6]);
    assert.deepEqual(b.storeShare, [[1, 1], [0, 0], [0.1, 0.3]]);
    assert.deepEqual([formatShare(0.6), formatShare(0.042), formatShare(null)], ['60%', '4.2%', '—']);
    assert.equal(METRIC_HELP.storeShare.label, 'store ÷ exact');
  });

  it('keeps exact on the front in perplexity mode, and sets overlapping markers side by side', () => {
    const pts: ScatterPoint[] = [
      { adapter: 0, adapterName: 'a', strategy: 'exact', bytes: 1000, value: 1 },
      { adapter: 0, adapterName: 'a', strategy: 'base', bytes: 0, value: 0.9 },
      { adapter: 0, adapterName: 'a', strategy: 'seed-minikv', bytes: 100, value: 3 },
      { adapter: 0, adapterName: 'a', strategy: 'lragent', bytes: 100, value: 3 },
    ];
    // A ratio of 0.9 is 0.105 from exact (|ln 0.9|), not better than exact's 0.
    assert.deepEqual(paretoFront(pts, 'perplexityRatio').map((p) => p.strategy), ['exact', 'base']);
    const off = overlapOffsets(pts, 'perplexityRatio');
    assert.deepEqual([off.get(pts[2]!), off.get(pts[3]!)], [-6, 6]);
    assert.equal(off.get(pts[0]!), 0);
  });

  it('offers one colour scale for every strategy, a log scale, and rows sized to the layers', () => {
    const r = makeReport();
    const own = detailDomain(r, 'base', 'tokens', 'k', false, false);
    const all = detailDomain(r, 'base', 'tokens', 'k', true, false);
    assert.deepEqual(own, [0, 0.5]);
    assert.deepEqual(all, [0, 2], "b's seed-minikv reaches 2: on one scale base's 0.5 looks small");
    assert.deepEqual(logDomain([[[0, 0.001, 1]]]), [0.001, 1]);
    assert.deepEqual(logDomain([[[0, 1e-9, 1]]]), [1e-4, 1], 'at most four decades');
    assert.ok(heatmapHeight(4) - 56 >= 4 * 20 && heatmapHeight(4) - 56 <= 4 * 22, 'few layers: rows about 20 px, not 80');
    assert.equal(heatmapHeight(80) - 56, 80 * 8);
    assert.deepEqual(columnTokenGroups(r, 2, 3), [[1, 2], [3, 4], [5]]);
  });
});

describe('history, help, focus', () => {
  it('searches every word in model, adapters, strategies, document and prompt, and filters by model and backend', () => {
    const e = (id: string, over: object) => ({ id, createdAt: '', modelName: 'tiny', adapterNames: ['qv'], strategies: ['exact' as const], documentTokens: 1, backend: 'cpu' as const, fileBytes: 1, documentStart: '', promptStart: '', ...over });
    const entries = [e('1', { documentStart: 'The University of Hong Kong' }), e('2', { promptStart: 'Summarize the above', backend: 'cuda' }), e('3', { modelName: 'llama', adapterNames: ['news'] })];
    assert.deepEqual(filterHistory(entries, { query: 'hong university', model: '', backend: '' }).map((x) => x.id), ['1']);
    assert.deepEqual(filterHistory(entries, { query: 'summarize', model: '', backend: '' }).map((x) => x.id), ['2']);
    assert.deepEqual(filterHistory(entries, { query: '', model: 'tiny', backend: 'cpu' }).map((x) => x.id), ['1']);
    assert.deepEqual(filterHistory(entries, { query: 'news', model: '', backend: '' }).map((x) => x.id), ['3']);
  });

  it('has a short definition behind every metric label', () => {
    const html = renderToStaticMarkup(createElement(Help, { topic: 'kl' }));
    assert.match(html, /aria-label="What is mean KL \(nats\)\?"/);
    for (const h of Object.values(METRIC_HELP)) assert.ok(h.text.length > 40 && h.text.length < 400, h.label);
  });

  it('keeps Tab inside a dialog', () => {
    const items = ['path', 'go', 'cancel'];
    assert.equal(nextFocus(items, 'cancel', false), 'path');
    assert.equal(nextFocus(items, 'path', true), 'cancel');
    assert.equal(nextFocus(items, 'go', false), null, 'inside: the browser moves on');
    assert.equal(nextFocus(items, 'elsewhere', false), 'path');
    assert.equal(nextFocus([], null, false), null);
  });
});
