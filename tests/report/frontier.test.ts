// The quality/bytes frontier in the reports (issue 15): every strategy and every fit budget
// point per adapter, the Pareto front of bytes against mean KL marked, the fit's choice in
// words; in HTML (a table and an SVG chart per adapter) and Markdown.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Report } from '../../shared/report.js';
import { frontierRows } from '../../shared/report-views.js';
import { renderHtml } from '../../main/report/render-html.js';
import { renderMarkdown } from '../../main/report/render-markdown.js';
import { cloneReport, fixtureReport } from './fixture-report.js';

async function withFit(): Promise<Report> {
  const r = cloneReport(await fixtureReport());
  const a = r.adapters[0]!;
  const exact = a.strategies.find((s) => s.strategy === 'exact')!;
  a.fit = {
    budgetBytes: null,
    targetKl: 1e-3,
    minTop1: 0.99,
    probes: [],
    points: [
      { strategy: 'pca:0.5@0.4', bytes: Math.round(exact.bytes / 32), meanKl: 5e-3, top1Agreement: 0.9 },
      { strategy: 'pca:1@0.4', bytes: Math.round(exact.bytes / 16), meanKl: 4e-4, top1Agreement: 0.995 },
      // Dominated: more bytes and a higher KL than the point above.
      { strategy: 'pca:1.25@0.4', bytes: Math.round(exact.bytes / 12), meanKl: 6e-4, top1Agreement: 0.99 },
    ],
    chosen: 'pca:1@0.4',
    met: true,
    reason: 'the cheapest store with mean KL ≤ 1.00e-3 and top-1 ≥ 0.99',
  };
  return r;
}

describe('frontier', () => {
  it('frontierRows: strategies and budget points per adapter, cheapest first, Pareto by bytes and KL', async () => {
    const r = await withFit();
    const rows = frontierRows(r).filter((x) => x.adapter === r.adapters[0]!.name);
    assert.equal(rows.length, r.adapters[0]!.strategies.length + 3);
    for (let i = 1; i < rows.length; i++) assert.ok(rows[i - 1]!.bytes <= rows[i]!.bytes);
    const dominated = rows.find((x) => x.strategy === 'pca:1.25@0.4')!;
    assert.equal(dominated.pareto, false);
    // The Pareto rule, checked from the rows themselves.
    for (const p of rows) {
      const beaten = rows.some((q) => q !== p && q.bytes <= p.bytes && q.meanKl <= p.meanKl && (q.bytes < p.bytes || q.meanKl < p.meanKl));
      assert.equal(p.pareto, !beaten, `${p.kind} ${p.strategy}`);
    }
    assert.ok(rows.find((x) => x.strategy === 'exact')!.pareto, 'exact (KL 0) is on its front');
  });

  it('HTML: a frontier table and chart per adapter, the fit choice in words', async () => {
    const r = await withFit();
    const html = renderHtml(r);
    const tables = html.match(/<table class="frontier-table">[\s\S]*?<\/table>/g) ?? [];
    assert.equal(tables.length, r.adapters.filter((a) => a.strategies.length > 1).length);
    const first = tables[0]!;
    const rows = frontierRows(r).filter((x) => x.adapter === r.adapters[0]!.name);
    assert.equal((first.match(/<tr>/g) ?? []).length - 1, rows.length, 'one row per point');
    assert.equal((first.match(/●/g) ?? []).length, rows.filter((x) => x.pareto).length);
    assert.match(first, /budget point/);
    assert.match(html, /data-testid="fit-choice">Fit to budget, mean KL ≤ 1\.00e-3, top-1 ≥ 99(\.0)?\s?%: <code>pca:1@0\.4<\/code> — meets it/);
    assert.ok(html.includes('id="al-frontier-0"') || html.includes('al-frontier-0'), 'the frontier chart');
  });

  it('Markdown: the frontier table and the fit line', async () => {
    const r = await withFit();
    const md = renderMarkdown(r);
    assert.match(md, /Quality\/bytes frontier of/);
    assert.match(md, /\| `pca:1\.25@0\.4` \| budget point \|/);
    assert.match(md, /Fit to budget: `pca:1@0\.4` — meets the target/);
  });
});
