// A run's results: the live grid while it runs; the report's outputs, error heatmaps,
// memory and quality views once it has finished (or when reopened from history).
import { useMemo } from 'react';
import type { CompareRequest } from '../../../shared/compare.js';
import type { Report } from '../../../shared/report.js';
import { duration, formatBytes } from '../logic/format.js';
import { gridFromReport, gridFromStream } from '../logic/grid.js';
import { strategyResult } from '../logic/heatmap.js';
import { useApp } from '../store/app.js';
import { useResults, type ResultsSection } from '../store/results.js';
import { isRunning, useRun } from '../store/run.js';
import { useSetup } from '../store/setup.js';
import { ErrorBoundary } from './ErrorBoundary.js';
import { ExportMenu, ExportProgress } from './ExportMenu.js';
import { Heatmaps } from './Heatmaps.js';
import { MemoryCharts } from './MemoryCharts.js';
import { OutputGrid } from './OutputGrid.js';
import { OutputViewer } from './OutputViewer.js';
import { QualityScatter } from './QualityScatter.js';

const SECTIONS: { id: ResultsSection; label: string }[] = [
  { id: 'outputs', label: 'Outputs' },
  { id: 'errors', label: 'Layer errors' },
  { id: 'memory', label: 'Memory' },
  { id: 'quality', label: 'Quality vs memory' },
];

export function requestOf(report: Report): CompareRequest {
  return {
    modelDir: report.model.dir,
    tokenizerDir: report.tokenizer.dir !== report.model.dir ? report.tokenizer.dir : undefined,
    adapters: report.adapters.map((a) => ({ name: a.name, dir: a.dir })),
    documentText: report.document.text,
    promptText: report.prompt.text,
    strategies: report.settings.strategies,
    maxNewTokens: report.settings.maxNewTokens,
    temperature: report.settings.temperature,
    topP: report.settings.topP,
    seed: report.settings.seed,
    dtype: report.settings.dtype,
    device: report.settings.device,
    stopAtEos: report.settings.stopAtEos,
    ...fitOf(report),
  };
}

/** The fit's targets as run (a planned fit has no targets: it re-runs the choices it made). */
function fitOf(report: Report): Pick<CompareRequest, 'fit'> {
  const f = report.settings.fit;
  if (!f) return {};
  if (f.planned) {
    const plan = Object.fromEntries(report.adapters.flatMap((a) => (a.fit ? [[a.name, a.fit.chosen]] : [])));
    return { fit: { plan } };
  }
  return { fit: { ...(f.budgetBytes !== null ? { budgetBytes: f.budgetBytes } : {}), ...(f.targetKl !== null ? { targetKl: f.targetKl } : {}), ...(f.minTop1 !== null ? { minTop1: f.minTop1 } : {}) } };
}

function LiveGrid(): React.JSX.Element {
  const names = useRun((s) => s.adapterNames);
  const request = useRun((s) => s.request);
  const streams = useRun((s) => s.streams);
  const status = useRun((s) => s.status);
  const onlyDiffs = useResults((s) => s.onlyDiffs);
  const setOnlyDiffs = useResults((s) => s.setOnlyDiffs);
  const grid = useMemo(() => gridFromStream(names, request?.strategies ?? [], streams), [names, request, streams]);
  return (
    <section className="results" aria-label="Live outputs">
      <div className="results-head">
        <h2>{isRunning(status) ? 'Generating…' : status === 'cancelled' ? 'Cancelled run (partial outputs)' : 'Failed run (partial outputs)'}</h2>
        <span className="muted">Tokens stream in as every adapter × strategy decodes in one batch. Scores, errors and memory appear when the run finishes.</span>
      </div>
      <OutputGrid grid={grid} live={isRunning(status)} onlyDiffs={onlyDiffs} onOnlyDiffs={setOnlyDiffs} />
    </section>
  );
}

