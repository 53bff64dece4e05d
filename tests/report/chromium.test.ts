// The HTML report opened in a real Chromium with the network cut: it must render its
// charts and ask for nothing (any request but the file itself is a failure), run no
// script even when user text carries one, and print to PDF. Skipped, with the reason,
// only where /usr/bin/chromium is missing (CI installs it).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { Report } from '../../shared/report.js';
import { renderHtml } from '../../main/report/render-html.js';
import { chromiumPrinter, PdfUnavailableError, renderPdf } from '../../main/report/render-pdf.js';
import { renderReport } from '../../main/report/index.js';
import { fixtureReport } from './fixture-report.js';
import { PAYLOAD, poisoned } from './payloads.js';

const CHROMIUM = '/usr/bin/chromium';
const skip = fs.existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (apt install chromium)`;
if (skip) console.log(`# skipping the Chromium report tests: ${skip}`);

interface Opened {
  page: Page;
  /** Every request other than the report file itself. */
  foreign: string[];
  failed: string[];
  consoleErrors: string[];
  dialogs: string[];
}

describe('the HTML report in Chromium, offline', { skip }, () => {
  let browser: Browser;
  let report: Report;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'adapterlens-report-html-'));

  before(async () => {
    report = await fixtureReport();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
  });
  after(async () => {
    await browser?.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  async function open(r: Report, name: string): Promise<Opened> {
    const file = path.join(tmp, name);
    fs.writeFileSync(file, renderHtml(r));
    const url = pathToFileURL(file).href;
    const context = await browser.newContext({ offline: true });
    const page = await context.newPage();
    const o: Opened = { page, foreign: [], failed: [], consoleErrors: [], dialogs: [] };
    await page.route('**/*', (route) => {
      if (route.request().url() === url) return route.continue();
      o.foreign.push(route.request().url());
      return route.abort();
    });
    page.on('requestfailed', (req) => o.failed.push(`${req.url()}: ${req.failure()?.errorText}`));
    page.on('console', (m) => m.type() === 'error' && o.consoleErrors.push(m.text()));
    page.on('dialog', (d) => {
      o.dialogs.push(d.message());
      void d.dismiss();
    });
    await page.goto(url, { waitUntil: 'load' });
    return o;
  }

  it('renders every chart as SVG and makes no request', async () => {
    const o = await open(report, 'report.html');
    const charts = await o.page.locator('figure svg').count();
    // Memory and two quality charts; per adapter its frontier and two heatmaps.
    assert.equal(charts, 3 + report.adapters.reduce((n, a) => n + (a.strategies.length > 1 ? 3 : 2), 0));
    // Charts have content: bars, points and heatmap cells are drawn paths.
    const paths = await o.page.locator('figure svg path').count();
    assert.ok(paths > 100, `${paths} paths`);
    const box = await o.page.locator('figure svg').first().boundingBox();
    assert.ok(box && box.width > 300 && box.height > 200, JSON.stringify(box));
    assert.deepEqual(o.foreign, []);
    assert.deepEqual(o.failed, []);
    assert.deepEqual(o.consoleErrors, [], 'no CSP violation or other error');
    await o.page.context().close();
  });

  it('shows hostile user text as text and runs none of it', async () => {
    const o = await open(poisoned(report), 'poisoned.html');
    assert.equal(await o.page.locator('script, img, iframe, textarea').count(), 0);
    assert.deepEqual(o.dialogs, [], 'no alert() ran');
    assert.deepEqual(o.foreign, []);
    const prompt = await o.page.locator('h3:has-text("Prompt") + pre').textContent();
    assert.equal(prompt, PAYLOAD);
    await o.page.context().close();
  });

  it('fits every table to an A4 page in print (no column cut at the margin), without screen-only hints', async () => {
    const o = await open(report, 'print.html');
    // A4 (210 mm) less the printer's 10 mm margins, at 96 px per inch.
    const width = Math.floor(((210 - 20) / 25.4) * 96);
    await o.page.setViewportSize({ width, height: 1000 });
    await o.page.emulateMedia({ media: 'print' });
    const overflowing = await o.page.evaluate((w) =>
      [...document.querySelectorAll('table')].filter((t) => t.getBoundingClientRect().right > w + 1).map((t) => t.querySelector('th')?.textContent ?? '?'),
    width);
    assert.deepEqual(overflowing, [], 'tables wider than the page');
    assert.ok((await o.page.locator('table.layer-table').count()) >= 2 * report.adapters.length, 'per-layer tables split');
    assert.equal(await o.page.locator('.screen-only').first().isVisible(), false, 'no "hover a token" on paper');
    await o.page.context().close();
  });

  it('prints to PDF through headless Chromium (the default printer)', async () => {
    const pdf = await renderReport(report, 'pdf', { printPdf: chromiumPrinter(CHROMIUM) });
    assert.equal(Buffer.from(pdf.subarray(0, 5)).toString('latin1'), '%PDF-');
    // More than one page: the report is long; the page count is in the page tree.
    const pages = Number(/\/Type\s*\/Pages[^>]*\/Count\s+(\d+)/.exec(Buffer.from(pdf).toString('latin1'))?.[1] ?? 0);
    assert.ok(pages >= 2, `${pages} pages`);
  });
});

describe('PDF printers', () => {
  it('uses the injected printer (as the app injects printToPDF) with the report HTML', async () => {
    const report = await fixtureReport();
    let seen = '';
    const pdf = await renderReport(report, 'pdf', {
      printPdf: async (html) => {
        seen = html;
        return new TextEncoder().encode('%PDF-1.7 fake');
      },
    });
    assert.equal(seen, renderHtml(report));
    assert.equal(new TextDecoder().decode(pdf), '%PDF-1.7 fake');
  });

  it('refuses a printer that returns something else', async () => {
    await assert.rejects(renderPdf('<p>x</p>', async () => new Uint8Array([1, 2, 3])), /not a PDF/);
  });

  it('says what to do where there is no Chromium', async () => {
    await assert.rejects(chromiumPrinter(path.join(os.tmpdir(), 'no-such-chromium'))('<p>x</p>'), (e: unknown) => {
      assert.ok(e instanceof PdfUnavailableError);
      assert.match(e.message, /needs Chromium/);
      assert.match(e.message, /ADAPTERLENS_CHROMIUM/);
      assert.match(e.message, /--html/);
      return true;
    });
  });
});
