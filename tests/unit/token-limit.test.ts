// Counting up to a limit (main/rpc/token-limit.ts): exact under the limit, a lower bound
// past it, cut between words, and work proportional to the limit rather than the text.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { countUpTo, cutBefore } from '../../main/rpc/token-limit.js';

/** A stand-in tokenizer: one token per word; records how many characters it was given. */
function wordEncoder(): { encode: (t: string) => string[]; chars: number[] } {
  const chars: number[] = [];
  return { chars, encode: (t) => (chars.push(t.length), t.split(/\s+/).filter(Boolean)) };
}

describe('countUpTo', () => {
  it('counts the whole text when there is no limit or the text is short', () => {
    const e = wordEncoder();
    assert.deepEqual(countUpTo(e.encode, 'a b c', undefined), { tokens: 3, complete: true });
    assert.deepEqual(countUpTo(e.encode, 'a b c', 2), { tokens: 3, complete: true }, 'short text: the exact figure, even past the limit');
  });

  it('stops at the first prefix that reaches the limit, having read far less than the text', () => {
    const e = wordEncoder();
    const text = 'word '.repeat(1_000_000); // 5 MB, 1M words
    const c = countUpTo(e.encode, text, 5000);
    assert.equal(c.complete, false);
    assert.ok(c.tokens >= 5000 && c.tokens <= 2 * 16_384, String(c.tokens));
    const read = e.chars.reduce((a, b) => a + b, 0);
    assert.ok(read < 100_000, `read ${read} characters of ${text.length}`);
  });

  it('gives the exact count when the whole text turns out to be under the limit', () => {
    const e = wordEncoder();
    const text = 'x'.repeat(40_000) + ' tail'; // long, but only 2 words
    assert.deepEqual(countUpTo(e.encode, text, 10), { tokens: 2, complete: true });
  });

  it('never reports more than the whole text has', () => {
    const e = wordEncoder();
    const text = 'ab cd '.repeat(20_000);
    const whole = e.encode(text).length;
    const c = countUpTo(e.encode, text, 3000);
    assert.ok(!c.complete && c.tokens >= 3000 && c.tokens <= whole);
  });
});

describe('cutBefore', () => {
  it('cuts at whitespace at or before the position, never inside a surrogate pair', () => {
    assert.equal(cutBefore('hello world again', 9), 5);
    const emoji = '😀'.repeat(10);
    const cut = cutBefore(emoji, 5);
    assert.equal(cut % 2, 0, 'on a code point boundary');
  });
});
