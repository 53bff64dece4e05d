// Components rendered to static markup (no DOM needed): what they show for a report.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createElement } from 'react';
import { renderToStaticMarkup } from 'react-dom/server';
import { OutputGrid } from '../src/components/OutputGrid.js';
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
});
