// Per-layer error heatmaps (layer × token, layer × head; K or V) and a layer × strategy
// summary per adapter. The colour scale is one for every adapter and, by default, one
// for every strategy too (a good strategy must not look as bad as a poor one on its own
// scale); a log scale shows errors that span decades.
import { useMemo } from 'react';
import type { Report } from '../../../shared/report.js';
import type { StrategyId } from '../../../shared/strategies.js';
import { sig3 } from '../logic/format.js';
import { detailDomain, errorMatrix, heatmapStrategies, logDomain, sharedDomain, strategyResult, summaryMatrix, type HeatmapMatrix } from '../logic/heatmap.js';
import { useColumnTexts } from '../logic/token-text.js';
import { useResults } from '../store/results.js';
import { ColorBar } from './ColorBar.js';
import { HeatmapChart } from './HeatmapChart.js';
import { Help } from './Help.js';

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
  const oneScale = useResults((s) => s.oneScale);
  const log = useResults((s) => s.logScale);
  const setView = useResults((s) => s.setView);
  const setKv = useResults((s) => s.setKv);
  const setGridKind = useResults((s) => s.setGridKind);
  const setStrategy = useResults((s) => s.setHeatmapStrategy);
  const select = useResults((s) => s.select);

  const strategies = heatmapStrategies(report);
  const strategy: StrategyId | undefined = chosen && strategies.includes(chosen) ? chosen : strategies[0];

  const detail = useMemo(() => {
    if (!strategy) return null;
    const ms = report.adapters.map((a) => errorMatrix(report, a, strategy, gridKind, kv));
    return { matrices: ms, domain: detailDomain(report, strategy, gridKind, kv, oneScale, log) };
  }, [report, strategy, gridKind, kv, oneScale, log]);

  const summary = useMemo(() => {
    const ms = report.adapters.map((a) => summaryMatrix(report, a, kv));
    const values = ms.map((m) => m.values);
    return { matrices: ms, domain: log ? logDomain(values) : sharedDomain(values) };
  }, [report, kv, log]);

  const first = strategy ? report.adapters.map((a) => strategyResult(a, strategy)).find(Boolean) : undefined;
  const bins = gridKind === 'tokens' && first ? first.tokens.binSize : null;
  const columns = gridKind === 'tokens' ? (first?.tokens[kv][0]?.length ?? 0) : 0;
  const texts = useColumnTexts(report, bins, columns);

  if (!strategy || !detail) {
    return <p className="empty">This run has only the exact strategy: there is no error to map. Add strategies and run again.</p>;
  }
  const kvName = kv.toUpperCase();
  const xName = gridKind === 'tokens' ? 'token' : 'KV head';
  const scaleWhat = oneScale ? 'one scale for all adapters and strategies' : `one scale for all adapters (${strategy} only)`;

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
        <label title="Colour every strategy on the same scale, so their errors compare at a glance">
          <input type="checkbox" checked={oneScale} onChange={(e) => setView({ oneScale: e.target.checked })} data-testid="one-scale" /> one scale for all strategies
        </label>
        <label title="Logarithmic colour scale: errors that differ by decades stay apart">
          <input type="checkbox" checked={log} onChange={(e) => setView({ logScale: e.target.checked })} data-testid="log-scale" /> log scale
        </label>
        <ColorBar domain={detail.domain} log={log} label={`relative ${kvName} error vs exact, ${scaleWhat}`} testId="detail-colorbar" />
        <Help topic="relErr" />
      </div>
      {gridKind === 'tokens' && <p className="muted small">Scroll or drag on a map, or use the slider under it, to zoom into the document; zoomed in, the axis shows the text.</p>}
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
              log={log}
              title={`${a.name} · ${strategy} · ${kvName} error by layer × ${xName}`}
              xName={xName}
              testId={`heatmap-${gridKind}-${slug(a.name)}`}
              columnText={gridKind === 'tokens' ? texts : null}
              zoomable={gridKind === 'tokens'}
              onSelect={(r, c, value) => {
                const layer = s?.layers.find((l) => l.layer === r);
                const text = gridKind === 'tokens' ? texts?.[c] : undefined;
                select({
                  chart: `${kvName} error, layer × ${xName}`,
                  adapter: a.name,
                  row: m.rows[r] ?? '',
                  column: `${xName} ${m.columns[c] ?? ''}${text ? ` “${text}”` : ''}`,
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
        <ColorBar domain={summary.domain} log={log} label="one scale for all adapters and strategies" testId="summary-colorbar" />
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
              log={log}
              title={`${a.name} · ${kvName} error by layer × strategy`}
              xName="strategy"
              testId={`heatmap-summary-${slug(a.name)}`}
              labelEvery
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
