// Memory: stacked bars (shared base cache + each adapter's store) per strategy against
// exact; total cache memory against the number of adapters, with a budget line.
import { useMemo, useState } from 'react';
import type { Report } from '../../../shared/report.js';
import { EChart } from '../charts/EChart.js';
import type { ChartOption } from '../charts/echarts.js';
import { adapterColor, BASE_COLOR } from '../../../shared/chart-style.js';
import { byteAxis, formatBytesTick, formatShare } from '../../../shared/format.js';
import { METRIC_HELP } from '../../../shared/metric-help.js';
import { count, formatBytes } from '../logic/format.js';
import { adapterCounts, memoryBars, scalingAxisMax, scalingLines, totalFor } from '../logic/memory.js';
import { strategyColor } from '../logic/strategy-order.js';
import { useApp } from '../store/app.js';
import { useResults } from '../store/results.js';
import { Help } from './Help.js';
import { adapterCountTooltip, stackedBytesTooltip, type AxisTooltipItem } from '../logic/chart-tooltips.js';


function BudgetInput(): React.JSX.Element {
  const budget = useResults((s) => s.budgetBytes);
  const setBudget = useResults((s) => s.setBudget);
  const appBudget = useApp((s) => s.info?.cacheBudgetBytes ?? null);
  const value = budget ?? appBudget ?? 8 * 1024 ** 3;
  const [text, setText] = useState(String(Number((value / 1024 ** 2).toFixed(3))));
  return (
    <form
      className="budget"
      onSubmit={(e) => {
        e.preventDefault();
        const mib = Number(text);
        if (Number.isFinite(mib) && mib > 0) setBudget(Math.round(mib * 1024 ** 2));
      }}
    >
      <label htmlFor="budget">Budget (MiB)</label>
      <input id="budget" type="number" min={0} step="any" value={text} onChange={(e) => setText(e.target.value)} data-testid="budget-input" />
      <button type="submit">Apply</button>
      {budget !== null && appBudget !== null && (
        <button
          type="button"
          className="linklike"
          onClick={() => {
            setBudget(null);
            setText(String(Number((appBudget / 1024 ** 2).toFixed(3))));
          }}
        >
          session budget ({formatBytes(appBudget)})
        </button>
      )}
    </form>
  );
}

