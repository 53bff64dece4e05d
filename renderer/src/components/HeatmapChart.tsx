// One heatmap (rows = layers, layer 0 at the bottom) on a given colour domain, with its
// numbers in a visually hidden table for screen readers and tests. Token grids can be
// zoomed along the token axis (wheel, drag, or the slider); once few enough columns are
// in view, the axis shows the document's text instead of token positions.
import { useMemo, useRef, useState } from 'react';
import { EChart } from '../charts/EChart.js';
import type { ChartOption } from '../charts/echarts.js';
import { sig3 } from '../logic/format.js';
import { colourDomain, colourMatrix, heatmapHeight, VIRIDIS, type HeatmapMatrix } from '../logic/heatmap.js';
import { escapeHtml } from '../../../shared/escape-html.js';

interface Props {
  matrix: HeatmapMatrix;
  /** The colour domain in values (a log scale draws log10 of them). */
  domain: [number, number];
  log?: boolean;
  title: string;
  xName: string;
  testId: string;
  onSelect?(row: number, column: number, value: number): void;
  /** Text of each column's tokens (token grids), for hover and the zoomed axis. */
  columnText?: string[] | null;
  /** Zoom and brush along the columns (token grids). */
  zoomable?: boolean;
  /** Label every column (the layer × strategy summary), rotated when they crowd. */
  labelEvery?: boolean;
}

interface TooltipParams {
  value?: unknown;
}

/** Columns in view at most for the axis to show text instead of positions. */
const TEXT_LABEL_COLUMNS = 24;

function shortText(t: string, max = 10): string {
  const flat = t.replace(/\s+/g, ' ');
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

export function HeatmapChart({ matrix, domain, log = false, title, xName, testId, onSelect, columnText = null, zoomable = false, labelEvery = false }: Props): React.JSX.Element {
  const [zoom, setZoom] = useState<[number, number]>([0, 100]);
  const cols = matrix.columns.length;
  const inView = Math.max(1, Math.round(((zoom[1] - zoom[0]) / 100) * cols));
  const textAxis = Boolean(columnText) && inView <= TEXT_LABEL_COLUMNS;
  // The option starts the zoom where it is now, but is not rebuilt on every zoom event (a
  // rebuild replaces every cell and the zoom controls mid-drag): only when the axis switches
  // between index ranges and token text.
  const zoomNow = useRef(zoom);
  zoomNow.current = zoom;
  const option = useMemo<ChartOption>(() => {
    const drawn = colourMatrix(matrix, log, domain[0]);
    const data: [number, number, number, number][] = [];
    drawn.values.forEach((row, r) =>
      row.forEach((v, c) => {
        if (Number.isFinite(v)) data.push([c, r, v, matrix.values[r]?.[c] ?? Number.NaN]);
      }),
    );
    const [lo, hi] = colourDomain(domain, log);
    return {
      animation: false,
      aria: { enabled: false },
      grid: { left: 40, right: 8, top: 6, bottom: zoomable ? 56 : labelEvery && cols > 4 ? 56 : 34 },
      tooltip: {
        trigger: 'item',
        confine: true,
        formatter: (raw: unknown) => {
          const p = raw as TooltipParams;
          const v = Array.isArray(p.value) ? (p.value as number[]) : [];
          const [c = 0, r = 0, , val = Number.NaN] = v;
          const text = columnText?.[c];
          const where = escapeHtml(`${matrix.rows[r] ?? ''} · ${xName} ${matrix.columns[c] ?? ''}`);
          // Token text is user text: escaped before it goes into the tooltip's HTML.
          const safe = text ? `<br/>“${escapeHtml(text)}”` : '';
          return `${where}${safe}<br/><b>${sig3(val)}</b>`;
        },
      },
      xAxis: {
        type: 'category',
        data: matrix.columns,
        name: xName,
        nameLocation: 'middle',
        nameGap: labelEvery && cols > 4 ? 40 : 20,
        axisLabel: {
          fontSize: 10,
          ...(labelEvery ? { interval: 0, rotate: cols > 4 ? 30 : 0 } : { hideOverlap: true }),
          ...(textAxis ? { interval: 0, rotate: 30, formatter: (_v: string, i: number) => shortText(columnText?.[i] ?? matrix.columns[i] ?? '') } : {}),
        },
        axisTick: { show: false },
        splitArea: { show: false },
      },
      yAxis: { type: 'category', data: matrix.rows, axisLabel: { fontSize: 10 }, axisTick: { show: false } },
      visualMap: { show: false, min: lo, max: hi, calculable: false, inRange: { color: [...VIRIDIS] }, dimension: 2 },
      ...(zoomable
        ? {
            dataZoom: [
              { type: 'inside' as const, xAxisIndex: 0, start: zoomNow.current[0], end: zoomNow.current[1], minValueSpan: 4 },
              { type: 'slider' as const, xAxisIndex: 0, start: zoomNow.current[0], end: zoomNow.current[1], height: 14, bottom: 4, showDetail: false, brushSelect: true },
            ],
          }
        : {}),
      series: [{ type: 'heatmap', data, progressive: 0, emphasis: { itemStyle: { borderColor: '#e4572e', borderWidth: 1 } } }],
    };
  }, [matrix, domain, log, xName, columnText, zoomable, labelEvery, cols, textAxis]);
  const h = heatmapHeight(matrix.rows.length, zoomable ? 78 : labelEvery && cols > 4 ? 78 : 56);
  return (
    <figure className="heatmap" data-testid={testId} data-rows={matrix.rows.length} data-columns={cols} data-height={h} data-text-axis={textAxis} data-label-every={labelEvery} data-zoom={`${Math.round(zoom[0])}-${Math.round(zoom[1])}`}>
      <figcaption>{title}</figcaption>
      <EChart
        option={option}
        height={h}
        label={`${title}: ${matrix.rows.length} layers × ${cols} ${xName}; numbers in the table that follows`}
        onClick={(e) => {
          const v = Array.isArray(e.value) ? (e.value as number[]) : [];
          if (v.length >= 4) onSelect?.(v[1] ?? 0, v[0] ?? 0, v[3] ?? Number.NaN);
        }}
        onZoom={(start, end) => setZoom([start, end])}
      />
      <table className="sr-only" data-testid={`${testId}-data`}>
        <caption>{title}</caption>
        <thead>
          <tr>
            <th scope="col">layer</th>
            {matrix.columns.map((c, i) => (
              <th key={c} scope="col" data-text={columnText?.[i]}>
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
