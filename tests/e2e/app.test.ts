// The app end to end, as a user drives it: `adapterlens serve` on the tiny fixture model,
// the built renderer in headless Chromium. Paste a document, choose two adapters and
// three strategies besides exact, run, and check the results against the saved report;
// cancel a longer run mid-generation and check the app still runs the next one.
// Screenshots go to test-results/e2e/ (git-ignored).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { projectRoot } from '../../main/paths.js';
import type { StrategyId } from '../../shared/strategies.js';
import { ensureBuilt, openApp, savedReports, shot, shots, skip, startServe, stopServe, visible, type Serve } from './serve-harness.js';

const modelDir = path.join(projectRoot, 'tests', 'fixtures', 'models', 'llama-gqa-bf16');
const adapterDirs = ['qv-r8', 'all-linear-rslora'].map((a) => path.join(projectRoot, 'tests', 'fixtures', 'adapters', 'llama-gqa-bf16', a));
const adapterNames = ['qv-r8', 'all-linear-rslora'];
const documentText = fs.readFileSync(path.join(projectRoot, 'tests', 'fixtures', 'documents', 'hku-intro.txt'), 'utf8');
const CHOSEN: StrategyId[] = ['base', 'seed-minikv', 'delta-int8'];
if (skip) console.log(`# e2e skipped: ${skip}`);

