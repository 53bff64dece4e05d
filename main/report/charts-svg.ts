// The report's charts as SVG strings, rendered by echarts on the Node side (server-side
// rendering: no DOM, no canvas, no script in the result). The HTML report inlines them,
// so a chart needs neither JavaScript nor the network to show, and prints to PDF as is.
// echarts escapes every text it writes into the SVG (names, axis labels).
import { createRequire } from 'node:module';
import type * as echarts from 'echarts';
import { adapterColor, adapterSymbol, BASE_COLOR, orderStrategies, strategyColor, VIRIDIS } from '../../shared/chart-style.js';
import { byteAxis, formatBytesTick } from '../../shared/format.js';
import type { AdapterResult, Report } from '../../shared/report.js';
import { frontierRows, memorySeries, qualityPoints, summaryRows } from '../../shared/report-views.js';
import { xmlSafeText } from './escape.js';

export interface Chart {
  title: string;
  svg: string;
}

const WIDTH = 760;

/**
 * echarts, loaded at the first chart. Its ES build is hundreds of files and took 0.5–0.7 s
 * to import here (its one-file CommonJS bundle, the same code, 0.12 s): imported at the top,
 * every command paid that at start-up, `compare`'s first run included, while only report
 * rendering uses it.
 */
let loaded: typeof echarts | null = null;
function echartsLib(): typeof echarts {
  loaded ??= createRequire(import.meta.url)('echarts') as typeof echarts;
  return loaded;
}

/**
 * echarts names the SVG's classes, clip paths and gradients "zr<instance>-…" from
 * process-wide counters: the same report would render differently on a second call, and
 * two charts of one page must not share a name (their <style> blocks are global). Each
 * name is rewritten to "<key>-<n>", n in order of first use: deterministic, and unique
 * in a document whose charts have distinct keys.
 */
function renameIds(svg: string, key: string): string {
  const names = new Map<string, string>();
  return svg.replace(/\bzr\d+-[A-Za-z0-9_-]+/g, (name) => {
    let renamed = names.get(name);
    if (!renamed) names.set(name, (renamed = `${key}-${names.size}`));
    return renamed;
  });
}

/**
 * Renders one option to an SVG string; the instance is always disposed (a live one keeps
 * Node running). `key` names the chart's ids (unique per document).
 */
function renderSvg(key: string, option: echarts.EChartsCoreOption, width: number, height: number): string {
  const chart = echartsLib().init(null, null, { renderer: 'svg', ssr: true, width, height });
  try {
    chart.setOption({ animation: false, textStyle: { fontFamily: 'sans-serif' }, ...option });
    // echarts escapes markup in names and labels but passes control characters through.
    return xmlSafeText(renameIds(chart.renderToSVGString(), key));
  } finally {
    chart.dispose();
  }
}

/**
 * Cache memory per strategy, as in the app: one stacked bar per strategy (x), the shared
 * base cache at the bottom (held once; exact needs none) and each adapter's store on top,
 * in the shared colours, on a byte axis with round binary ticks.
 */
export function memoryChart(report: Report): Chart {
  const series = memorySeries(report);
  const strategies = series.map((p) => p.strategy);
  const axis = byteAxis(Math.max(1, ...series.map((p) => p.total)));
  const option: echarts.EChartsCoreOption = {
    legend: { top: 0 },
    grid: { left: 80, right: 24, top: 40, bottom: 48 },
    xAxis: { type: 'category', data: strategies, axisLabel: { interval: 0 } },
    yAxis: { type: 'value', name: 'cache memory, all adapters', min: 0, max: axis.max, interval: axis.interval, axisLabel: { formatter: (v: number) => formatBytesTick(v) } },
    series: [
      { type: 'bar', name: 'shared base cache', stack: 'total', data: series.map((p) => (p.strategy === 'exact' ? 0 : report.memory.baseCacheBytes)), itemStyle: { color: BASE_COLOR }, barMaxWidth: 48 },
      ...report.adapters.map((a, ai) => ({
        type: 'bar',
        name: a.name,
        stack: 'total',
        data: series.map((p) => p.perAdapter[ai] ?? 0),
        itemStyle: { color: adapterColor(ai) },
        barMaxWidth: 48,
      })),
    ],
  };
  return { title: "Cache memory per strategy: shared base cache + each adapter's store", svg: renderSvg('al-memory', option, WIDTH, 340) };
}

