// What the run will need, before Run: main's own estimate (run.estimate, the one run.start
// checks) against the session's cache budget, with its items. Refreshed, debounced, when
// the model, adapters, strategies, token count, new tokens or dtype change.
import { useEffect } from 'react';
import { formatBytes } from '../logic/format.js';
import { useSetup } from '../store/setup.js';

export function MemoryEstimate(): React.JSX.Element | null {
  const estimate = useSetup((s) => s.estimate);
  const estimateFor = useSetup((s) => s.estimateFor);
  const atLeast = useSetup((s) => s.estimateAtLeast);
  const error = useSetup((s) => s.estimateError);
  const estimating = useSetup((s) => s.estimating);
  const refresh = useSetup((s) => s.refreshEstimate);
  const model = useSetup((s) => s.model);
  const adapters = useSetup((s) => s.adapters);
  const strategies = useSetup((s) => s.strategies);
  const tokenCount = useSetup((s) => s.tokenCount);
  const maxNew = useSetup((s) => s.settings.maxNewTokens);
  const dtype = useSetup((s) => s.settings.dtype);

  useEffect(() => {
    const t = setTimeout(() => void refresh(), 250);
    return () => clearTimeout(t);
  }, [model, adapters, strategies, tokenCount, maxNew, dtype, refresh]);

  if (!model) return null;
  if (!estimate) {
    return (
      <section className="card estimate" aria-labelledby="estimate-h" data-testid="memory-estimate">
        <h2 id="estimate-h">Memory estimate</h2>
        {error ? (
          <p className="error small">{error}</p>
        ) : (
          <p className="muted small">{estimating ? 'Estimating…' : 'Shown once the adapters are checked and the document is counted.'}</p>
        )}
      </section>
    );
  }
  const share = estimate.cacheBytes / Math.max(1, estimate.budgetBytes);
  const weights = estimate.items.filter((i) => !i.inCacheBudget).reduce((n, i) => n + i.bytes, 0);
  return (
    <section className="card estimate" aria-labelledby="estimate-h" data-testid="memory-estimate" data-fits={estimate.fits} data-cache-bytes={estimate.cacheBytes} data-for={estimateFor}>
      <div className="card-head">
        <h2 id="estimate-h">Memory estimate</h2>
        <span className={estimate.fits ? 'ok small' : 'error small'} data-testid="estimate-summary">
          {atLeast ? 'at least ' : ''}
          {formatBytes(estimate.cacheBytes)} of the {formatBytes(estimate.budgetBytes)} cache budget
          {estimate.fits ? ` (${Math.max(0.1, Math.round(share * 1000) / 10)}%)` : ': over the budget'}
        </span>
      </div>
      <div className="meter" role="img" aria-label={`Estimated cache memory ${formatBytes(estimate.cacheBytes)} of a ${formatBytes(estimate.budgetBytes)} budget`}>
        <div className={estimate.fits ? 'meter-pinned' : 'meter-over'} style={{ width: `${Math.min(100, share * 100).toFixed(2)}%` }} />
      </div>
      {!estimate.fits && estimate.message && (
        <p className="error small" role="alert">
          {estimate.message}
        </p>
      )}
      <details>
        <summary className="small">What it counts (weights {formatBytes(weights)} are outside the budget)</summary>
        <table className="dense numbers small" data-testid="estimate-items">
          <tbody>
            {estimate.items
              .filter((i) => i.bytes > 0)
              .map((i) => (
                <tr key={i.id} className={i.inCacheBudget ? '' : 'muted'}>
                  <th scope="row">{i.item}</th>
                  <td>{formatBytes(i.bytes)}</td>
                </tr>
              ))}
          </tbody>
        </table>
      </details>
    </section>
  );
}
