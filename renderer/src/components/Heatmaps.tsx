// Per-layer error heatmaps (layer × token range, layer × head; K or V) with one colour
// scale shared across adapters, and a layer × strategy summary per adapter.
import { useMemo } from 'react';
import type { Report } from '../../../shared/report.js';
import type { StrategyId } from '../../../shared/strategies.js';
import { sig3 } from '../logic/format.js';
import { errorMatrix, heatmapStrategies, sharedDomain, strategyResult, summaryMatrix, type HeatmapMatrix } from '../logic/heatmap.js';
import { useResults } from '../store/results.js';
import { ColorBar } from './ColorBar.js';
import { HeatmapChart } from './HeatmapChart.js';

function slug(s: string): string {
  return s.replace(/[^A-Za-z0-9_-]+/g, '_');
}

function SelectedDetails({ report }: { report: Report }): React.JSX.Element | null {
  const selected = useResults((s) => s.selected);
  const select = useResults((s) => s.select);
  if (!selected) return <p className="muted small">Click a cell to see its numbers.</p>;
  const adapter = report.adapters.find((a) => a.name === selected.adapter);
  return (
    <div className="details" data-testid="heatmap-details" role="status">
      <strong>{selected.chart}</strong> · {selected.adapter} · {selected.row} · {selected.column}: <b>{sig3(selected.value)}</b>
      {selected.extra?.map((x) => (
        <span key={x.label}>
          {' '}
          · {x.label} {x.value}
        </span>
      ))}
      {adapter && (
        <span className="muted">
          {' '}
          (r {adapter.rank}, α {adapter.alpha})
        </span>
      )}
      <button type="button" className="icon" aria-label="Clear selection" onClick={() => select(null)}>
        ×
      </button>
    </div>
  );
}

export function Heatmaps({ report }: { report: Report }): React.JSX.Element {
  const kv = useResults((s) => s.kv);
  const gridKind = useResults((s) => s.gridKind);
  const chosen = useResults((s) => s.heatmapStrategy);
  const setKv = useResults((s) => s.setKv);
  const setGridKind = useResults((s) => s.setGridKind);
  const setStrategy = useResults((s) => s.setHeatmapStrategy);
  const select = useResults((s) => s.select);

  const strategies = heatmapStrategies(report);
  const strategy: StrategyId | undefined = chosen && strategies.includes(chosen) ? chosen : strategies[0];

  const detail = useMemo(() => {
    if (!strategy) return null;
    const ms = report.adapters.map((a) => errorMatrix(report, a, strategy, gridKind, kv));
    return { matrices: ms, domain: sharedDomain(ms.filter((m): m is HeatmapMatrix => m !== null).map((m) => m.values)) };
  }, [report, strategy, gridKind, kv]);

  const summary = useMemo(() => {
    const ms = report.adapters.map((a) => summaryMatrix(report, a, kv));
    return { matrices: ms, domain: sharedDomain(ms.map((m) => m.values)) };
  }, [report, kv]);

  if (!strategy || !detail) {
    return <p className="empty">This run has only the exact strategy: there is no error to map. Add strategies and run again.</p>;
  }
  const kvName = kv.toUpperCase();
  const xName = gridKind === 'tokens' ? 'token' : 'KV head';

  return (
    <div className="heatmaps">
      <div className="toolbar">
        <div className="seg" role="radiogroup" aria-label="K or V">
          {(['k', 'v'] as const).map((k) => (
            <label key={k} className={kv === k ? 'on' : ''}>
              <input type="radio" name="kv" checked={kv === k} onChange={() => setKv(k)} data-testid={`kv-${k}`} />
              {k.toUpperCase()}
            </label>
          ))}
        </div>
        <div className="seg" role="radiogroup" aria-label="Grid">
          {(['tokens', 'heads'] as const).map((g) => (
            <label key={g} className={gridKind === g ? 'on' : ''}>
              <input type="radio" name="gridkind" checked={gridKind === g} onChange={() => setGridKind(g)} data-testid={`grid-${g}`} />
              layer × {g === 'tokens' ? 'token' : 'head'}
            </label>
          ))}
        </div>
        <label>
          Strategy{' '}
          <select value={strategy} onChange={(e) => setStrategy(e.target.value as StrategyId)} data-testid="heatmap-strategy">
            {strategies.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <ColorBar domain={detail.domain} label={`relative ${kvName} error vs exact, one scale for all adapters`} />
      </div>
      <div className="chart-row">
        {report.adapters.map((a, i) => {
          const m = detail.matrices[i];
          if (!m) return null;
          const s = strategyResult(a, strategy);
          return (
            <HeatmapChart
              key={a.name}
              matrix={m}
              domain={detail.domain}
              title={`${a.name} · ${strategy} · ${kvName} error by layer × ${xName}`}
              xName={xName}
              testId={`heatmap-${gridKind}-${slug(a.name)}`}
              onSelect={(r, c, value) => {
                const layer = s?.layers.find((l) => l.layer === r);
                select({
                  chart: `${kvName} error, layer × ${xName}`,
                  adapter: a.name,
                  row: m.rows[r] ?? '',
                  column: `${xName} ${m.columns[c] ?? ''}`,
                  value,
                  extra: layer ? [{ label: `layer K err`, value: sig3(layer.kRelErr) }, { label: `layer V err`, value: sig3(layer.vRelErr) }] : [],
                });
              }}
            />
          );
        })}
      </div>
      <SelectedDetails report={report} />
      <div className="toolbar">
        <h3>Summary: {kvName} error by layer × strategy</h3>
        <ColorBar domain={summary.domain} label="one scale for all adapters" />
      </div>
      <div className="chart-row">
        {report.adapters.map((a, i) => {
          const m = summary.matrices[i];
          if (!m) return null;
          return (
            <HeatmapChart
              key={a.name}
              matrix={m}
              domain={summary.domain}
              title={`${a.name} · ${kvName} error by layer × strategy`}
              xName="strategy"
              testId={`heatmap-summary-${slug(a.name)}`}
              onSelect={(r, c, value) => {
                const id = m.columns[c] as StrategyId | undefined;
                const l = id ? strategyResult(a, id)?.layers.find((x) => x.layer === r) : undefined;
                const extra = l ? [{ label: 'K err', value: sig3(l.kRelErr) }, { label: 'V err', value: sig3(l.vRelErr) }] : [];
                if (l?.outsideSpan !== undefined && l.outsideSpan !== null) extra.push({ label: 'outside span(B_v)', value: sig3(l.outsideSpan) });
                select({ chart: `${kvName} error, layer × strategy`, adapter: a.name, row: m.rows[r] ?? '', column: id ?? '', value, extra });
              }}
            />
          );
        })}
      </div>
    </div>
  );
}
