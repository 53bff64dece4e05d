// Quality against memory: a point per (adapter, strategy), bytes vs mean KL or top-1.
import { useMemo } from 'react';
import type { Report } from '../../../shared/report.js';
import { EChart } from '../charts/EChart.js';
import type { ChartOption } from '../charts/echarts.js';
import { formatBytes, percent, sig3 } from '../logic/format.js';
import { METRIC_LABELS, paretoFront, scatterPoints, type QualityMetric } from '../logic/scatter.js';
import { ADAPTER_SYMBOLS, orderStrategies, strategyColor } from '../logic/strategy-order.js';
import { useResults } from '../store/results.js';

interface ScatterTooltip {
  data?: { name?: string; value?: [number, number] };
}

function fmt(metric: QualityMetric, v: number): string {
  return metric === 'top1Agreement' ? percent(v) : sig3(v);
}

export function QualityScatter({ report }: { report: Report }): React.JSX.Element {
  const metric = useResults((s) => s.metric);
  const setMetric = useResults((s) => s.setMetric);
  const points = useMemo(() => scatterPoints(report, metric), [report, metric]);
  const front = useMemo(() => new Set(paretoFront(points, metric)), [points, metric]);
  const strategies = orderStrategies(report.settings.strategies);

  const option = useMemo<ChartOption>(
    () => ({
      animation: false,
      grid: { left: 70, right: 24, top: 34, bottom: 44 },
      legend: { top: 0, type: 'scroll', textStyle: { fontSize: 11 } },
      tooltip: {
        trigger: 'item',
        formatter: (raw: unknown) => {
          const p = raw as ScatterTooltip;
          const [b = 0, v = 0] = p.data?.value ?? [];
          return `${p.data?.name ?? ''}<br/>${formatBytes(b)} · ${METRIC_LABELS[metric]} ${fmt(metric, v)}`;
        },
      },
      xAxis: { type: 'value', name: 'bytes stored per adapter', nameLocation: 'middle', nameGap: 26, axisLabel: { formatter: (v: number) => formatBytes(v), fontSize: 10 }, scale: false },
      yAxis: {
        type: 'value',
        name: METRIC_LABELS[metric],
        nameLocation: 'middle',
        nameGap: 48,
        axisLabel: { fontSize: 10, formatter: (v: number) => fmt(metric, v) },
        ...(metric === 'top1Agreement' ? { min: 0, max: 1 } : {}),
      },
      series: strategies.map((st) => ({
        type: 'scatter' as const,
        name: st,
        symbolSize: 11,
        itemStyle: { color: strategyColor(st, report.settings.strategies), borderColor: '#fff', borderWidth: 1, opacity: 0.9 },
        data: points
          .filter((p) => p.strategy === st)
          .map((p) => ({ name: `${p.adapterName} · ${p.strategy}`, value: [p.bytes, p.value] as [number, number], symbol: ADAPTER_SYMBOLS[p.adapter % ADAPTER_SYMBOLS.length] })),
      })),
    }),
    [points, metric, strategies, report.settings.strategies],
  );

  return (
    <div className="quality">
      <div className="toolbar">
        <div className="seg" role="radiogroup" aria-label="Quality metric">
          {(Object.keys(METRIC_LABELS) as QualityMetric[]).map((m) => (
            <label key={m} className={metric === m ? 'on' : ''}>
              <input type="radio" name="metric" checked={metric === m} onChange={() => setMetric(m)} />
              {METRIC_LABELS[m]}
            </label>
          ))}
        </div>
        <span className="muted small">
          Shapes: {report.adapters.map((a, i) => `${a.name} ${ADAPTER_SYMBOLS[i % ADAPTER_SYMBOLS.length]}`).join(', ')}
        </span>
      </div>
      <div className="two-col wide-left">
        <figure className="panel" data-testid="quality-scatter">
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
                <th scope="col" title="No other point is both smaller and better">Pareto</th>
              </tr>
            </thead>
            <tbody>
              {points.map((p) => (
                <tr key={`${p.adapter}-${p.strategy}`}>
                  <td>{p.adapterName}</td>
                  <td>
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
