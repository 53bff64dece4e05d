// Components rendered to static markup (no DOM needed): what they show for a report.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createElement } from 'react';
import { renderToStaticMarkup } from 'react-dom/server';
import { OutputGrid } from '../src/components/OutputGrid.js';
import { QualityScatter } from '../src/components/QualityScatter.js';
import { TokenSpan } from '../src/components/TokenSpan.js';
import { gridFromReport } from '../src/logic/grid.js';
import { makeReport } from './fixtures.js';

describe('components', () => {
  it('TokenSpan marks diverged tokens and carries prob and KL', () => {
    const html = renderToStaticMarkup(createElement(TokenSpan, { token: { index: 1, token: 9, piece: 'a\nb', prob: 0.25, kl: 1.5, diverged: true }, first: true, onHover: () => undefined }));
    assert.match(html, /class="tok div first"/);
    assert.match(html, /data-prob="0.25"/);
    assert.match(html, /data-kl="1.5"/);
    assert.match(html, /a⏎b/);
  });

  it('OutputGrid has a cell per adapter × strategy, exact first, and hides equal rows on request', () => {
    const grid = gridFromReport(makeReport());
    const all = renderToStaticMarkup(createElement(OutputGrid, { grid, live: false, onlyDiffs: false, onOnlyDiffs: () => undefined }));
    const cells = [...all.matchAll(/data-testid="output-cell-([^"]+)"/g)].map((m) => m[1]);
    assert.deepEqual(cells, ['a-exact', 'b-exact', 'a-base', 'b-base', 'a-seed-minikv', 'b-seed-minikv']);
    assert.match(all, /differs from token 1/);
    const diff = renderToStaticMarkup(createElement(OutputGrid, { grid, live: false, onlyDiffs: true, onOnlyDiffs: () => undefined }));
    assert.ok(!diff.includes('output-cell-a-seed-minikv'));
    assert.match(diff, /1 strategy equal to exact hidden/);
    assert.match(diff, /= exact/, 'b/base equals exact and is collapsed');
  });

  it('QualityScatter lists each fit budget point beside the strategies, Pareto marked', () => {
    const r = makeReport();
    r.adapters[0]!.fit = {
      budgetBytes: 300, targetKl: null, minTop1: null, probes: [], chosen: 'pca:1@0.1', met: true, reason: 'the most bits per value within 300 bytes',
      points: [{ strategy: 'pca:1@0.1', bytes: 50, meanKl: 0.005, top1Agreement: 1 }, { strategy: 'pca:2@0.1', bytes: 200, meanKl: 0.5, top1Agreement: 1 }],
    };
    const html = renderToStaticMarkup(createElement(QualityScatter, { report: r }));
    assert.match(html, /data-testid="quality-row-a-point-pca:1@0.1" data-pareto="true"/);
    assert.match(html, /data-testid="quality-row-a-point-pca:2@0.1" data-pareto="false"/);
    assert.match(html, /budget point <\/span><code>pca:1@0.1<\/code>/);
  });
});
