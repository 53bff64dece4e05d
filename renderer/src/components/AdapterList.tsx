import { formatBytes } from '../logic/format.js';
import { useSetup } from '../store/setup.js';
import { FolderField } from './FolderField.js';

export function AdapterList(): React.JSX.Element {
  const adapters = useSetup((s) => s.adapters);
  const addAdapters = useSetup((s) => s.addAdapters);
  const removeAdapter = useSetup((s) => s.removeAdapter);
  const renameAdapter = useSetup((s) => s.renameAdapter);

  return (
    <section className="card" aria-labelledby="adapters-h">
      <h2 id="adapters-h">
        Adapters <span className="muted">({adapters.length})</span>
      </h2>
      {adapters.length === 0 ? (
        <p className="empty">No adapters yet. Add PEFT LoRA folders (adapter_config.json + adapter_model.safetensors).</p>
      ) : (
        <table className="dense adapters" data-testid="adapter-list">
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
              <tr key={a.id} className={a.error ? 'bad' : ''} data-testid={`adapter-row-${a.name}`}>
                <td>
                  <input
                    className="name-input"
                    aria-label={`Name of adapter ${a.dir}`}
                    value={a.name}
                    onChange={(e) => renameAdapter(a.id, e.target.value)}
                    title={a.dir}
                  />
                  {a.error && (
                    <div className="error small" role="alert">
                      {a.error}
                    </div>
                  )}
                  {a.info?.warnings.map((w) => (
                    <div key={w} className="warn small">
                      {w}
                    </div>
                  ))}
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
                  <button type="button" className="icon" aria-label={`Remove adapter ${a.name}`} onClick={() => removeAdapter(a.id)}>
                    ×
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <FolderField id="adapter-dir" label="Add adapter folder" purpose="adapter" multiple value="" placeholder="/path/to/adapter" submitLabel="Add" onSubmit={(p) => void addAdapters(p)} testId="adapter-dir" />
    </section>
  );
}
