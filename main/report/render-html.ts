// The HTML report: one self-contained file rendered from the report JSON alone.
//
// Offline by construction: no script, no external stylesheet, font or image; charts are
// inline SVG from echarts' server-side renderer; and a Content-Security-Policy meta tag
// (default-src 'none') makes the browser refuse any request the file might still make.
// Every user-provided text goes through escapeHtml exactly where it is written.
import { formatBytes, formatShare } from '../../shared/format.js';
import type { AdapterResult, Report, StrategyResult } from '../../shared/report.js';
import { METRIC_HELP, type MetricTopic } from '../../shared/metric-help.js';
import { divergenceTokens, exactOf, frontierRows, memorySeries, summaryRow, summaryRows, type SummaryRow } from '../../shared/report-views.js';
import { STRATEGY_DESCRIPTIONS, parseStrategy } from '../../shared/strategies.js';
import { reportCharts, type Chart } from './charts-svg.js';
import { escapeHtml as esc } from './escape.js';

/** The policy the report is written under: nothing but inline styles and data: images. */
export const REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'";

/** A measured number for a table cell ("—" where not measured). */
function fmt(n: number | null | undefined, digits = 4): string {
  return n === null || n === undefined || !Number.isFinite(n) ? '—' : n.toFixed(digits);
}

/** Ratios near 1 with three decimals; huge ones (a broken cache's perplexity) in exponent form. */
function ratio(n: number): string {
  return !Number.isFinite(n) ? '—' : Math.abs(n) < 1000 ? n.toFixed(3) : n.toExponential(2);
}

/** A mean KL: it spans decades, so in exponent form (0 for exact). */
function klText(n: number): string {
  return !Number.isFinite(n) ? '—' : n === 0 ? '0' : n.toExponential(2);
}

/** Shares and agreement rates: shared/format's formatShare, as the app shows them. */
const pct = formatShare;

const STYLE = `
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1f24; margin: 0 auto; max-width: 1200px; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 32px 0 8px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 20px 0 6px; }
.muted { color: #57606a; } code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
table { border-collapse: collapse; margin: 6px 0 12px; } th, td { border: 1px solid #d0d7de; padding: 3px 8px; vertical-align: top; }
th { background: #f6f8fa; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.hash { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 11px; word-break: break-all; }
.outputs { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 8px; }
.output { border: 1px solid #d0d7de; border-radius: 6px; padding: 6px 8px; break-inside: avoid; }
.output h4 { margin: 0 0 4px; font-size: 13px; } .gen { white-space: pre-wrap; word-break: break-word; font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
.tok.div { background: #ffebe9; color: #82071e; text-decoration: underline wavy #cf222e; }
.legend .tok { padding: 0 3px; }
figure { margin: 8px 0 16px; break-inside: avoid; } figcaption { font-weight: 600; margin-bottom: 2px; }
figure svg { max-width: 100%; height: auto; }
pre.text { white-space: pre-wrap; word-break: break-word; background: #f6f8fa; padding: 8px; border-radius: 6px; max-height: 480px; overflow: auto; }
td.kept { background: #dafbe1; }
dl.defs dt { font-weight: 600; margin-top: 6px; } dl.defs dd { margin: 0 0 0 16px; }
.print-only { display: none; }
@media print {
  body { max-width: none; padding: 0; font-size: 11px; }
  pre.text { max-height: none; }
  h2 { break-after: avoid; }
  .screen-only { display: none; }
  .print-only { display: inline; }
  /* Tables fit the page: fixed layout over the full width, long values wrap. */
  table { width: 100%; table-layout: fixed; font-size: 9px; }
  th, td { padding: 2px 4px; overflow-wrap: anywhere; }
  td.num { white-space: normal; }
}
`;

function table(head: string[], rows: string[][], numericFrom = Number.POSITIVE_INFINITY): string {
  const th = head.map((h) => `<th>${esc(h)}</th>`).join('');
  const trs = rows.map((r) => `<tr>${r.map((c, i) => (i >= numericFrom ? `<td class="num">${c}</td>` : `<td>${c}</td>`)).join('')}</tr>`).join('\n');
  return `<table><thead><tr>${th}</tr></thead><tbody>\n${trs}\n</tbody></table>`;
}

function figure(c: Chart): string {
  // The SVG comes from echarts, which escapes the names it draws; the caption is ours.
  return `<figure><figcaption>${esc(c.title)}</figcaption>${c.svg}</figure>`;
}

