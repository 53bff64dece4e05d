/** @jsxRuntime automatic @jsxImportSource react */
// (The pragma lets the node unit tests render this file: tsx there uses the root tsconfig, which has no JSX settings.)
// Quality against memory: a point per (adapter, strategy), bytes against mean KL, top-1
// or the perplexity ratio. KL and the ratio span decades, so their axis is logarithmic;
// each adapter's Pareto front is drawn and marked on its own; markers that would cover
// each other are set side by side.
import { useMemo } from 'react';
import type { Report } from '../../../shared/report.js';
import { EChart } from '../charts/EChart.js';
import type { ChartOption } from '../charts/echarts.js';
import { formatBytes, percent, sig3 } from '../logic/format.js';
import { byteAxis, formatBytesTick } from '../../../shared/format.js';
import { logFloor, METRIC_LABELS, overlapOffsets, paretoFront, plotted, scatterPoints, usesLogAxis, type QualityMetric } from '../logic/scatter.js';
import { ADAPTER_SYMBOLS, orderStrategies, strategyColor } from '../logic/strategy-order.js';
import { useResults } from '../store/results.js';
import { Help } from './Help.js';
import { scatterTooltip, type ScatterTooltip } from '../logic/chart-tooltips.js';

function fmt(metric: QualityMetric, v: number): string {
  return metric === 'top1Agreement' ? percent(v) : sig3(v);
}

const TOPIC = { meanKl: 'kl', top1Agreement: 'top1', perplexityRatio: 'pplRatio' } as const;

