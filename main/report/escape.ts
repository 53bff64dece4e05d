// Escaping for every text a report format embeds. Reports carry user text (document,
// prompt, generations, adapter names, folder paths) verbatim, so each format escapes
// at the one place it writes text: HTML and Markdown against markup, CSV against both
// its own syntax and spreadsheet formula injection.

import { escapeHtml } from '../../shared/escape-html.js';

export { escapeHtml };

/**
 * Text safe in one Markdown table cell: HTML-escaped (GitHub renders inline HTML),
 * pipes and backslashes escaped, line breaks as <br>, and the characters that start
 * emphasis, code, links or autolinks backslash-escaped so a name reads as written.
 * GitHub's extended autolinks (www., scheme://, user@host) are broken by escaping the
 * character they are recognized by, so `www.example.com` in a name stays text.
 */
export function escapeMarkdownCell(text: string): string {
  return escapeHtml(text)
    .replace(/[\\`*_[\]|~]/g, (c) => `\\${c}`)
    .replace(/\b(www)\./gi, '$1\\.')
    .replace(/:(?=\/\/)/g, '\\:')
    .replace(/@/g, '\\@')
    .replace(/\r?\n|\r/g, '<br>');
}

/**
 * Text safe inside an SVG (XML) document: XML 1.0 forbids most control characters, and
 * a document carrying one is not displayed at all; they are shown as U+FFFD, as in HTML.
 */
export function xmlSafeText(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\ufffe\uffff]/g, '\ufffd');
}

/** Characters that make a spreadsheet treat a cell as a formula (OWASP "CSV injection"). */
const FORMULA_START = /^[=+\-@\t\r]/;

/**
 * One CSV field (RFC 4180). Numbers are written as numbers (full precision; NaN and
 * ±Infinity as an empty cell). Text that a spreadsheet would run as a formula (starting
 * with = + - @, tab or CR) is prefixed with a single quote, which Excel, LibreOffice and
 * Google Sheets show as text; text with a comma, quote or line break is quoted.
 */
export function csvField(value: string | number | boolean | null): string {
  if (value === null) return '';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : '';
  const text = FORMULA_START.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}