function ReportActions({ report, reportId }: { report: Report; reportId: string | null }): React.JSX.Element {
  const applyRequest = useSetup((s) => s.applyRequest);
  const setTab = useApp((s) => s.setTab);
  return (
    <span className="head-actions">
      <button
        type="button"
        className="small-btn"
        onClick={() => {
          void applyRequest(requestOf(report));
          setTab('setup');
        }}
        title="Fill the setup form with this run's inputs"
      >
        Edit &amp; rerun
      </button>
      {reportId && <ExportMenu id={reportId} />}
    </span>
  );
}

function ReportHeader({ report }: { report: Report }): React.JSX.Element {
  const total = report.timings.reduce((s, t) => s + t.ms, 0);
  const m = report.model;
  return (
    <div className="results-head" data-testid="report-header">
      <h2>
        {m.name} <span className="muted">· {m.numLayers} layers · {m.numHeads}/{m.numKvHeads} heads</span>
      </h2>
      <span className="facts-inline">
        <span>{report.documentTokens.length.toLocaleString('en-US')} doc tokens</span>
        <span>{report.promptTokens.length} prompt</span>
        <span>{report.settings.maxNewTokens} new · {report.settings.temperature > 0 ? `T ${report.settings.temperature}, top-p ${report.settings.topP}, seed ${report.settings.seed}` : 'greedy'}</span>
        <span>
          base cache {formatBytes(report.memory.baseCacheBytes)} · exact {formatBytes(report.memory.exactCacheBytes)}/adapter
        </span>
        <span title={report.backend.fallbackReason ?? undefined}>
          {report.backend.kind} · {report.backend.device} · {report.settings.dtype}
        </span>
        <span>{duration(total)}</span>
        <span>{new Date(report.createdAt).toLocaleString()}</span>
      </span>
    </div>
  );
}

export function ResultsView(): React.JSX.Element {
  const report = useResults((s) => s.report);
  const reportId = useResults((s) => s.reportId);
  const section = useResults((s) => s.section);
  const setSection = useResults((s) => s.setSection);
  const setTab = useApp((s) => s.setTab);
  const status = useRun((s) => s.status);
  const hasStream = useRun((s) => Object.keys(s.streams).length > 0);
  const grid = useMemo(() => (report ? gridFromReport(report) : null), [report]);
  const bytes = useMemo(
    () =>
      (strategy: Parameters<typeof strategyResult>[1], adapter: number): number | null => {
        const a = report?.adapters[adapter];
        return a ? (strategyResult(a, strategy)?.bytes ?? null) : null;
      },
    [report],
  );

  const live = isRunning(status) || ((status === 'cancelled' || status === 'failed') && hasStream);
  if (live) return <LiveGrid />;
  if (!report || !grid) {
    return (
      <div className="state empty-state" data-testid="results-empty">
        <p>No results yet.</p>
        <p className="muted">Set up a comparison and run it, or reopen a saved run from History.</p>
        <p>
          <button type="button" onClick={() => setTab('setup')}>
            Go to Setup
          </button>{' '}
          <button type="button" onClick={() => setTab('history')}>
            Open History
          </button>
        </p>
      </div>
    );
  }

  return (
    <section className="results" aria-label="Results" data-testid="results">
      <ReportHeader report={report} />
      <nav className="subtabs" role="tablist" aria-label="Result views">
        {SECTIONS.map((s) => (
          <button key={s.id} type="button" role="tab" aria-selected={section === s.id} className={section === s.id ? 'subtab active' : 'subtab'} onClick={() => setSection(s.id)} data-testid={`section-${s.id}`}>
            {s.label}
          </button>
        ))}
        <ReportActions report={report} reportId={reportId} />
      </nav>
      <ExportProgress />
      <ErrorBoundary what={SECTIONS.find((s) => s.id === section)?.label ?? section} key={section}>
        {section === 'outputs' && <OutputViewer grid={grid} bytes={bytes} />}
        {section === 'errors' && <Heatmaps report={report} />}
        {section === 'memory' && <MemoryCharts report={report} />}
        {section === 'quality' && <QualityScatter report={report} />}
      </ErrorBoundary>
    </section>
  );
}
