// User text in reports and on the terminal (issue 13, row 12): control characters in
// names never reach a chart's SVG (XML forbids them: the chart would not display), a
// domain name in an adapter name is no live autolink in Markdown, and the CLI's summary
// table shows ESC / CR escaped.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { formatSummaryTable } from '../../main/cli/summary.js';
import { renderHtml } from '../../main/report/render-html.js';
import { renderMarkdown } from '../../main/report/render-markdown.js';
import { escapeMarkdownCell, xmlSafeText } from '../../main/report/escape.js';
import type { Report } from '../../shared/report.js';
import { cloneReport, fixtureReport } from '../report/fixture-report.js';

// eslint-disable-next-line no-control-regex
const XML_INVALID = /[\u0000-\u0008\u000b\u000c\u000e-\u001f]/;

describe('control characters and autolinks in user text', () => {
  let report: Report;
  before(async () => {
    report = cloneReport(await fixtureReport());
    report.adapters[0]!.name = 'qv\u0001\u001b[31m\u0008 see www.example.com or https://evil.example/x and me@example.com';
    report.adapters[1]!.name = 'all\r\u000b\u007f\u0085';
    report.model.name = 'tiny\u0002model';
  });

  it('the HTML report\'s SVG charts carry no character XML forbids', () => {
    const html = renderHtml(report);
    const svgs = html.match(/<svg[\s\S]*?<\/svg>/g) ?? [];
    assert.ok(svgs.length >= 2, 'the report has its charts');
    for (const svg of svgs) assert.doesNotMatch(svg, XML_INVALID);
    assert.doesNotMatch(html, XML_INVALID);
    assert.equal(xmlSafeText('a\u0001b\tc\nd'), 'a\ufffdb\tc\nd');
  });

  it('Markdown: www., scheme:// and e-mail addresses in names are no autolinks', () => {
    const md = renderMarkdown(report);
    assert.ok(!md.includes('www.example.com'), 'www. broken');
    assert.ok(!md.includes('https://evil'), 'scheme:// broken');
    assert.ok(!md.includes('me@example.com'), 'e-mail broken');
    assert.ok(md.includes('www\\.example.com') && md.includes('https\\://evil.example') && md.includes('me\\@example.com'), 'the text still reads as written');
    assert.doesNotMatch(md, /[\u0001\u001b\u0008\r\u000b]/);
    assert.equal(escapeMarkdownCell('WWW.Example.org'), 'WWW\\.Example.org');
  });

  it('the CLI summary table escapes ESC, CR and other controls', () => {
    const table = formatSummaryTable(report);
    assert.doesNotMatch(table, /[\u0001\u001b\u0008\r\u000b\u007f\u0085]/);
    assert.match(table, /qv\\x01\\x1b\[31m\\x08 see www\.example\.com/);
    assert.match(table, /all\\r\\x0b\\x7f\\x85/);
    // One line per row: the layout holds.
    const lines = table.split('\n');
    assert.equal(lines.filter((l) => l.startsWith('qv') || l.startsWith('all')).length, report.adapters.reduce((n, a) => n + a.strategies.length, 0) + 2);
  });
});