function runSection(r: Report): string {
  const s = r.settings;
  const rows: [string, string][] = [
    ['created', esc(r.createdAt)],
    ['model', `${esc(r.model.name)} <span class="muted">(${esc(r.model.architecture)}, ${r.model.numLayers} layers, ${r.model.numHeads} heads / ${r.model.numKvHeads} KV heads × ${r.model.headDim}, ${r.model.parameters.toLocaleString('en-US')} parameters, stored ${esc(r.model.storedDtype)})</span>`],
    ['document', `${r.documentTokens.length} tokens (BOS included)`],
    ['prompt', `${r.promptTokens.length} tokens: <code>${esc(JSON.stringify(r.prompt.text))}</code>`],
    ['strategies', s.strategies.map((x) => `<code>${esc(x)}</code>`).join(', ')],
    ['generation', `${s.maxNewTokens} new tokens, ${s.temperature === 0 ? 'greedy' : `temperature ${s.temperature}, top-p ${s.topP}, seed ${s.seed}`}, ${s.stopAtEos ? 'stops at EOS' : 'does not stop at EOS'}`],
    ['engine', `${esc(r.backend.kind)} on ${esc(r.backend.device)}, ${esc(s.dtype)} (device asked: ${esc(s.device)})${r.backend.fallbackReason ? ` <span class="muted">— ${esc(r.backend.fallbackReason)}</span>` : ''}`],
    ['versions', `AdapterLens ${esc(r.versions.adapterlens)}, engine ${esc(r.versions.engine)}, Node ${esc(r.versions.node)}`],
    ['memory', `shared base cache ${formatBytes(r.memory.baseCacheBytes)} (held once); one adapter's exact cache ${formatBytes(r.memory.exactCacheBytes)}`],
  ];
  return `<h2>Run</h2>\n<table><tbody>${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${v}</td></tr>`).join('\n')}</tbody></table>`;
}

function hashRows(owner: string, dir: string, hashes: Record<string, string>): string[][] {
  return Object.entries(hashes).map(([file, h]) => [esc(owner), `<span class="mono">${esc(dir)}</span>`, `<span class="mono">${esc(file)}</span>`, `<span class="hash">${esc(h)}</span>`]);
}

/**
 * The tokenizer's files that are not already listed as the model's (the usual case is a
 * tokenizer read from the model folder: the same files, which the table must not repeat).
 */
export function tokenizerOnlyFiles(r: Report): Record<string, string> {
  const sameFolder = r.tokenizer.dir === r.model.dir;
  return Object.fromEntries(Object.entries(r.tokenizer.sha256).filter(([file, h]) => !(sameFolder && r.model.sha256[file] === h)));
}

function filesSection(r: Report): string {
  const tokenizerFiles = tokenizerOnlyFiles(r);
  const shared = Object.keys(r.tokenizer.sha256).length - Object.keys(tokenizerFiles).length;
  const rows = [
    ...hashRows(`model ${r.model.name}`, r.model.dir, r.model.sha256),
    ...hashRows('tokenizer', r.tokenizer.dir, tokenizerFiles),
    ...(shared > 0 ? [[esc('tokenizer'), `<span class="mono">${esc(r.tokenizer.dir)}</span>`, `<span class="muted">the model folder's tokenizer files (${shared}, listed above)</span>`, '']] : []),
    ...r.adapters.flatMap((a) => hashRows(`adapter ${a.name}`, a.dir, a.sha256)),
  ];
  const adapters = r.adapters.map((a) => [esc(a.name), String(a.rank), fmt(a.alpha, 2), a.targetModules.map((m) => `<code>${esc(m)}</code>`).join(' ')]);
  return `<h2>Files</h2>
<p class="muted">SHA-256 of every file the run read; <code>adapterlens verify</code> checks them again.</p>
${table(['adapter', 'rank', 'alpha', 'target modules'], adapters)}
${table(['for', 'folder', 'file', 'SHA-256'], rows)}`;
}

function summaryCells(row: SummaryRow): string[] {
  return [
    esc(row.adapter),
    `<code>${esc(row.strategy)}</code>`,
    formatBytes(row.bytes),
    pct(row.bytesVsExact),
    fmt(row.meanKRelErr),
    fmt(row.meanVRelErr),
    row.worstLayer ? `${fmt(row.worstLayer.vRelErr)} (${row.worstLayer.layer})` : '—',
    fmt(row.meanKl),
    pct(row.top1Agreement),
    ratio(row.perplexityRatio),
    row.firstDivergence === null ? 'none' : String(row.firstDivergence),
  ];
}

