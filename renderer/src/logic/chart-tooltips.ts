// The HTML of the charts' tooltips. echarts puts a formatter's string into the page as
// HTML, and these carry adapter names (user text, also from saved reports): every name is
// escaped here, in one place the tests can reach.
import { escapeHtml } from '../../../shared/escape-html.js';
import { count, formatBytes } from './format.js';

/** What echarts passes an axis-triggered formatter, per series. */
export interface AxisTooltipItem {
  seriesName?: string;
  value?: unknown;
  axisValueLabel?: string;
  marker?: string;
}

/** What echarts passes an item-triggered scatter formatter. */
export interface ScatterTooltip {
  data?: { name?: string; raw?: number; value?: [number, number] };
}

/** The memory bars: one line per stacked series (base, each adapter) and the total. */
export function stackedBytesTooltip(items: readonly AxisTooltipItem[]): string {
  const head = items[0]?.axisValueLabel ?? '';
  const rows = items.map((i) => `${i.marker ?? ''}${escapeHtml(i.seriesName ?? '')}: ${formatBytes(Number(i.value))}`);
  const total = items.reduce((s, i) => s + Number(i.value), 0);
  return [`<b>${escapeHtml(head)}</b>`, ...rows, `total ${formatBytes(total)}`].join('<br/>');
}

/** The scaling lines: bytes per strategy at one adapter count. */
export function adapterCountTooltip(items: readonly AxisTooltipItem[]): string {
  const first = items[0]?.value;
  const n = Array.isArray(first) ? Number(first[0]) : 0;
  const rows = items.map((i) => `${i.marker ?? ''}${escapeHtml(i.seriesName ?? '')}: ${formatBytes(Array.isArray(i.value) ? Number(i.value[1]) : 0)}`);
  return [`<b>${count(n)} adapters</b>`, ...rows].join('<br/>');
}

/** One point of quality vs memory: its name, its bytes and the metric already formatted. */
export function scatterTooltip(p: ScatterTooltip, metricText: string): string {
  return `${escapeHtml(p.data?.name ?? '')}<br/>${formatBytes(p.data?.value?.[0] ?? 0)} · ${escapeHtml(metricText)}`;
}