export function MemoryCharts({ report }: { report: Report }): React.JSX.Element {
  const bars = useMemo(() => memoryBars(report), [report]);
  const budgetSel = useResults((s) => s.budgetBytes);
  const appBudget = useApp((s) => s.info?.cacheBudgetBytes ?? null);
  const budget = budgetSel ?? appBudget ?? 8 * 1024 ** 3;
  const lines = useMemo(() => scalingLines(report, budget), [report, budget]);
  const xMax = scalingAxisMax(lines, report.adapters.length);
  // Memoised: a new axis object on every render would rebuild both charts' options.
  const barAxis = useMemo(() => byteAxis(Math.max(1, ...bars.totals)), [bars]);
  const lineAxis = useMemo(() => byteAxis(Math.max(budget, ...lines.map((l) => totalFor(l, xMax)))), [lines, budget, xMax]);

  const barOption = useMemo<ChartOption>(
    () => ({
      animation: false,
      grid: { left: 70, right: 16, top: 30, bottom: 40 },
      legend: { top: 0, type: 'scroll', textStyle: { fontSize: 11 } },
      tooltip: {
        trigger: 'axis',
        axisPointer: { type: 'shadow' },
        formatter: (raw: unknown) => stackedBytesTooltip(raw as AxisTooltipItem[]),
      },
      xAxis: { type: 'category', data: bars.strategies, axisLabel: { fontSize: 10, interval: 0 } },
      yAxis: { type: 'value', min: 0, max: barAxis.max, interval: barAxis.interval, axisLabel: { formatter: formatBytesTick, fontSize: 10 } },
      series: bars.series.map((s) => ({
        type: 'bar' as const,
        name: s.name,
        stack: 'total',
        data: s.values,
        barMaxWidth: 48,
        itemStyle: { color: s.id === 'base' ? BASE_COLOR : adapterColor(s.id) },
      })),
    }),
    [bars, barAxis],
  );

  const lineOption = useMemo<ChartOption>(
    () => ({
      animation: false,
      grid: { left: 70, right: 90, top: 30, bottom: 40 },
      legend: { top: 0, type: 'scroll', textStyle: { fontSize: 11 } },
      tooltip: {
        trigger: 'axis',
        formatter: (raw: unknown) => adapterCountTooltip(raw as AxisTooltipItem[]),
      },
      // Whole adapters from 1 to a round number that is also the last point drawn.
      xAxis: { type: 'value', name: 'adapters', nameLocation: 'middle', nameGap: 24, min: 1, max: xMax, minInterval: 1, axisLabel: { fontSize: 10 } },
      yAxis: { type: 'value', min: 0, max: lineAxis.max, interval: lineAxis.interval, axisLabel: { formatter: formatBytesTick, fontSize: 10 } },
      series: lines.map((l, i) => ({
        type: 'line' as const,
        name: l.strategy,
        showSymbol: false,
        data: adapterCounts(xMax).map((n) => [n, totalFor(l, n)]),
        lineStyle: { width: 2, type: l.strategy === 'exact' ? ('solid' as const) : i % 2 ? ('dashed' as const) : ('solid' as const) },
        itemStyle: { color: strategyColor(l.strategy, report.settings.strategies) },
        ...(i === 0
          ? {
              markLine: {
                silent: true,
                symbol: 'none',
                lineStyle: { color: '#c62828', type: 'dashed' as const },
                label: { formatter: `budget ${formatBytes(budget)}`, position: 'end' as const, fontSize: 10 },
                data: [{ yAxis: budget }],
              },
            }
          : {}),
      })),
    }),
    [lines, xMax, budget, report.settings.strategies, lineAxis],
  );

  return (
    <div className="memory">
      <div className="two-col">
        <figure className="panel" data-testid="memory-chart">
          <figcaption>
            Cache memory per strategy: shared base cache + each adapter's store <Help topic="storeShare" />
          </figcaption>
          <EChart option={barOption} height={300} label="Stacked bars of cache memory per strategy; numbers in the table below" />
          <div className="table-scroll">
            <table className="dense numbers" data-testid="memory-table">
              <thead>
                <tr>
                  <th scope="col">strategy</th>
                  {bars.series.map((s) => (
                    <th key={String(s.id)} scope="col">
                      {s.name}
                      {s.id !== 'base' && <div className="muted small">{METRIC_HELP.storeShare.label}</div>}
                    </th>
                  ))}
                  <th scope="col">total</th>
                  <th scope="col">
                    {METRIC_HELP.totalShare.label} <Help topic="totalShare" />
                  </th>
                </tr>
              </thead>
              <tbody>
                {bars.strategies.map((st, j) => (
                  <tr key={st}>
                    <th scope="row">
                      <code>{st}</code>
                    </th>
                    {bars.series.map((s) => (
                      <td key={String(s.id)} data-testid={`memory-bytes-${st}-${s.id === 'base' ? 'base' : s.name}`} data-bytes={s.values[j]}>
                        {formatBytes(s.values[j] ?? 0)}
                        {s.id !== 'base' && (
                          <span className="muted small" data-testid={`store-share-${st}-${s.name}`}>
                            {' '}
                            ({formatShare(bars.storeShare[j]?.[s.id])})
                          </span>
                        )}
                      </td>
                    ))}
                    <td data-bytes={bars.totals[j]}>{formatBytes(bars.totals[j] ?? 0)}</td>
                    <td data-testid={`total-share-${st}`} data-share={bars.ratioToExact[j]}>
                      {formatShare(bars.ratioToExact[j])}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </figure>
        <figure className="panel" data-testid="memory-scaling">
          <figcaption>Total cache memory against the number of adapters</figcaption>
          <BudgetInput />
          <EChart option={lineOption} height={260} label="Lines of total cache memory against the number of adapters, with the budget; numbers in the table below" />
          <table className="dense numbers" data-testid="fits-table">
            <thead>
              <tr>
                <th scope="col">strategy</th>
                <th scope="col">fixed</th>
                <th scope="col">per adapter</th>
                <th scope="col">adapters in {formatBytes(budget)}</th>
              </tr>
            </thead>
            <tbody>
              {lines.map((l) => (
                <tr key={l.strategy}>
                  <th scope="row">
                    <code>{l.strategy}</code>
                  </th>
                  <td>{formatBytes(l.fixedBytes)}</td>
                  <td>{formatBytes(l.perAdapterBytes)}</td>
                  <td data-fits={Number.isFinite(l.fits) ? l.fits : 'inf'}>{Number.isFinite(l.fits) ? count(l.fits) : 'unbounded'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </figure>
      </div>
    </div>
  );
}