export function QualityScatter({ report }: { report: Report }): React.JSX.Element {
  const metric = useResults((s) => s.metric);
  const setMetric = useResults((s) => s.setMetric);
  const points = useMemo(() => scatterPoints(report, metric), [report, metric]);
  const front = useMemo(() => new Set(paretoFront(points, metric)), [points, metric]);
  const strategies = useMemo(() => orderStrategies(report.settings.strategies), [report]);

  const option = useMemo<ChartOption>(() => {
    const log = usesLogAxis(metric);
    const floor = logFloor(points.map((p) => p.value));
    const offsets = overlapOffsets(points, metric);
    const xAxis = byteAxis(Math.max(1, ...points.map((p) => p.bytes)));
    const fronts = report.adapters.map((a, ai) =>
      points
        .filter((p) => p.adapter === ai && front.has(p))
        .sort((x, y) => x.bytes - y.bytes)
        .map((p) => [p.bytes, plotted(metric, p.value, floor)] as [number, number | null]),
    );
    return {
      animation: false,
      grid: { left: 70, right: 24, top: 34, bottom: 44 },
      legend: { top: 0, type: 'scroll', textStyle: { fontSize: 11 }, data: strategies },
      tooltip: {
        trigger: 'item',
        formatter: (raw: unknown) => scatterTooltip(raw as ScatterTooltip, `${METRIC_LABELS[metric]} ${fmt(metric, (raw as ScatterTooltip).data?.raw ?? Number.NaN)}`),
      },
      xAxis: { type: 'value', name: 'bytes stored per adapter', nameLocation: 'middle', nameGap: 26, min: 0, max: xAxis.max, interval: xAxis.interval, axisLabel: { formatter: (v: number) => formatBytesTick(v), fontSize: 10 } },
      yAxis: log
        ? {
            type: 'log',
            name: `${METRIC_LABELS[metric]}, log`,
            nameLocation: 'middle',
            nameGap: 48,
            min: floor,
            axisLabel: { fontSize: 10, formatter: (v: number) => (v <= floor * 1.0001 && metric === 'meanKl' ? '0' : sig3(v)) },
          }
        : { type: 'value', name: METRIC_LABELS[metric], nameLocation: 'middle', nameGap: 48, min: 0, max: 1, axisLabel: { fontSize: 10, formatter: (v: number) => fmt(metric, v) } },
      series: [
        // Each adapter's Pareto front, dashed, under the markers.
        ...fronts.map((data, ai) => ({
          type: 'line' as const,
          name: `Pareto front · ${report.adapters[ai]?.name ?? ''}`,
          data,
          showSymbol: false,
          silent: true,
          z: 1,
          lineStyle: { type: 'dashed' as const, width: 1, color: '#8c959f' },
          tooltip: { show: false },
        })),
        ...strategies.map((st) => ({
          type: 'scatter' as const,
          name: st,
          symbolSize: 11,
          z: 3,
          itemStyle: { color: strategyColor(st, report.settings.strategies), borderColor: '#fff', borderWidth: 1, opacity: 0.85 },
          data: points
            .filter((p) => p.strategy === st)
            .map((p) => ({
              name: `${p.adapterName} · ${p.strategy}${front.has(p) ? ' · Pareto' : ''}`,
              raw: p.value,
              value: [p.bytes, plotted(metric, p.value, floor)] as [number, number | null],
              symbol: ADAPTER_SYMBOLS[p.adapter % ADAPTER_SYMBOLS.length],
              symbolOffset: [offsets.get(p) ?? 0, 0],
              // A Pareto point has a dark ring.
              itemStyle: front.has(p) ? { borderColor: '#1b1f24', borderWidth: 2 } : {},
            })),
        })),
        // Every budget point the fits measured: hollow diamonds, ringed on the front.
        {
          type: 'scatter' as const,
          name: 'fit budget points',
          symbol: 'diamond',
          symbolSize: 9,
          z: 2,
          itemStyle: { color: '#fff', borderColor: '#bf8700', borderWidth: 1.5 },
          data: points
            .filter((p) => p.budgetPoint)
            .map((p) => ({
              name: `${p.adapterName} · budget point ${p.strategy.split('@')[0]}${front.has(p) ? ' · Pareto' : ''}`,
              raw: p.value,
              value: [p.bytes, plotted(metric, p.value, floor)] as [number, number | null],
              itemStyle: front.has(p) ? { borderColor: '#1b1f24', borderWidth: 2 } : {},
            })),
        },
      ],
    };
  }, [points, metric, strategies, report.settings.strategies, report.adapters, front]);

  return (
    <div className="quality">
      <div className="toolbar">
        <div className="seg" role="radiogroup" aria-label="Quality metric">
          {(Object.keys(METRIC_LABELS) as QualityMetric[]).map((m) => (
            <label key={m} className={metric === m ? 'on' : ''}>
              <input type="radio" name="metric" checked={metric === m} onChange={() => setMetric(m)} data-testid={`metric-${m}`} />
              {METRIC_LABELS[m]}
            </label>
          ))}
        </div>
        <Help topic={TOPIC[metric]} />
        <span className="muted small">
          Shapes: {report.adapters.map((a, i) => `${a.name} ${ADAPTER_SYMBOLS[i % ADAPTER_SYMBOLS.length]}`).join(', ')} · dark ring and dashed line: each adapter's Pareto front <Help topic="pareto" />
        </span>
      </div>
      <div className="two-col wide-left">
        <figure className="panel" data-testid="quality-scatter" data-axis={usesLogAxis(metric) ? 'log' : 'linear'}>
          <figcaption>Quality against memory (teacher-forced on exact's continuation)</figcaption>
          <EChart option={option} height={360} label="Scatter of bytes against quality per adapter and strategy; numbers in the table beside" />
        </figure>
        <div className="panel table-scroll">
          <table className="dense numbers" data-testid="quality-table">
            <thead>
              <tr>
                <th scope="col">adapter</th>
                <th scope="col">strategy</th>
                <th scope="col">bytes</th>
                <th scope="col">{metric === 'meanKl' ? 'mean KL' : metric === 'top1Agreement' ? 'top-1' : 'ppl ratio'}</th>
                <th scope="col" title="On its adapter's Pareto front: no other strategy of that adapter stores fewer bytes and is at least as close to exact">
                  Pareto
                </th>
              </tr>
            </thead>
            <tbody>
              {points.map((p) => (
                <tr key={`${p.adapter}-${p.budgetPoint ? 'point-' : ''}${p.strategy}`} data-testid={`quality-row-${p.adapterName}-${p.budgetPoint ? 'point-' : ''}${p.strategy}`} data-pareto={front.has(p)}>
                  <td>{p.adapterName}</td>
                  <td>
                    {p.budgetPoint && <span className="muted">budget point </span>}
                    <code>{p.strategy}</code>
                  </td>
                  <td data-bytes={p.bytes}>{formatBytes(p.bytes)}</td>
                  <td>{fmt(metric, p.value)}</td>
                  <td>{front.has(p) ? '●' : ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </div>
    </div>
  );
}
