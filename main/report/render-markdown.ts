// The Markdown report: summary tables that paste into a pull request or an issue
// (GitHub-flavoured tables), one per adapter, plus the run's settings and file hashes.
// Every user text goes through escapeMarkdownCell, so a name cannot break a table or
// inject markup.
import { formatBytes, formatShare } from '../../shared/format.js';
import type { Report } from '../../shared/report.js';
import { METRIC_HELP } from '../../shared/metric-help.js';
import { frontierRows, summaryRow } from '../../shared/report-views.js';
import { escapeMarkdownCell as cell } from './escape.js';
import { tokenizerOnlyFiles } from './render-html.js';

function fmt(n: number | null, digits = 4): string {
  return n === null || !Number.isFinite(n) ? '—' : n.toFixed(digits);
}

function pct(n: number | null): string {
  return n === null || !Number.isFinite(n) ? '—' : `${(100 * n).toFixed(0)}%`;
}

function mdTable(head: string[], rows: string[][], rightFrom: number): string {
  const align = head.map((_, i) => (i >= rightFrom ? '---:' : '---'));
  return [head, align, ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

export function renderMarkdown(r: Report): string {
  const out: string[] = [];
  out.push(`## AdapterLens: ${cell(r.model.name)}, ${r.adapters.length} adapter${r.adapters.length === 1 ? '' : 's'}`, '');
  const s = r.settings;
  out.push(
    `${r.documentTokens.length} document tokens + ${r.promptTokens.length} prompt tokens; ` +
      `${s.maxNewTokens} new tokens ${s.temperature === 0 ? 'greedy' : `(temperature ${s.temperature}, top-p ${s.topP}, seed ${s.seed})`}; ` +
      `${cell(r.backend.kind)} on ${cell(r.backend.device)}, ${s.dtype}; ${cell(r.createdAt)}. ` +
      `Shared base cache ${formatBytes(r.memory.baseCacheBytes)} (held once).`,
    '',
  );
  const head = ['strategy', 'bytes', METRIC_HELP.storeShare.label, 'mean K err', 'mean V err', 'worst V err (layer)', 'mean KL', 'top-1', 'first divergence'];
  for (const a of r.adapters) {
    out.push(`### ${cell(a.name)} (rank ${a.rank}, alpha ${fmt(a.alpha, 2)})`, '');
    const rows = a.strategies.map((st) => {
      const row = summaryRow(a, st);
      return [
        `\`${row.strategy}\``,
        formatBytes(row.bytes),
        formatShare(row.bytesVsExact),
        fmt(row.meanKRelErr),
        fmt(row.meanVRelErr),
        row.worstLayer ? `${fmt(row.worstLayer.vRelErr)} (${row.worstLayer.layer})` : '—',
        fmt(row.meanKl),
        pct(row.top1Agreement),
        row.firstDivergence === null ? 'none' : String(row.firstDivergence),
      ];
    });
    out.push(mdTable(head, rows, 1), '');
    const frontier = frontierRows(r).filter((x) => x.adapter === a.name);
    if (frontier.length > 1) {
      const exactBytes = a.strategies.find((x) => x.strategy === 'exact')?.bytes ?? 0;
      out.push(`Quality/bytes frontier of ${cell(a.name)} (every strategy and fit budget point, cheapest first; ● Pareto front of bytes against mean KL):`, '');
      out.push(
        mdTable(
          ['strategy', 'kind', 'bytes', '÷ exact', 'mean KL', 'top-1', 'Pareto'],
          frontier.map((x) => [`\`${x.strategy}\``, x.kind, formatBytes(x.bytes), exactBytes > 0 ? (x.bytes / exactBytes).toFixed(4) : '—', x.meanKl === 0 ? '0' : x.meanKl.toExponential(2), pct(x.top1Agreement), x.pareto ? '●' : '']),
          2,
        ),
        '',
      );
    }
    if (a.fit) {
      const f = a.fit;
      out.push(`Fit to budget: \`${f.chosen}\` — ${f.met ? 'meets the target' : '**does not meet the target**'} (${cell(f.reason)}).`, '');
    }
  }
  out.push(
    'Errors: ‖X − X_exact‖_F / ‖X_exact‖_F per layer over the document; KL (nats) and top-1 teacher-forced on the exact continuation; first divergence: the first generated token that differs from `exact`.',
    `${METRIC_HELP.storeShare.label}: ${METRIC_HELP.storeShare.text}`,
    '',
  );
  const files: string[][] = [
    ...Object.entries(r.model.sha256).map(([f, h]) => [`model ${cell(r.model.name)}`, cell(f), `\`${h}\``]),
    ...Object.entries(tokenizerOnlyFiles(r)).map(([f, h]) => ['tokenizer', cell(f), `\`${h}\``]),
    ...r.adapters.flatMap((a) => Object.entries(a.sha256).map(([f, h]) => [`adapter ${cell(a.name)}`, cell(f), `\`${h}\``])),
  ];
  // Hashes are long: folded away in a <details> that GitHub renders closed.
  out.push('<details><summary>File hashes (SHA-256)</summary>', '', mdTable(['for', 'file', 'SHA-256'], files, 99), '', '</details>', '');
  return `${out.join('\n')}`;
}
