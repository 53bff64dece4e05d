// The CSV report: one row per (adapter, strategy, layer) with every per-layer metric,
// for spreadsheets and dataframes. RFC 4180 (comma, CRLF, quoted where needed).
// Numbers are written at full precision; text cells that a spreadsheet would run as a
// formula (= + - @ at the start) get a leading single quote (see escape.ts: csvField).
// The layer × token grids are not here (hundreds of columns): they stay in the JSON.
import type { Report } from '../../shared/report.js';
import { adapterLayerRows } from '../../shared/report-views.js';
import { csvField } from './escape.js';

export function renderCsv(r: Report): string {
  const heads = r.model.numKvHeads;
  const headCols = (p: string): string[] => Array.from({ length: heads }, (_, h) => `${p}_head${h}`);
  const header = ['adapter', 'strategy', 'layer', 'kRelErr', 'vRelErr', 'outsideSpan', 'keptExact', 'strategyBytes', ...headCols('kRelErr'), ...headCols('vRelErr')];
  const lines = [header.map(csvField).join(',')];
  const pad = (xs: number[]): (number | null)[] => Array.from({ length: heads }, (_, h) => xs[h] ?? null);
  for (const a of r.adapters) {
    const bytes = new Map(a.strategies.map((s) => [s.strategy, s.bytes]));
    for (const row of adapterLayerRows(a)) {
      const fields = [row.adapter, row.strategy, row.layer, row.kRelErr, row.vRelErr, row.outsideSpan, row.keptExact, bytes.get(row.strategy) ?? null, ...pad(row.kHeads), ...pad(row.vHeads)];
      lines.push(fields.map(csvField).join(','));
    }
  }
  return `${lines.join('\r\n')}\r\n`;
}
