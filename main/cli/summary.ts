// The plain-text table the CLI prints after a comparison: one row per (adapter, strategy).
import { formatBytes } from '../../shared/format.js';
import type { Report } from '../../shared/report.js';
import { terminalCell } from './terminal-text.js';

function pad(s: string, n: number, right = false): string {
  return right ? s.padStart(n) : s.padEnd(n);
}

export function formatSummaryTable(report: Report): string {
  const head = ['adapter', 'strategy', 'bytes', 'mean K err', 'mean V err', 'worst V (layer)', 'mean KL', 'top-1', 'first diff'];
  const rows: string[][] = [];
  for (const a of report.adapters) {
    for (const s of a.strategies) {
      const n = s.layers.length || 1;
      const meanK = s.layers.reduce((x, l) => x + l.kRelErr, 0) / n;
      const meanV = s.layers.reduce((x, l) => x + l.vRelErr, 0) / n;
      const worst = s.layers.reduce((w, l) => (l.vRelErr > w.vRelErr ? l : w), s.layers[0]!);
      rows.push([
        terminalCell(a.name),
        s.strategy,
        formatBytes(s.bytes),
        meanK.toFixed(4),
        meanV.toFixed(4),
        `${worst.vRelErr.toFixed(4)} (${worst.layer})`,
        s.scores.meanKl.toFixed(4),
        `${(100 * s.scores.top1Agreement).toFixed(0)}%`,
        s.generation.firstDivergence === null ? '—' : String(s.generation.firstDivergence),
      ]);
    }
  }
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((c, i) => pad(c, widths[i]!, i >= 2)).join('  ');
  const out = [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
  out.push('', `base cache (shared, counted once): ${formatBytes(report.memory.baseCacheBytes)}; ${report.backend.kind} on ${terminalCell(report.backend.device)}`);
  for (const a of report.adapters) {
    if (!a.fit) continue;
    const f = a.fit;
    const chosen = f.points.find((p) => p.strategy === f.chosen);
    out.push(`${terminalCell(a.name)} (fit): ${terminalCell(f.chosen)}${chosen ? `, ${formatBytes(chosen.bytes)}, mean KL ${chosen.meanKl.toExponential(2)}, top-1 ${(100 * chosen.top1Agreement).toFixed(1)}%` : ''} — ${f.met ? 'meets' : 'does NOT meet'} the target: ${terminalCell(f.reason)}`);
  }
  for (const a of report.adapters) {
    const exact = a.strategies.find((s) => s.strategy === 'exact');
    // JSON.stringify escapes C0 controls but leaves C1 and bidi controls raw.
    if (exact) out.push(`${terminalCell(a.name)} (exact): ${terminalCell(JSON.stringify(exact.generation.text))}`);
  }
  return `${out.join('\n')}\n`;
}
