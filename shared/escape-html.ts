// HTML escaping shared by the exported reports (main/report/escape.ts) and the app, whose
// chart tooltips are HTML strings that carry adapter names and token text.

const HTML_ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/**
 * Text safe in HTML element content and in double- or single-quoted attribute values.
 * Control characters other than tab/newline are shown as U+FFFD: they are invalid in
 * HTML and a generated token can be any byte.
 */
export function escapeHtml(text: string): string {
  return text
    .replace(/[&<>"']/g, (c) => HTML_ENTITIES[c]!)
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g, '\ufffd');
}