function summarySection(r: Report): string {
  const head = ['adapter', 'strategy', 'bytes', METRIC_HELP.storeShare.label, 'mean K err', 'mean V err', 'worst V err (layer)', 'mean KL', 'top-1', 'ppl ratio', 'first divergence'];
  const strategies = [...new Set(r.adapters.flatMap((a) => a.strategies.map((s) => s.strategy)))];
  const legend = strategies.map((id) => `<li><code>${esc(id)}</code>: ${esc(STRATEGY_DESCRIPTIONS[parseStrategy(id).kind])}</li>`).join('');
  return `<h2>Summary</h2>
<p class="muted">Errors are ‖X − X<sub>exact</sub>‖<sub>F</sub> / ‖X<sub>exact</sub>‖<sub>F</sub> per layer over all document tokens and KV heads; KL and top-1 are teacher-forced on the exact cache's continuation.</p>
${table(head, summaryRows(r).map(summaryCells), 2)}
<ul class="muted">${legend}</ul>`;
}

/** Per strategy: the shared base cache, each adapter's store, the total and its share of exact (the app's memory table). */
function memoryTable(r: Report): string {
  const series = memorySeries(r);
  const head = ['strategy', 'shared base cache', ...r.adapters.map((a) => a.name), 'total', METRIC_HELP.totalShare.label];
  const rows = series.map((p) => [
    `<code>${esc(p.strategy)}</code>`,
    formatBytes(p.strategy === 'exact' ? 0 : r.memory.baseCacheBytes),
    ...p.perAdapter.map((b) => (b === null ? '—' : formatBytes(b))),
    formatBytes(p.total),
    pct(p.totalVsExact),
  ]);
  return table(head, rows, 1);
}

/** The metric definitions the app's inline help shows, word for word. */
function definitionsSection(): string {
  const topics: MetricTopic[] = ['relErr', 'kl', 'top1', 'pplRatio', 'storeShare', 'totalShare', 'pareto', 'outsideSpan', 'firstDivergence'];
  const items = topics.map((t) => `<dt>${esc(METRIC_HELP[t].label)}</dt><dd>${esc(METRIC_HELP[t].text)}</dd>`).join('\n');
  return `<h2>Definitions</h2>\n<dl class="defs">${items}</dl>`;
}

function generationHtml(s: StrategyResult): string {
  const toks = divergenceTokens(s);
  if (toks.length === 0) return '<span class="muted">(no tokens)</span>';
  return toks
    .map((t) => `<span class="tok${t.diverged ? ' div' : ''}" title="#${t.index} id ${t.token} p=${fmt(t.prob, 3)}">${esc(t.piece)}</span>`)
    .join('');
}

function outputsHtml(a: AdapterResult): string {
  const cards = a.strategies.map((s) => {
    const row = summaryRow(a, s);
    const note = s.strategy === 'exact' ? 'reference' : row.firstDivergence === null ? 'same as exact' : `differs from token ${row.firstDivergence}`;
    return `<div class="output"><h4><code>${esc(s.strategy)}</code> <span class="muted">${esc(note)}</span></h4><div class="gen">${generationHtml(s)}</div></div>`;
  });
  return `<div class="outputs">${cards.join('\n')}</div>`;
}

/** Strategies per per-layer table: more columns than this do not fit a printed A4 page. */
export const LAYER_TABLE_STRATEGIES = 5;

function layerTable(r: Report, a: AdapterResult): string {
  const hasSpan = a.strategies.some((s) => s.layers.some((l) => l.outsideSpan !== undefined && l.outsideSpan !== null));
  const seed = a.strategies.find((s) => s.strategy === 'seed-minikv');
  // Wide runs are split into several tables of a few strategies each, so no column is cut off in print.
  const chunks: StrategyResult[][] = [];
  for (let i = 0; i < a.strategies.length; i += LAYER_TABLE_STRATEGIES) chunks.push(a.strategies.slice(i, i + LAYER_TABLE_STRATEGIES));
  return chunks
    .map((chunk, ci) => {
      const withSpan = hasSpan && ci === chunks.length - 1;
      const head = ['layer', ...chunk.map((s) => `${s.strategy} K / V`), ...(withSpan ? ['outside span(B_v)'] : [])];
      const rows = Array.from({ length: r.model.numLayers }, (_, layer) => {
        const cells = chunk.map((s) => {
          const l = s.layers[layer];
          const kept = s.exactLayers?.includes(layer) ?? false;
          const text = l ? `${fmt(l.kRelErr)} / ${fmt(l.vRelErr)}` : '—';
          return kept ? `<span title="kept exact">${text} ✓</span>` : text;
        });
        const span = withSpan ? [fmt(seed?.layers[layer]?.outsideSpan ?? null)] : [];
        return [String(layer), ...cells, ...span];
      });
      return table(head, rows, 1).replace('<table>', '<table class="layer-table">');
    })
    .join('\n');
}