/** The smallest positive value of a log axis: exact's KL of 0 is drawn there. */
export function logFloor(values: readonly number[]): number {
  const positive = values.filter((v) => Number.isFinite(v) && v > 0);
  if (positive.length === 0) return 1e-6;
  return Math.min(...positive) / 10;
}

/**
 * Cost against quality, as in the app: one point per (adapter, strategy), coloured by
 * strategy, shaped by adapter; bytes on x, `metric` on a log y axis (KL spans decades).
 */
export function qualityChart(report: Report, metric: 'meanKl' | 'meanVRelErr'): Chart {
  const points = qualityPoints(report);
  const yName = metric === 'meanKl' ? 'mean KL vs exact (nats, log)' : 'mean V relative error (log)';
  const floor = logFloor(points.map((p) => p[metric]));
  const strategies = orderStrategies(report.settings.strategies);
  const adapterIndex = new Map(report.adapters.map((a, i) => [a.name, i]));
  const axis = byteAxis(Math.max(1, ...points.map((p) => p.bytes)));
  const option: echarts.EChartsCoreOption = {
    legend: { top: 0 },
    grid: { left: 80, right: 60, top: 40, bottom: 56 },
    xAxis: { type: 'value', name: 'store bytes per adapter', nameLocation: 'middle', nameGap: 30, min: 0, max: axis.max, interval: axis.interval, axisLabel: { formatter: (v: number) => formatBytesTick(v) } },
    yAxis: { type: 'log', name: yName, min: floor, axisLabel: { formatter: (v: number) => (v <= floor * 1.0001 ? '0' : String(Number(v.toPrecision(2)))) } },
    series: strategies.map((st) => ({
      type: 'scatter',
      name: st,
      symbolSize: 10,
      itemStyle: { color: strategyColor(st, report.settings.strategies) },
      label: { show: true, position: 'right', fontSize: 9, formatter: (p: { data: { value: [number, number, string] } }) => p.data.value[2] },
      data: points
        .filter((p) => p.strategy === st)
        .map((p) => ({ value: [p.bytes, Number.isFinite(p[metric]) ? Math.max(floor, p[metric]) : null, p.adapter], symbol: adapterSymbol(adapterIndex.get(p.adapter) ?? 0) })),
    })),
  };
  const title = metric === 'meanKl' ? 'Quality: mean KL against memory' : 'Quality: mean V error against memory';
  return { title, svg: renderSvg(`al-quality-${metric}`, option, WIDTH, 360) };
}

/**
 * One adapter's K or V relative error by layer × strategy, as in the app: layers are
 * rows (layer 0 at the bottom), strategies columns, viridis from 0; values printed in the cells.
 */
export function layerHeatmap(report: Report, adapter: AdapterResult, which: 'k' | 'v', index = report.adapters.indexOf(adapter)): Chart {
  const strategies = adapter.strategies.map((s) => s.strategy);
  const layers = Array.from({ length: report.model.numLayers }, (_, i) => `L${i}`);
  const data: [number, number, number | null][] = [];
  let max = 0;
  for (const [si, s] of adapter.strategies.entries()) {
    for (const l of s.layers) {
      const v = which === 'k' ? l.kRelErr : l.vRelErr;
      if (Number.isFinite(v)) max = Math.max(max, v);
      data.push([si, l.layer, Number.isFinite(v) ? v : null]);
    }
  }
  const showValues = strategies.length <= 12 && layers.length <= 40;
  const rowPx = Math.max(14, Math.min(26, Math.floor(520 / Math.max(1, layers.length))));
  const option: echarts.EChartsCoreOption = {
    grid: { left: 50, right: 24, top: 16, bottom: 90 },
    xAxis: { type: 'category', name: 'strategy', nameLocation: 'middle', nameGap: 40, data: strategies, axisLabel: { interval: 0, rotate: strategies.length > 6 ? 30 : 0 }, splitArea: { show: true } },
    yAxis: { type: 'category', name: 'layer', data: layers, splitArea: { show: true } },
    visualMap: {
      min: 0,
      // A scale of at least 1e-6 keeps an all-zero map (exact only) drawable.
      max: Math.max(max, 1e-6),
      calculable: false,
      orient: 'horizontal',
      left: 'center',
      bottom: 0,
      itemWidth: 12,
      itemHeight: 200,
      text: [max.toPrecision(3), '0'],
      inRange: { color: [...VIRIDIS] },
    },
    series: [{ type: 'heatmap', data, label: { show: showValues, fontSize: 9, color: '#fff', formatter: (p: { data: [number, number, number | null] }) => (p.data[2] === null ? '' : p.data[2].toFixed(3)) } }],
  };
  const label = which === 'k' ? 'K' : 'V';
  return { title: `${adapter.name}: ${label} relative error by layer × strategy`, svg: renderSvg(`al-heat-${index}-${which}`, option, WIDTH, 120 + rowPx * layers.length) };
}

