import { useEffect, useRef, useState } from 'react';
import { duration } from '../logic/format.js';
import { overallFraction, stageViews } from '../logic/stages.js';
import { useApp } from '../store/app.js';
import { isRunning, useRun } from '../store/run.js';

export function RunProgress(): React.JSX.Element | null {
  const run = useRun();
  const setTab = useApp((s) => s.setTab);
  const [now, setNow] = useState(Date.now());
  const running = isRunning(run.status);
  const cancelButton = useRef<HTMLButtonElement>(null);
  // A run just started from the Run button (which is now disabled): keyboard focus goes to Cancel.
  useEffect(() => {
    if (run.status === 'starting' || run.status === 'running') cancelButton.current?.focus();
  }, [run.runId, run.status === 'starting']);
  useEffect(() => {
    if (!running) return undefined;
    const t = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(t);
  }, [running]);

  if (run.status === 'idle') return null;
  const views = stageViews(run.seen, run.current, run.status === 'finished');
  const frac = run.status === 'finished' ? 1 : overallFraction(views);
  const elapsed = (run.endedAt ?? now) - (run.startedAt ?? now);

  return (
    <section className={`progress progress-${run.status}`} aria-label="Run progress" data-testid="run-progress" data-status={run.status}>
      <div className="progress-head">
        <strong>
          {run.status === 'starting' && 'Starting…'}
          {run.status === 'running' && 'Running'}
          {run.status === 'cancelling' && 'Cancelling…'}
          {run.status === 'finished' && 'Finished'}
          {run.status === 'failed' && 'Failed'}
          {run.status === 'cancelled' && 'Cancelled'}
        </strong>
        <span className="muted">{duration(Math.max(0, elapsed))}</span>
        <div className="bar" role="progressbar" aria-valuemin={0} aria-valuemax={100} aria-valuenow={Math.round(frac * 100)} aria-label="Overall progress">
          <div className="bar-fill" style={{ width: `${(frac * 100).toFixed(1)}%` }} />
        </div>
        {running ? (
          <button type="button" ref={cancelButton} className="danger" onClick={() => void run.cancel()} disabled={run.status === 'cancelling'} aria-disabled={!run.runId} data-testid="cancel-button">
            Cancel
          </button>
        ) : (
          <>
            {run.status === 'finished' && (
              <button type="button" onClick={() => setTab('results')}>
                Show results
              </button>
            )}
            <button type="button" className="icon" aria-label="Dismiss" onClick={run.dismiss}>
              ×
            </button>
          </>
        )}
      </div>
      {run.error && (
        <p className="error" role="alert" data-testid="run-error">
          {run.error}
        </p>
      )}
      {run.saveError && (
        <p className="error" role="alert" data-testid="run-save-error">
          The results are shown, but {run.saveError}.
        </p>
      )}
      {running && (
        <ol className="stages">
          {views.map((v) => (
            <li key={v.stage} className={`stage stage-${v.status}`} data-testid={`progress-stage-${v.stage}`} data-status={v.status}>
              <span className="stage-label">{v.label}</span>
              <span className="stage-count">{v.total > 0 ? `${v.done}/${v.total}` : v.status === 'done' ? '✓' : ''}</span>
              {v.status === 'active' && v.detail && <span className="stage-detail">{v.detail}</span>}
            </li>
          ))}
        </ol>
      )}
      <span className="sr-only" data-testid="progress-stage" aria-live="polite">
        {run.current ?? ''}
      </span>
    </section>
  );
}
