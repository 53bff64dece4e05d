// Golden-structure checks of every format rendered from the fixture report: each
// section, table and chart is there, with the report's own numbers (computed here from
// the report, never hard-coded).
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { formatBytes } from '../../shared/format.js';
import type { Report } from '../../shared/report.js';
import { layerRows, memorySeries, summaryRows } from '../../shared/report-views.js';
import { METRIC_HELP } from '../../shared/metric-help.js';
import { renderCsv } from '../../main/report/render-csv.js';
import { LAYER_TABLE_STRATEGIES, renderHtml, REPORT_CSP } from '../../main/report/render-html.js';
import { renderMarkdown } from '../../main/report/render-markdown.js';
import { renderReport } from '../../main/report/index.js';
import { escapeHtml } from '../../main/report/escape.js';
import { fixtureReport } from './fixture-report.js';

/** RFC 4180 parser, enough for the test: quoted fields with "" escapes, CRLF rows. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') (field += '"'), i++;
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') row.push(field), (field = '');
    else if (c === '\r' && text[i + 1] === '\n') row.push(field), rows.push(row), (row = []), (field = ''), i++;
    else field += c;
  }
  assert.equal(field, '', 'CSV ends with CRLF');
  return rows;
}

function count(haystack: string, needle: string | RegExp): number {
  return (haystack.match(new RegExp(needle, 'g')) ?? []).length;
}

describe('report formats from the fixture report', () => {
  let report: Report;
  let html: string;
  let md: string;
  before(async () => {
    report = await fixtureReport();
    html = renderHtml(report);
    md = renderMarkdown(report);
  });

  it('the fixture is a real multi-adapter, multi-strategy run', () => {
    assert.ok(report.adapters.length >= 2);
    assert.ok(report.settings.strategies.length >= 5);
  });

  it('HTML: one self-contained document under a no-network CSP, without scripts', () => {
    assert.match(html, /^<!DOCTYPE html>/);
    assert.equal(count(html, '<html'), 1);
    assert.ok(html.includes(`<meta http-equiv="Content-Security-Policy" content="${escapeHtml(REPORT_CSP)}">`));
    assert.match(REPORT_CSP, /default-src 'none'/);
    assert.equal(count(html, /<script/i), 0);
    assert.equal(count(html, /<link\b/i), 0);
    assert.equal(count(html, /<iframe\b/i), 0);
    // No attribute points anywhere: every src/href would be a request.
    assert.equal(count(html, /\s(src|href)=/i), 0);
    // url(#id) references inside the SVGs are fragments of the page itself; nothing else.
    assert.equal(count(html, /url\((?!#)/i), 0);
  });

  it('HTML: the memory and quality charts, the frontier and two heatmaps per adapter, as inline SVG', () => {
    const expected = 3 + report.adapters.reduce((n, a) => n + (a.strategies.length > 1 ? 3 : 2), 0);
    assert.equal(count(html, '<figure>'), expected);
    assert.equal(count(html, /<svg\b/), expected);
    // Titled and oriented as in the app: layers as rows, strategies as columns.
    for (const a of report.adapters) assert.ok(html.includes(`${escapeHtml(a.name)}: V relative error by layer × strategy`));
  });

  it('HTML: settings, hashes, summary rows, side-by-side outputs and per-layer tables', () => {
    for (const h of [report.model.sha256, report.tokenizer.sha256, ...report.adapters.map((a) => a.sha256)]) {
      for (const [file, sha] of Object.entries(h)) {
        assert.ok(html.includes(sha), `hash of ${file}`);
      }
    }
    assert.ok(html.includes(`${report.documentTokens.length} tokens (BOS included)`));
    const rows = summaryRows(report);
    for (const r of rows) {
      assert.ok(html.includes(`<td>${escapeHtml(r.adapter)}</td><td><code>${escapeHtml(r.strategy)}</code></td><td class="num">${formatBytes(r.bytes)}</td>`), `summary row ${r.adapter} ${r.strategy}`);
    }
    const cards = count(html, '<div class="output">');
    assert.equal(cards, rows.length);
    // Diverged tokens are marked: as many marked spans as tokens from each first divergence on.
    const diverged = report.adapters.flatMap((a) => a.strategies).reduce((n, s) => n + (s.generation.firstDivergence === null ? 0 : s.generation.tokens.length - s.generation.firstDivergence), 0);
    assert.equal(count(html, 'class="tok div" title='), diverged);
    assert.equal(count(html, '<h2>Adapter '), report.adapters.length);
    // Per adapter, per-layer tables of at most LAYER_TABLE_STRATEGIES strategies each (so print never cuts a column), together every strategy.
    for (const a of report.adapters) {
      for (let i = 0; i < a.strategies.length; i += LAYER_TABLE_STRATEGIES) {
        const chunk = a.strategies.slice(i, i + LAYER_TABLE_STRATEGIES);
        const head = `<table class="layer-table"><thead><tr><th>layer</th>${chunk.map((s) => `<th>${escapeHtml(s.strategy)} K / V</th>`).join('')}`;
        assert.ok(html.includes(head), `per-layer table of ${a.name} from strategy ${i}`);
      }
    }
    assert.ok(report.adapters.every((a) => a.strategies.length > LAYER_TABLE_STRATEGIES), 'the fixture has more strategies than fit one table');
    assert.ok(html.includes(escapeHtml(report.document.text)));
  });

  it('Markdown: one pasteable table per adapter with bytes, errors, KL, top-1 and first divergence', () => {
    const md = renderMarkdown(report);
    for (const a of report.adapters) {
      const start = md.indexOf(`### ${a.name}`);
      assert.ok(start >= 0, a.name);
      const lines = md.slice(start).split('\n').slice(2);
      const table = lines.slice(0, lines.findIndex((l) => !l.startsWith('|')));
      assert.equal(table.length, 2 + a.strategies.length, 'header, alignment, one row per strategy');
      const cells = table.map((l) => l.split(' | ').length);
      assert.ok(cells.every((c) => c === cells[0]), 'every row has the header’s columns');
      assert.match(table[0]!, /bytes.*mean K err.*mean V err.*worst V err.*mean KL.*top-1.*first divergence/);
      for (const [i, s] of a.strategies.entries()) {
        const row = table[2 + i]!;
        const meanV = s.layers.reduce((x, l) => x + l.vRelErr, 0) / s.layers.length;
        assert.ok(row.startsWith(`| \`${s.strategy}\` | ${formatBytes(s.bytes)} |`), row);
        assert.ok(row.includes(` ${meanV.toFixed(4)} `), `${s.strategy} mean V`);
        assert.ok(row.includes(` ${s.scores.meanKl.toFixed(4)} `), `${s.strategy} KL`);
        assert.ok(row.endsWith(` ${s.generation.firstDivergence ?? 'none'} |`), row);
      }
    }
  });

  it('CSV: one row per (adapter, strategy, layer) with every per-layer metric at full precision', () => {
    const rows = parseCsv(renderCsv(report));
    const [header, ...body] = rows;
    assert.deepEqual(header!.slice(0, 8), ['adapter', 'strategy', 'layer', 'kRelErr', 'vRelErr', 'outsideSpan', 'keptExact', 'strategyBytes']);
    assert.equal(header!.length, 8 + 2 * report.model.numKvHeads);
    const expected = layerRows(report);
    assert.equal(body.length, expected.length);
    assert.equal(expected.length, report.adapters.reduce((n, a) => n + a.strategies.length, 0) * report.model.numLayers);
    for (const [i, r] of expected.entries()) {
      const row = body[i]!;
      assert.equal(row.length, header!.length);
      assert.deepEqual(row.slice(0, 3), [r.adapter, r.strategy, String(r.layer)]);
      assert.equal(Number(row[3]), r.kRelErr);
      assert.equal(Number(row[4]), r.vRelErr);
      assert.equal(row[5], r.outsideSpan === null ? '' : String(r.outsideSpan));
      assert.equal(row[6], String(r.keptExact));
      assert.deepEqual(row.slice(8).map(Number), [...r.kHeads, ...r.vHeads]);
    }
    // seed-minikv carries outsideSpan; hybrid marks its kept layers.
    assert.ok(body.some((r) => r[1] === 'seed-minikv' && r[5] !== ''));
    assert.ok(body.some((r) => r[1]!.startsWith('hybrid') && r[6] === 'true'));
  });

  it('HTML: the same report renders the same bytes (chart ids do not depend on earlier renders)', () => {
    assert.equal(renderHtml(report), html);
    assert.equal(count(html, /\bzr\d+-/), 0);
    // Chart ids are unique across the page.
    const ids = [...html.matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]);
    assert.equal(new Set(ids).size, ids.length);
  });

  it('renderReport dispatches every text format to its renderer', async () => {
    assert.equal(await renderReport(report, 'html'), html);
    assert.equal(await renderReport(report, 'md'), renderMarkdown(report));
    assert.equal(await renderReport(report, 'csv'), renderCsv(report));
  });

  it('memory series: the shared base counted once, exact needs none', () => {
    const m = memorySeries(report);
    const exact = m.find((p) => p.strategy === 'exact')!;
    const base = m.find((p) => p.strategy === 'base')!;
    assert.equal(exact.total, report.adapters.length * report.memory.exactCacheBytes);
    assert.equal(base.total, report.memory.baseCacheBytes);
  });
  it('one definition of memory against exact, with the same label as the app, and the definitions the app\'s help shows', () => {
    // The summary's share is the store alone ("store ÷ exact"), never the old "of exact".
    assert.ok(!html.includes('<th>of exact</th>'));
    assert.ok(html.includes(`<th>${escapeHtml(METRIC_HELP.storeShare.label)}</th>`));
    assert.ok(md.includes(`| ${METRIC_HELP.storeShare.label} |`));
    // The memory table: totals with the shared base counted once, and their share of exact.
    assert.ok(html.includes(`<th>${escapeHtml(METRIC_HELP.totalShare.label)}</th>`));
    for (const p of memorySeries(report)) {
      const share = p.totalVsExact!;
      assert.ok(html.includes(`<td class="num">${formatBytes(p.total)}</td><td class="num">${(100 * share).toFixed(share < 0.1 && share > 0 ? 1 : 0)}%</td>`), `memory row ${p.strategy}`);
    }
    for (const t of Object.values(METRIC_HELP)) assert.ok(html.includes(escapeHtml(t.text)), t.label);
  });

  it('prints without screen-only hints, and lists the tokenizer\'s files once when they are the model\'s', () => {
    assert.ok(html.includes('<span class="screen-only"> (hover a token for its id and probability)</span>'));
    assert.match(html, /@media print \{[^]*\.screen-only \{ display: none; \}/);
    assert.equal(report.tokenizer.dir, report.model.dir, 'the fixture reads its tokenizer from the model folder');
    const tokenizerRows = count(html, /<tr><td>tokenizer<\/td>/);
    assert.equal(tokenizerRows, 1, 'one note row, not a repeat of the model files');
    assert.ok(html.includes("the model folder's tokenizer files"));
    assert.ok(!/\| tokenizer \|/.test(md), 'no repeated rows in the Markdown either');
    // A tokenizer from another folder is listed in full.
    const other: Report = { ...report, tokenizer: { dir: '/elsewhere', sha256: { 'tokenizer.json': 'ab'.repeat(32) } } };
    assert.ok(renderHtml(other).includes('ab'.repeat(32)));
    assert.ok(renderMarkdown(other).includes('ab'.repeat(32)));
  });
});
