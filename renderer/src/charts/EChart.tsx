/** @jsxRuntime automatic @jsxImportSource react */
// (The pragma lets the node unit tests render this file: tsx there uses the root tsconfig, which has no JSX settings.)
// A small React wrapper around an echarts instance: init on mount, setOption on
// change, resize with its box, dispose on unmount.
import { useEffect, useRef } from 'react';
import { echarts, type ChartOption } from './echarts.js';

export interface ChartClick {
  seriesIndex: number;
  dataIndex: number;
  value: unknown;
  seriesName: string;
}

interface Props {
  option: ChartOption;
  height: number;
  /** Accessible name of the chart canvas (the data itself is in a table beside it). */
  label: string;
  onClick?: (e: ChartClick) => void;
  /** The visible share of a zoomed axis changed (percent of the data, 0–100). */
  onZoom?: (startPct: number, endPct: number) => void;
  testId?: string;
}

interface DataZoomEvent {
  start?: number;
  end?: number;
  batch?: { start?: number; end?: number }[];
}

interface EchartsClickParams {
  seriesIndex?: number;
  dataIndex?: number;
  value?: unknown;
  seriesName?: string;
}

export function EChart({ option, height, label, onClick, onZoom, testId }: Props): React.JSX.Element {
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<echarts.ECharts | null>(null);
  const clickRef = useRef(onClick);
  clickRef.current = onClick;
  const zoomRef = useRef(onZoom);
  zoomRef.current = onZoom;

  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    const c = echarts.init(el, undefined, { renderer: 'canvas' });
    chart.current = c;
    c.on('click', (raw) => {
      const p = raw as EchartsClickParams;
      clickRef.current?.({ seriesIndex: p.seriesIndex ?? 0, dataIndex: p.dataIndex ?? 0, value: p.value, seriesName: p.seriesName ?? '' });
    });
    c.on('datazoom', (raw) => {
      const e = raw as DataZoomEvent;
      const z = e.batch?.[0] ?? e;
      if (typeof z.start === 'number' && typeof z.end === 'number') zoomRef.current?.(z.start, z.end);
    });
    const ro = new ResizeObserver(() => c.resize());
    ro.observe(el);
    return () => {
      ro.disconnect();
      c.dispose();
      chart.current = null;
    };
  }, []);

  useEffect(() => {
    chart.current?.setOption(option, { notMerge: true, lazyUpdate: true });
  }, [option]);
  useEffect(() => {
    chart.current?.resize();
  }, [height]);

  return <div ref={box} className="chart" style={{ height }} role="img" aria-label={label} data-testid={testId} />;
}