/** The adapter's frontier: every strategy and fit budget point, cheapest first, Pareto marked; and the fit's choice. */
function frontierHtml(r: Report, a: AdapterResult): string {
  const rows = frontierRows(r).filter((x) => x.adapter === a.name);
  const exactBytes = exactOf(a)?.bytes ?? 0;
  const body = rows.map((x) => [
    `<code>${esc(x.strategy)}</code>`,
    x.kind,
    formatBytes(x.bytes),
    exactBytes > 0 ? ratio(x.bytes / exactBytes) : '—',
    klText(x.meanKl),
    pct(x.top1Agreement),
    x.pareto ? '●' : '',
  ]);
  const f = a.fit;
  const fitLine = f
    ? `<p data-testid="fit-choice">Fit to budget${f.budgetBytes !== null ? `, at most ${formatBytes(f.budgetBytes)}` : ''}${f.targetKl !== null ? `, mean KL ≤ ${klText(f.targetKl)}` : ''}${f.minTop1 !== null ? `, top-1 ≥ ${pct(f.minTop1)}` : ''}: <code>${esc(f.chosen)}</code> — ${f.met ? 'meets it' : '<strong>does not meet it</strong>'} (${esc(f.reason)}).</p>`
    : '';
  return `<h3>Quality/bytes frontier</h3>
${fitLine}
${table(['strategy', 'kind', 'bytes', '÷ exact', 'mean KL', 'top-1', 'Pareto'], body, 2).replace('<table>', '<table class="frontier-table">')}`;
}

function adapterSection(r: Report, a: AdapterResult, charts: Chart[]): string {
  const exact = exactOf(a);
  return `<h2>Adapter ${esc(a.name)}</h2>
<p class="muted">rank ${a.rank}, alpha ${fmt(a.alpha, 2)}; folder <span class="mono">${esc(a.dir)}</span></p>
<h3>Generations side by side</h3>
<p class="legend muted">Each strategy's free-running generation from the same prompt; <span class="tok div">marked</span> from the first token that differs from <code>exact</code> on<span class="screen-only"> (hover a token for its id and probability)</span>.${exact ? '' : ' This adapter has no exact result.'}</p>
${outputsHtml(a)}
${a.strategies.length > 1 ? frontierHtml(r, a) : ''}
<h3>Per-layer error</h3>
${charts.map(figure).join('\n')}
${layerTable(r, a)}`;
}

function textSection(r: Report): string {
  return `<h2>Inputs</h2>
<details><summary>Document (${r.document.text.length.toLocaleString('en-US')} characters, ${r.documentTokens.length} tokens)</summary><pre class="text">${esc(r.document.text)}</pre></details>
<h3>Prompt</h3><pre class="text">${esc(r.prompt.text)}</pre>`;
}

function timingsSection(r: Report): string {
  // The runner records a stage once per entry (encode/measure alternate): sum per stage, first-seen order.
  const totals = new Map<string, number>();
  for (const t of r.timings) totals.set(t.stage, (totals.get(t.stage) ?? 0) + (Number.isFinite(t.ms) ? t.ms : 0));
  const rows = [...totals].map(([stage, ms]) => [esc(stage), ms.toFixed(1)]);
  return `<h2>Timings</h2>${table(['stage', 'ms'], rows, 1)}`;
}

/** The whole report as one HTML document. */
export function renderHtml(report: Report): string {
  const charts = reportCharts(report);
  const title = `AdapterLens report: ${report.model.name}, ${report.adapters.length} adapter${report.adapters.length === 1 ? '' : 's'}`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${esc(REPORT_CSP)}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="AdapterLens ${esc(report.versions.adapterlens)}">
<title>${esc(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${esc(title)}</h1>
<p class="muted">${esc(report.createdAt)} · ${esc(report.backend.kind)} on ${esc(report.backend.device)} · ${report.documentTokens.length} document tokens</p>
${summarySection(report)}
<h2>Memory and quality</h2>
${charts.overview.slice(0, 1).map(figure).join('\n')}
${memoryTable(report)}
${charts.overview.slice(1).map(figure).join('\n')}
${report.adapters.map((a, i) => adapterSection(report, a, charts.perAdapter[i] ?? [])).join('\n')}
${runSection(report)}
${filesSection(report)}
${textSection(report)}
${timingsSection(report)}
${definitionsSection()}
</body>
</html>
`;
}
