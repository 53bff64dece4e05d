// Live cache-manager usage: what is held, against the budget.
import { useEffect } from 'react';
import { formatBytes } from '../logic/format.js';
import { useCache } from '../store/cache.js';

export function CacheUsagePanel(): React.JSX.Element {
  const usage = useCache((s) => s.usage);
  const error = useCache((s) => s.error);
  const clearing = useCache((s) => s.clearing);
  const refresh = useCache((s) => s.refresh);
  const clear = useCache((s) => s.clear);
  useEffect(() => {
    void refresh();
  }, [refresh]);

  if (!usage) {
    return error ? (
      <div className="state state-error" role="alert">
        Could not read the cache: {error}{' '}
        <button type="button" onClick={() => void refresh()}>
          Retry
        </button>
      </div>
    ) : (
      <p className="state">Reading the cache…</p>
    );
  }
  const pct = (b: number): string => `${Math.min(100, (100 * b) / Math.max(1, usage.budgetBytes)).toFixed(2)}%`;
  const evictable = usage.usedBytes - usage.pinnedBytes;
  return (
    <section className="cache card" aria-labelledby="cache-h" data-testid="cache-usage">
      <div className="card-head">
        <h2 id="cache-h">Cache manager</h2>
        <button type="button" onClick={() => void clear()} disabled={clearing || usage.entries.length === 0}>
          {clearing ? 'Clearing…' : 'Free unused entries'}
        </button>
      </div>
      <p>
        <strong>{formatBytes(usage.usedBytes)}</strong> used of {formatBytes(usage.budgetBytes)} ({pct(usage.usedBytes)}) · pinned {formatBytes(usage.pinnedBytes)} · in-run transients {formatBytes(usage.transientBytes)} · hits {usage.hits} · misses {usage.misses} · evictions {usage.evictions}
        {usage.overBudget && <span className="error"> · over budget</span>}
      </p>
      <div className="meter" role="img" aria-label={`Cache: ${formatBytes(usage.usedBytes)} of ${formatBytes(usage.budgetBytes)}`}>
        <div className="meter-pinned" style={{ width: pct(usage.pinnedBytes) }} />
        <div className="meter-free" style={{ width: pct(Math.max(0, evictable)) }} />
      </div>
      <p className="legend small">
        <span className="sw sw-pinned" /> pinned / in use <span className="sw sw-free" /> evictable
      </p>
      {error && <p className="error">{error}</p>}
      {usage.entries.length === 0 ? (
        <p className="empty">The cache is empty. A run fills it with the base cache, exact caches and stores; the next run on the same inputs reuses them.</p>
      ) : (
        <div className="table-scroll">
          <table className="dense numbers">
            <thead>
              <tr>
                <th scope="col">entry</th>
                <th scope="col">kind</th>
                <th scope="col">bytes</th>
                <th scope="col">leases</th>
                <th scope="col">hits</th>
                <th scope="col">last used</th>
              </tr>
            </thead>
            <tbody>
              {usage.entries.map((e) => (
                <tr key={e.key} className={e.retired ? 'muted' : ''}>
                  <td title={e.key}>
                    {e.label}
                    {e.pinned && <span className="tag">pinned</span>}
                    {e.retired && <span className="tag">retired</span>}
                  </td>
                  <td>{e.kind}</td>
                  <td>{formatBytes(e.bytes)}</td>
                  <td>{e.leases}</td>
                  <td>{e.hits}</td>
                  <td>{new Date(e.lastUsed).toLocaleTimeString()}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
