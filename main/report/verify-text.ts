// A verification result as text a person reads in a terminal: a verdict, the hash
// mismatches by file, then which numbers moved (adapter · strategy · layer · metric:
// old → new), the longest lists cut with a count of what was left out.
import type { Move, Tolerances } from './report-diff.js';
import type { VerifyResult } from './verify.js';

const MAX_MOVES = 40;

function moveLine(m: Move): string {
  const where = [m.adapter && `adapter ${m.adapter}`, m.strategy, m.layer !== null && `layer ${m.layer}`].filter(Boolean).join(' · ');
  return `  ${where ? `${where} · ` : ''}${m.metric}: ${m.old} → ${m.new}`;
}

export function formatVerification(r: VerifyResult, tolerances: Tolerances, maxMoves = MAX_MOVES): string {
  const out: string[] = [];
  out.push(r.ok ? 'verify: OK — the files hash the same and the re-run reproduces the report.' : 'verify: FAILED');
  if (r.hashMismatches.length) {
    out.push('', `Files that no longer match the report (${r.hashMismatches.length}):`);
    for (const h of r.hashMismatches) {
      const file = h.file ? `${h.dir}/${h.file}` : h.dir;
      if (h.kind === 'changed') out.push(`  ${h.owner}: ${file} changed: sha256 ${h.old} → ${h.new}`);
      else if (h.kind === 'missing') out.push(`  ${h.owner}: ${file} is missing (was ${h.old})`);
      else if (h.kind === 'added') out.push(`  ${h.owner}: ${file} is new (sha256 ${h.new})`);
      else out.push(`  ${h.owner}: cannot read ${file}: ${h.new}`);
    }
  }
  if (r.rerunError) out.push('', `The re-run failed: ${r.rerunError}`);
  if (r.moves.length) {
    out.push('', `Numbers that moved beyond tolerance (${r.moves.length}; errors ${tolerances.errors}, scores ${tolerances.scores}, probs ${tolerances.probs}, relative, floor 0.01):`);
    // Per-layer and per-strategy values first; grid cells and per-token values after them.
    const ordered = [...r.moves.filter((m) => !m.detail), ...r.moves.filter((m) => m.detail)];
    for (const m of ordered.slice(0, maxMoves)) out.push(moveLine(m));
    if (ordered.length > maxMoves) {
      const counts = new Map<string, number>();
      for (const m of ordered.slice(maxMoves)) {
        const key = m.metric.replace(/\[.*$/, '').replace(/ \(from index.*$/, '');
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      out.push(`  … and ${r.moves.length - maxMoves} more (${[...counts].map(([k, n]) => `${k} ×${n}`).join(', ')})`);
    }
  } else if (r.fresh) {
    out.push(`Re-run: every number within tolerance (errors ${tolerances.errors}, scores ${tolerances.scores}, probs ${tolerances.probs}); tokens, bytes and divergences identical.`);
  }
  for (const n of r.notes) out.push(`note: ${n}`);
  return `${out.join('\n')}\n`;
}
