// Every finished run, saved as its report JSON: searchable, filterable, reopenable, exportable.
import { useMemo, useState } from 'react';
import { formatBytes } from '../logic/format.js';
import { filterHistory, historyModels, type HistoryFilter } from '../logic/history-filter.js';
import { useApp } from '../store/app.js';
import { useHistory } from '../store/history.js';
import { useResults } from '../store/results.js';
import { ExportMenu, ExportProgress } from './ExportMenu.js';

export function HistoryPanel(): React.JSX.Element {
  const { entries, skipped, loaded, loading, error, busy, notice, refresh, get, remove } = useHistory();
  const historyDir = useApp((s) => s.info?.historyDir);
  const open = useResults((s) => s.open);
  const openId = useResults((s) => s.reportId);
  const setTab = useApp((s) => s.setTab);
  const [filter, setFilter] = useState<HistoryFilter>({ query: '', model: '', backend: '' });
  const models = useMemo(() => historyModels(entries), [entries]);
  // A model whose last run was deleted is no longer an option: filtering by it would leave the
  // list empty behind a select that shows "any".
  const effective = useMemo(() => (filter.model && !models.includes(filter.model) ? { ...filter, model: '' } : filter), [filter, models]);
  const shown = useMemo(() => filterHistory(entries, effective), [entries, effective]);

  const reopen = async (id: string): Promise<void> => {
    const report = await get(id);
    if (report) {
      open(report, id, 'history');
      setTab('results');
    }
  };

  return (
    <section className="card history" aria-labelledby="history-h" data-testid="history">
      <div className="card-head">
        <h2 id="history-h">History</h2>
        {historyDir && (
          <span className="muted small" title={historyDir}>
            saved in <code>{historyDir}</code>
          </span>
        )}
        <button type="button" onClick={() => void refresh()} disabled={loading}>
          {loading ? 'Refreshing…' : 'Refresh'}
        </button>
      </div>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {notice && (
        <p className="ok" role="status">
          {notice}
        </p>
      )}
      <ExportProgress />
      {!loaded && loading && <p className="state">Loading saved runs…</p>}
      {skipped.length > 0 && (
        <details className="history-skipped" data-testid="history-skipped">
          <summary className="muted small">
            {skipped.length} file{skipped.length === 1 ? '' : 's'} in the folder {skipped.length === 1 ? 'is' : 'are'} not a readable saved run
          </summary>
          <ul className="small">
            {skipped.map((f) => (
              <li key={f.file}>
                <code>{f.file}</code>: {f.reason}
              </li>
            ))}
          </ul>
        </details>
      )}
      {loaded && entries.length === 0 && <p className="empty">No saved runs yet. Every finished run is saved here automatically.</p>}
      {entries.length > 0 && (
        <div className="toolbar history-filter">
          <input
            type="search"
            className="search"
            placeholder="Search model, adapters, strategies, document, prompt…"
            aria-label="Search the saved runs"
            value={filter.query}
            onChange={(e) => setFilter({ ...filter, query: e.target.value })}
            data-testid="history-search"
          />
          <label>
            Model{' '}
            <select value={effective.model} onChange={(e) => setFilter({ ...filter, model: e.target.value })} data-testid="history-model">
              <option value="">any</option>
              {models.map((m) => (
                <option key={m} value={m}>
                  {m}
                </option>
              ))}
            </select>
          </label>
          <label>
            Backend{' '}
            <select value={filter.backend} onChange={(e) => setFilter({ ...filter, backend: e.target.value as HistoryFilter['backend'] })} data-testid="history-backend">
              <option value="">any</option>
              <option value="cpu">cpu</option>
              <option value="cuda">cuda</option>
            </select>
          </label>
          <span className="muted small" data-testid="history-count" aria-live="polite">
            {shown.length === entries.length ? `${entries.length} run${entries.length === 1 ? '' : 's'}` : `${shown.length} of ${entries.length} runs`}
          </span>
        </div>
      )}
      {entries.length > 0 && shown.length === 0 && <p className="empty">No saved run matches. Clear the search or the filters.</p>}
      {shown.length > 0 && (
        <div className="table-scroll">
          <table className="dense history-table">
            <thead>
              <tr>
                <th scope="col">when</th>
                <th scope="col">model</th>
                <th scope="col">adapters</th>
                <th scope="col">document · prompt</th>
                <th scope="col">strategies</th>
                <th scope="col">doc tokens</th>
                <th scope="col">backend</th>
                <th scope="col">size</th>
                <th scope="col">actions</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((e) => (
                <tr key={e.id} className={e.id === openId ? 'current' : ''} data-testid={`history-row-${e.id}`}>
                  <td>{new Date(e.createdAt).toLocaleString()}</td>
                  <td>{e.modelName}</td>
                  <td>{e.adapterNames.join(', ')}</td>
                  <td className="small doc-preview" data-testid={`history-doc-${e.id}`}>
                    <span title={e.documentStart}>{e.documentStart || <span className="muted">(empty)</span>}</span>
                    {e.promptStart && (
                      <span className="muted" title={e.promptStart}>
                        {' '}
                        · <q>{e.promptStart}</q>
                      </span>
                    )}
                  </td>
                  <td className="small">{e.strategies.join(', ')}</td>
                  <td>{e.documentTokens.toLocaleString('en-US')}</td>
                  <td>{e.backend}</td>
                  <td>{formatBytes(e.fileBytes)}</td>
                  <td className="actions">
                    <div className="actions-row">
                      <button type="button" onClick={() => void reopen(e.id)} disabled={busy === e.id} data-testid={`history-open-${e.id}`}>
                        Open
                      </button>
                      <ExportMenu id={e.id} compact />
                      <button type="button" className="small-btn danger-text" aria-label={`Delete run of ${new Date(e.createdAt).toLocaleString()}`} onClick={() => window.confirm('Delete this saved run?') && void remove(e.id)}>
                        Delete
                      </button>
                    </div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
