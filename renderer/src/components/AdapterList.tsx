import { Fragment } from 'react';
import { formatBytes } from '../logic/format.js';
import { useApp } from '../store/app.js';
import { useSetup } from '../store/setup.js';
import { FolderField } from './FolderField.js';

export function AdapterList(): React.JSX.Element {
  const adapters = useSetup((s) => s.adapters);
  const addAdapters = useSetup((s) => s.addAdapters);
  const removeAdapter = useSetup((s) => s.removeAdapter);
  const renameAdapter = useSetup((s) => s.renameAdapter);
  const notice = useSetup((s) => s.adapterNotice);
  const clearNotice = useSetup((s) => s.clearAdapterNotice);
  const workingDir = useApp((s) => s.info?.workingDir);

  return (
    <section className="card" aria-labelledby="adapters-h">
      <h2 id="adapters-h">
        Adapters <span className="muted">({adapters.length})</span>
      </h2>
      {adapters.length === 0 ? (
        <p className="empty">No adapters yet. Add PEFT LoRA folders (adapter_config.json + adapter_model.safetensors).</p>
      ) : (
        // Fixed layout: a long error wraps in its own row under the adapter, never pushing Targets or × out of the panel.
        <table className="dense adapters" data-testid="adapter-list">
          <colgroup>
            <col className="col-name" />
            <col className="col-r" />
            <col className="col-alpha" />
            <col className="col-targets" />
            <col className="col-remove" />
          </colgroup>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">r</th>
              <th scope="col">α</th>
              <th scope="col">Targets</th>
              <th scope="col">
                <span className="sr-only">Remove</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {adapters.map((a) => (
              <Fragment key={a.id}>
                <tr className={a.error ? 'bad' : ''} data-testid={`adapter-row-${a.name}`}>
                  <td>
                    <input className="name-input" aria-label={`Name of adapter ${a.dir}`} value={a.name} onChange={(e) => renameAdapter(a.id, e.target.value)} title={a.dir} />
                  </td>
                  {a.loading ? (
                    <td colSpan={3} className="muted">
                      checking…
                    </td>
                  ) : a.info ? (
                    <>
                      <td>
                        {a.info.rank}
                        {a.info.maxRank !== a.info.rank ? `–${a.info.maxRank}` : ''}
                      </td>
                      <td title={a.info.useRslora ? 'rsLoRA: scale α/√r' : 'scale α/r'}>
                        {a.info.alpha}
                        {a.info.useRslora ? ' rs' : ''}
                      </td>
                      <td className="targets" title={`${a.info.targetModules.join(', ')} · ${a.info.layers.length} layers · ${formatBytes(a.info.bytes)} ${a.info.dtype}`}>
                        {a.info.targetModules.map((m) => m.replace(/_proj$/, '')).join(' ')}
                      </td>
                    </>
                  ) : (
                    <td colSpan={3} className="muted">
                      —
                    </td>
                  )}
                  <td>
                    <button type="button" className="icon" aria-label={`Remove adapter ${a.name}`} onClick={() => removeAdapter(a.id)} data-testid={`remove-adapter-${a.name}`}>
                      ×
                    </button>
                  </td>
                </tr>
                {(a.error || (a.info?.warnings.length ?? 0) > 0) && (
                  <tr className="adapter-notes">
                    <td colSpan={5}>
                      {a.error && (
                        <div className="error small" role="alert" data-testid={`adapter-error-${a.name}`}>
                          {a.error}
                        </div>
                      )}
                      {a.info?.warnings.map((w) => (
                        <div key={w} className="warn small">
                          {w}
                        </div>
                      ))}
                    </td>
                  </tr>
                )}
              </Fragment>
            ))}
          </tbody>
        </table>
      )}
      {notice && (
        <p className="warn small" role="status" data-testid="adapter-notice">
          {notice}{' '}
          <button type="button" className="linklike" onClick={clearNotice}>
            OK
          </button>
        </p>
      )}
      <FolderField
        id="adapter-dir"
        label="Add adapter folder"
        purpose="adapter"
        multiple
        value=""
        placeholder="/path/to/adapter"
        submitLabel="Add"
        onSubmit={(p) => void addAdapters(p)}
        testId="adapter-dir"
        hint={workingDir ? `~ is your home folder; other relative paths start at ${workingDir}` : undefined}
      />
    </section>
  );
}