/**
 * One adapter's frontier (frontierRows): bytes against mean KL (log) for every strategy and
 * every budget point of its fit, the Pareto front as a dashed line through ringed points.
 */
export function frontierChart(report: Report, adapter: AdapterResult, index = report.adapters.indexOf(adapter)): Chart {
  const rows = frontierRows(report).filter((r) => r.adapter === adapter.name);
  const floor = logFloor(rows.map((r) => r.meanKl));
  const axis = byteAxis(Math.max(1, ...rows.map((r) => r.bytes)));
  const y = (v: number): number | null => (Number.isFinite(v) ? Math.max(floor, v) : null);
  const front = rows.filter((r) => r.pareto).sort((a, b) => a.bytes - b.bytes);
  const option: echarts.EChartsCoreOption = {
    legend: { top: 0 },
    grid: { left: 80, right: 60, top: 40, bottom: 56 },
    xAxis: { type: 'value', name: 'store bytes per adapter', nameLocation: 'middle', nameGap: 30, min: 0, max: axis.max, interval: axis.interval, axisLabel: { formatter: (v: number) => formatBytesTick(v) } },
    yAxis: { type: 'log', name: 'mean KL vs exact (nats, log)', min: floor, axisLabel: { formatter: (v: number) => (v <= floor * 1.0001 ? '0' : String(Number(v.toPrecision(2)))) } },
    series: [
      { type: 'line', name: 'Pareto front', data: front.map((r) => [r.bytes, y(r.meanKl)]), showSymbol: false, lineStyle: { type: 'dashed', width: 1, color: '#57606a' } },
      {
        type: 'scatter',
        name: 'strategies',
        symbolSize: 10,
        itemStyle: { color: '#0969da' },
        label: { show: true, position: 'right', fontSize: 9, formatter: (p: { data: { name: string } }) => p.data.name },
        data: rows.filter((r) => r.kind === 'strategy').map((r) => ({ name: r.strategy, value: [r.bytes, y(r.meanKl)], itemStyle: r.pareto ? { borderColor: '#1b1f24', borderWidth: 2 } : {} })),
      },
      {
        type: 'scatter',
        name: 'fit budget points',
        symbol: 'diamond',
        symbolSize: 9,
        itemStyle: { color: '#bf8700' },
        data: rows.filter((r) => r.kind === 'budget point').map((r) => ({ name: r.strategy, value: [r.bytes, y(r.meanKl)], itemStyle: r.pareto ? { borderColor: '#1b1f24', borderWidth: 2 } : {} })),
      },
    ],
  };
  return { title: `${adapter.name}: quality/bytes frontier (mean KL against store bytes; ringed: Pareto front)`, svg: renderSvg(`al-frontier-${index}`, option, WIDTH, 360) };
}

/** Every chart of the HTML report, in reading order. */
export function reportCharts(report: Report): { overview: Chart[]; perAdapter: Chart[][] } {
  // A single point (one adapter, exact only) is no comparison: no quality charts then.
  const overview = [memoryChart(report), ...(summaryRows(report).length > 1 ? [qualityChart(report, 'meanKl'), qualityChart(report, 'meanVRelErr')] : [])];
  // Indexed like report.adapters (names are unique in a run, but a hand-edited file may repeat one).
  const perAdapter = report.adapters.map((a, i) => [
    ...(a.strategies.length > 1 ? [frontierChart(report, a, i)] : []),
    layerHeatmap(report, a, 'v', i),
    layerHeatmap(report, a, 'k', i),
  ]);
  return { overview, perAdapter };
}
