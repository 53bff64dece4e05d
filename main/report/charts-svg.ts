// The report's charts as SVG strings, rendered by echarts on the Node side (server-side
// rendering: no DOM, no canvas, no script in the result). The HTML report inlines them,
// so a chart needs neither JavaScript nor the network to show, and prints to PDF as is.
// echarts escapes every text it writes into the SVG (names, axis labels).
import * as echarts from 'echarts';
import { formatBytes } from '../../shared/format.js';
import type { AdapterResult, Report } from '../../shared/report.js';
import { memorySeries, qualityPoints, summaryRows } from '../../shared/report-views.js';
import { xmlSafeText } from './escape.js';

export interface Chart {
  title: string;
  svg: string;
}

const WIDTH = 760;

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
  const chart = echarts.init(null, null, { renderer: 'svg', ssr: true, width, height });
  try {
    chart.setOption({ animation: false, textStyle: { fontFamily: 'sans-serif' }, ...option });
    // echarts escapes markup in names and labels but passes control characters through.
    return xmlSafeText(renameIds(chart.renderToSVGString(), key));
  } finally {
    chart.dispose();
  }
}

/** Store bytes of every strategy per adapter, with the shared base cache (held once) as a line. */
export function memoryChart(report: Report): Chart {
  const series = memorySeries(report);
  const option: echarts.EChartsCoreOption = {
    legend: { top: 0 },
    grid: { left: 80, right: 24, top: 40, bottom: 48 },
    xAxis: { type: 'category', data: series.map((p) => p.strategy), axisLabel: { interval: 0 } },
    yAxis: { type: 'value', name: 'bytes per adapter', axisLabel: { formatter: (v: number) => formatBytes(v) } },
    series: report.adapters.map((a, ai) => ({
      type: 'bar',
      name: a.name,
      data: series.map((p) => p.perAdapter[ai] ?? null),
      ...(ai === 0
        ? {
            markLine: {
              symbol: 'none',
              label: { formatter: `shared base cache (held once): ${formatBytes(report.memory.baseCacheBytes)}`, position: 'insideEndTop' },
              data: [{ yAxis: report.memory.baseCacheBytes }],
            },
          }
        : {}),
    })),
  };
  return { title: 'Memory: what each strategy stores per adapter', svg: renderSvg('al-memory', option, WIDTH, 340) };
}

/** Cost against quality: one point per (adapter, strategy), bytes on x, `metric` on y. */
export function qualityChart(report: Report, metric: 'meanKl' | 'meanVRelErr'): Chart {
  const points = qualityPoints(report);
  const yName = metric === 'meanKl' ? 'mean KL vs exact (nats)' : 'mean V relative error';
  const option: echarts.EChartsCoreOption = {
    legend: { top: 0 },
    grid: { left: 80, right: 40, top: 40, bottom: 56 },
    xAxis: { type: 'value', name: 'store bytes per adapter', nameLocation: 'middle', nameGap: 30, axisLabel: { formatter: (v: number) => formatBytes(v) } },
    yAxis: { type: 'value', name: yName },
    series: report.adapters.map((a) => ({
      type: 'scatter',
      name: a.name,
      symbolSize: 10,
      label: { show: true, position: 'right', fontSize: 10, formatter: (p: { data: [number, number, string] }) => p.data[2] },
      data: points.filter((p) => p.adapter === a.name).map((p) => [p.bytes, Number.isFinite(p[metric]) ? p[metric] : null, p.strategy]),
    })),
  };
  const title = metric === 'meanKl' ? 'Quality: mean KL against memory' : 'Quality: mean V error against memory';
  return { title, svg: renderSvg(`al-quality-${metric}`, option, WIDTH, 360) };
}

/** Strategy × layer heatmap of one adapter's K or V relative error, values printed in the cells. */
export function layerHeatmap(report: Report, adapter: AdapterResult, which: 'k' | 'v', index = report.adapters.indexOf(adapter)): Chart {
  const strategies = adapter.strategies.map((s) => s.strategy);
  const layers = Array.from({ length: report.model.numLayers }, (_, i) => i);
  const data: [number, number, number | null][] = [];
  let max = 0;
  for (const [si, s] of adapter.strategies.entries()) {
    for (const l of s.layers) {
      const v = which === 'k' ? l.kRelErr : l.vRelErr;
      if (Number.isFinite(v)) max = Math.max(max, v);
      data.push([l.layer, si, Number.isFinite(v) ? v : null]);
    }
  }
  const showValues = layers.length <= 24;
  const option: echarts.EChartsCoreOption = {
    grid: { left: 110, right: 24, top: 16, bottom: 84 },
    xAxis: { type: 'category', name: 'layer', nameLocation: 'middle', nameGap: 22, data: layers.map(String), splitArea: { show: true } },
    yAxis: { type: 'category', data: strategies, inverse: true, splitArea: { show: true } },
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
      inRange: { color: ['#f7fbff', '#6baed6', '#08306b'] },
    },
    series: [{ type: 'heatmap', data, label: { show: showValues, fontSize: 9, formatter: (p: { data: [number, number, number | null] }) => (p.data[2] === null ? '' : p.data[2].toFixed(3)) } }],
  };
  const label = which === 'k' ? 'K' : 'V';
  return { title: `${adapter.name}: ${label} relative error per layer`, svg: renderSvg(`al-heat-${index}-${which}`, option, WIDTH, 100 + 26 * strategies.length) };
}

/** Every chart of the HTML report, in reading order. */
export function reportCharts(report: Report): { overview: Chart[]; perAdapter: Chart[][] } {
  // A single point (one adapter, exact only) is no comparison: no quality charts then.
  const overview = [memoryChart(report), ...(summaryRows(report).length > 1 ? [qualityChart(report, 'meanKl'), qualityChart(report, 'meanVRelErr')] : [])];
  // Indexed like report.adapters (names are unique in a run, but a hand-edited file may repeat one).
  const perAdapter = report.adapters.map((a, i) => [layerHeatmap(report, a, 'v', i), layerHeatmap(report, a, 'k', i)]);
  return { overview, perAdapter };
}
