// Text from files and users (adapter names, folder paths, generations, messages quoting
// them) made safe to print on a terminal. A raw ESC starts an escape sequence (moving the
// cursor, rewriting earlier lines, setting the window title), CR overwrites the line, and
// bidirectional overrides reorder what is shown: each is replaced by a visible escape such
// as "\x1b", so the output shows exactly what the text contains and does nothing else.

// C0 controls but tab and newline, DEL, C1 controls, and the Unicode bidi controls.
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
// eslint-disable-next-line no-control-regex
const UNSAFE_IN_CELL = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

function visible(c: string): string {
  const code = c.codePointAt(0)!;
  if (c === '\n') return '\\n';
  if (c === '\t') return '\\t';
  if (c === '\r') return '\\r';
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** Lines of text for a terminal: newlines and tabs kept, every other control character shown escaped. */
export function terminalSafe(text: string): string {
  return text.replace(UNSAFE, visible);
}

/** One table cell or one-line value: newlines and tabs escaped too, so the layout holds. */
export function terminalCell(text: string): string {
  return text.replace(UNSAFE_IN_CELL, visible);
}
