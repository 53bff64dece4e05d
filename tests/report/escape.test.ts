// User text in every report format: script and markup payloads placed in each text a
// report carries (document, prompt, generations, adapter/model names, folders, file
// names, device) must come out as text, never as markup; CSV text cells must not run as
// spreadsheet formulas.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import type { Report } from '../../shared/report.js';
import { csvField, escapeHtml, escapeMarkdownCell } from '../../main/report/escape.js';
import { renderCsv } from '../../main/report/render-csv.js';
import { renderHtml } from '../../main/report/render-html.js';
import { renderMarkdown } from '../../main/report/render-markdown.js';
import { fixtureReport } from './fixture-report.js';
import { PAYLOAD, PAYLOADS, MARKUP, poisoned } from './payloads.js';

describe('escaping user text in reports', () => {
  let report: Report;
  before(async () => {
    report = poisoned(await fixtureReport());
  });

  it('HTML: no payload survives raw; each shows as text', () => {
    const html = renderHtml(report);
    for (const p of MARKUP) assert.ok(!html.includes(p), `raw payload ${p}`);
    assert.equal((html.match(/<script/gi) ?? []).length, 0);
    assert.equal((html.match(/<img/gi) ?? []).length, 0);
    assert.equal((html.match(/<iframe/gi) ?? []).length, 0);
    assert.equal((html.match(/<\/textarea/gi) ?? []).length, 0);
    // No tag carries an event handler (the escaped text " onerror=" outside any tag is harmless).
    assert.equal((html.match(/<[a-z][^<>]*\son\w+=/gi) ?? []).length, 0);
    // Only our own <style> blocks close: the payload's "</style>" closed nothing.
    assert.equal((html.match(/<\/style>/g) ?? []).length, (html.match(/<style\b/g) ?? []).length);
    assert.ok(html.includes(escapeHtml(PAYLOAD)), 'the payload is shown, escaped');
  });

  it('Markdown: no raw markup and no table broken by a pipe', () => {
    const md = renderMarkdown(report);
    for (const p of MARKUP) assert.ok(!md.includes(p), `raw payload ${p}`);
    assert.ok(!md.includes('[link](javascript:'), 'a link in a name stays text');
    assert.equal((md.match(/<script/gi) ?? []).length, 0);
    assert.equal((md.match(/<img/gi) ?? []).length, 0);
    // Every table row keeps its column count: the pipes in names are escaped.
    for (const block of md.split('\n\n').filter((b) => b.startsWith('|'))) {
      const widths = block.split('\n').map((l) => l.split(/(?<!\\)\|/).length);
      assert.ok(widths.every((w) => w === widths[0]), block.slice(0, 200));
    }
  });

  it('CSV: text cells that start a formula are quoted with a leading apostrophe', () => {
    const csv = renderCsv(report);
    const dataLines = csv.split('\r\n').slice(1).filter(Boolean);
    for (const line of dataLines) assert.ok(line.startsWith(`"'=HYPERLINK(`), line.slice(0, 60));
    for (const start of ['=', '+', '-', '@', '\t', '\r']) assert.equal(csvField(`${start}1+1`).replace(/^"/, '')[0], "'", JSON.stringify(start));
    assert.equal(csvField('plain'), 'plain');
    assert.equal(csvField('a,b'), '"a,b"');
    assert.equal(csvField('say "hi"'), '"say ""hi"""');
    // Numbers stay numbers, negative ones included; unmeasured is empty.
    assert.equal(csvField(-0.5), '-0.5');
    assert.equal(csvField(Number.NaN), '');
    assert.equal(csvField(null), '');
  });

  it('escape helpers', () => {
    assert.equal(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
    assert.equal(escapeHtml('a\u0000b\u001bc\nd'), 'a\ufffdb\ufffdc\nd');
    assert.equal(escapeMarkdownCell('a|b*c\nd<e>'), 'a\\|b\\*c<br>d&lt;e&gt;');
  });
});
