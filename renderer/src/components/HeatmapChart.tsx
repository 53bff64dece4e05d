// One heatmap (rows = layers) on a given colour domain, with its numbers in a
// visually hidden table for screen readers and tests.
import { useMemo } from 'react';
import { EChart } from '../charts/EChart.js';
import type { ChartOption } from '../charts/echarts.js';
import { sig3 } from '../logic/format.js';
import { heatmapData, VIRIDIS, type HeatmapMatrix } from '../logic/heatmap.js';

interface Props {
  matrix: HeatmapMatrix;
  domain: [number, number];
  title: string;
  xName: string;
  testId: string;
  onSelect?(row: number, column: number, value: number): void;
  /** Fixed chart height; default grows with the number of rows. */
  height?: number;
}

interface TooltipParams {
  value?: unknown;
}

export function HeatmapChart({ matrix, domain, title, xName, testId, onSelect, height }: Props): React.JSX.Element {
  const option = useMemo<ChartOption>(
    () => ({
      animation: false,
      aria: { enabled: false },
      grid: { left: 40, right: 8, top: 6, bottom: 34 },
      tooltip: {
        trigger: 'item',
        confine: true,
        formatter: (raw: unknown) => {
          const p = raw as TooltipParams;
          const v = Array.isArray(p.value) ? (p.value as number[]) : [];
          const [c = 0, r = 0, val = Number.NaN] = v;
          return `${matrix.rows[r] ?? ''} · ${xName} ${matrix.columns[c] ?? ''}<br/><b>${sig3(val)}</b>`;
        },
      },
      xAxis: {
        type: 'category',
        data: matrix.columns,
        name: xName,
        nameLocation: 'middle',
        nameGap: 20,
        axisLabel: { fontSize: 10, hideOverlap: true },
        axisTick: { show: false },
        splitArea: { show: false },
      },
      yAxis: { type: 'category', data: matrix.rows, axisLabel: { fontSize: 10 }, axisTick: { show: false } },
      visualMap: { show: false, min: domain[0], max: domain[1], calculable: false, inRange: { color: VIRIDIS }, dimension: 2 },
      series: [{ type: 'heatmap', data: heatmapData(matrix), progressive: 0, emphasis: { itemStyle: { borderColor: '#e4572e', borderWidth: 1 } } }],
    }),
    [matrix, domain, xName],
  );
  const h = height ?? Math.max(120, Math.min(420, matrix.rows.length * 16 + 44));
  return (
    <figure className="heatmap" data-testid={testId} data-rows={matrix.rows.length} data-columns={matrix.columns.length}>
      <figcaption>{title}</figcaption>
      <EChart
        option={option}
        height={h}
        label={`${title}: ${matrix.rows.length} layers × ${matrix.columns.length} ${xName}; numbers in the table that follows`}
        onClick={(e) => {
          const v = Array.isArray(e.value) ? (e.value as number[]) : [];
          if (v.length >= 3) onSelect?.(v[1] ?? 0, v[0] ?? 0, v[2] ?? Number.NaN);
        }}
      />
      <table className="sr-only" data-testid={`${testId}-data`}>
        <caption>{title}</caption>
        <thead>
          <tr>
            <th scope="col">layer</th>
            {matrix.columns.map((c) => (
              <th key={c} scope="col">
                {c}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {matrix.values.map((row, r) => (
            <tr key={matrix.rows[r]} data-layer={r}>
              <th scope="row">{matrix.rows[r]}</th>
              {row.map((v, c) => (
                <td key={c} data-value={v}>
                  {sig3(v)}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </figure>
  );
}