describe('the app in a browser against adapterlens serve', { skip, timeout: 600_000 }, () => {
  let serve: Serve;
  let browser: Browser;
  let page: Page;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'adapterlens-e2e-'));
  const problems: string[] = [];

  before(async () => {
    ensureBuilt();
    fs.mkdirSync(shots, { recursive: true });
    assert.ok(fs.existsSync(shots));
    serve = await startServe(dataDir);
    ({ browser, page } = await openApp(serve, problems));
  });

  after(async () => {
    await browser?.close();
    await stopServe(serve);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('offers the demo on the first screen, preselected, and empty states once the form is cleared', async () => {
    // A first visit: no draft yet, so the demo (model, adapters, document) is filled in and ready to run.
    await page.getByTestId('demo-banner').waitFor();
    await page.getByTestId('model-summary').waitFor();
    await page.locator('[data-testid="run-button"]:not([disabled])').waitFor({ timeout: 30_000 });
    await shot(page, '00-first-screen-demo');
    await page.getByTestId('clear-demo').click();
    await page.getByText('No adapters yet').waitFor();
    assert.equal(await page.getByTestId('model-dir').inputValue(), '');
    await page.getByTestId('tab-results').click();
    await page.getByTestId('results-empty').waitFor();
    await page.getByTestId('tab-history').click();
    await page.getByText('No saved runs yet').waitFor();
    await page.getByTestId('tab-setup').click();
    assert.equal(await page.getByTestId('run-button').isDisabled(), true, 'nothing to run yet');
    await shot(page, '01-setup-empty');
  });

  it('sets up a comparison: model, two adapters, a pasted document, three strategies', async () => {
    await page.getByTestId('model-dir').fill(modelDir);
    await page.getByTestId('model-dir').press('Enter');
    await page.getByTestId('model-summary').waitFor();
    assert.match(await page.getByTestId('model-summary').innerText(), /Layers\s+4/);
    for (const dir of adapterDirs) {
      await page.getByTestId('adapter-dir').fill(dir);
      await page.getByTestId('adapter-dir').press('Enter');
    }
    for (const name of adapterNames) await page.locator(`[data-testid="adapter-row-${name}"] >> text=q v`).or(page.locator(`[data-testid="adapter-row-${name}"] >> text=gate`)).first().waitFor();
    await page.getByTestId('document').fill(documentText);
    await page.getByTestId('prompt').fill(' According to the above introduction of HKU,');
    // The live count follows the pasted text (debounced).
    await page.getByTestId('token-count').getByText(/^212 document \+ 10 prompt \+ 32 new = 254 \/ 2,048 tokens/).waitFor();
    for (const s of CHOSEN) await page.getByTestId(`strategy-${s}`).check();
    await page.getByTestId('max-new-tokens').fill('8');
    await shot(page, '02-setup-filled');
    assert.equal(await page.getByTestId('run-button').isDisabled(), false);
  });

  it('runs, streams text into every cell, and shows results that match the saved report', async () => {
    await page.getByTestId('run-button').click();
    await page.locator('[data-testid="run-progress"][data-status="finished"]').waitFor({ timeout: 120_000 });
    await page.getByTestId('results').waitFor();
    await shot(page, '03-results-outputs');

    const saved = savedReports(dataDir);
    assert.equal(saved.length, 1, 'one run saved in history');
    const report = saved[0]!.report;
    assert.deepEqual(report.settings.strategies, ['exact', ...CHOSEN]);

    // Outputs: a cell per adapter × strategy, each holding the report's text.
    for (const [ai, a] of report.adapters.entries()) {
      assert.equal(a.name, adapterNames[ai]);
      for (const s of a.strategies) {
        const cell = page.getByTestId(`output-cell-${a.name}-${s.strategy}`);
        const text = await cell.locator('.tokens').textContent();
        assert.ok(s.generation.tokens.length > 0, `${a.name}/${s.strategy} generated tokens`);
        assert.equal(text, s.generation.pieces.map(visible).join(''), `${a.name}/${s.strategy} text`);
        assert.equal(await cell.getAttribute('data-first-divergence'), s.strategy === 'exact' || s.generation.firstDivergence === null ? '' : String(s.generation.firstDivergence));
      }
    }
    // Hovering a token shows its probability (and KL against exact).
    await page.getByTestId(`output-cell-${adapterNames[0]}-seed-minikv`).locator('.tok').first().hover();
    assert.match(await page.getByTestId('token-inspector').innerText(), /p = [\d.e-]+ · KL\(exact ‖ this\) = /);

    // Heatmaps: one row per layer, for each adapter; the summary has one column per non-exact strategy.
    await page.getByTestId('section-errors').click();
    for (const a of report.adapters) {
      const table = page.getByTestId(`heatmap-tokens-${a.name}-data`);
      await table.waitFor({ state: 'attached' });
      assert.equal(await table.locator('tbody tr').count(), report.model.numLayers, `${a.name}: a row per layer`);
      const first = a.strategies.find((s) => s.strategy === 'base')!;
      const v0 = Number(await table.locator('tbody tr').first().locator('td').first().getAttribute('data-value'));
      assert.equal(v0, first.tokens.v[0]![0], 'token grid values are the report’s');
      const summary = page.getByTestId(`heatmap-summary-${a.name}-data`);
      assert.equal(await summary.locator('tbody tr').count(), report.model.numLayers);
      assert.equal(await summary.locator('thead th').count(), 1 + CHOSEN.length);
    }
    await page.getByTestId('grid-heads').check({ force: true });
    assert.equal(await page.getByTestId(`heatmap-heads-${adapterNames[0]}-data`).locator('tbody tr').count(), report.model.numLayers);
    await page.getByTestId(`heatmap-heads-${adapterNames[0]}`).locator('.chart').click({ position: { x: 200, y: 40 } });
    await page.getByTestId('heatmap-details').waitFor();
    await shot(page, '04-results-heatmaps');

    // Memory: the bars' values are the report's bytes.
    await page.getByTestId('section-memory').click();
    await page.getByTestId('memory-chart').waitFor();
    for (const s of report.settings.strategies) {
      const base = Number(await page.getByTestId(`memory-bytes-${s}-base`).getAttribute('data-bytes'));
      assert.equal(base, s === 'exact' ? 0 : report.memory.baseCacheBytes, `${s}: shared base cache`);
      for (const a of report.adapters) {
        const bytes = Number(await page.getByTestId(`memory-bytes-${s}-${a.name}`).getAttribute('data-bytes'));
        assert.equal(bytes, a.strategies.find((x) => x.strategy === s)!.bytes, `${s}/${a.name} bytes`);
      }
    }
    await shot(page, '05-results-memory');

    await page.getByTestId('section-quality').click();
    await page.getByTestId('quality-scatter').waitFor();
    assert.equal(await page.getByTestId('quality-table').locator('tbody tr').count(), report.adapters.length * report.settings.strategies.length);
    await shot(page, '06-results-quality');
  });

  it('lists the run in history and exports it', async () => {
    await page.getByTestId('tab-history').click();
    const id = savedReports(dataDir)[0]!.id;
    await page.getByTestId(`history-row-${id}`).waitFor();
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId(`history-row-${id}`).getByTestId('export-json').click()]);
    assert.match(download.suggestedFilename(), /\.json$/);
    // HTML comes from the report module: a self-contained file with its SVG charts.
    const [htmlDownload] = await Promise.all([page.waitForEvent('download'), page.getByTestId(`history-row-${id}`).getByTestId('export-html').click()]);
    assert.match(htmlDownload.suggestedFilename(), /\.html$/);
    const html = fs.readFileSync((await htmlDownload.path())!, 'utf8');
    assert.match(html, /<svg/);
    assert.ok(html.includes(adapterNames[0]!), 'the exported HTML names the adapters');
    await shot(page, '07-history');
    await page.getByTestId(`history-open-${id}`).click();
    await page.getByTestId('results').waitFor();
  });

  it('cancels a long run mid-generation and stays usable', async () => {
    await page.getByTestId('tab-setup').click();
    await page.getByTestId('document').fill([documentText, documentText, documentText].join('\n\n'));
    // Long enough (1200 tokens, no stop at EOS) that the run cannot end on its own
    // between the check below and the cancel click, even on a fast machine.
    await page.getByTestId('max-new-tokens').fill('1200');
    if (await page.locator('#eos').isChecked()) await page.locator('#eos').uncheck();
    await page.getByTestId('token-count').getByText(/^\d{3}/).waitFor();
    await page.getByTestId('run-button').click();
    // Tokens stream into the live grid before the run ends.
    const cell = page.getByTestId(`output-cell-${adapterNames[1]}-exact`);
    await page.waitForFunction(
      (sel) => Number(document.querySelector(sel)?.getAttribute('data-tokens') ?? 0) >= 3,
      `[data-testid="output-cell-${adapterNames[1]}-exact"]`,
      { timeout: 120_000 },
    );
    assert.equal(await page.locator('[data-testid="progress-stage-generate"]').getAttribute('data-status'), 'active');
    await shot(page, '08-streaming');
    await page.getByTestId('cancel-button').click();
    await page.locator('[data-testid="run-progress"][data-status="cancelled"]').waitFor({ timeout: 60_000 });
    const streamed = Number(await cell.getAttribute('data-tokens'));
    assert.ok(streamed >= 3 && streamed < 1200, `cancelled mid-generation after ${streamed} tokens`);
    await shot(page, '09-cancelled');
    assert.equal(savedReports(dataDir).length, 1, 'a cancelled run is not saved');

    // Still usable: a short run finishes.
    await page.getByTestId('tab-setup').click();
    await page.getByTestId('max-new-tokens').fill('4');
    await page.getByTestId('run-button').click();
    await page.locator('[data-testid="run-progress"][data-status="finished"]').waitFor({ timeout: 120_000 });
    await page.getByTestId('results').waitFor();
    assert.equal(savedReports(dataDir).length, 2);
    await shot(page, '10-after-cancel');
  });

  it('logged no errors in the browser console', () => {
    assert.deepEqual(problems, []);
  });
});
