import { EXPORT_FORMATS, type ExportFormat } from '../../../shared/rpc.js';
import { useApp } from '../store/app.js';
import { useHistory } from '../store/history.js';

/** Export a saved run: the browser downloads report.export's file; Electron saves through report.saveAs. */
export function ExportMenu({ id, compact = false }: { id: string; compact?: boolean }): React.JSX.Element {
  const caps = useApp((s) => s.info?.capabilities);
  const busy = useHistory((s) => s.busy === id);
  const exportRun = useHistory((s) => s.exportRun);
  const formats = EXPORT_FORMATS.filter((f: ExportFormat) => f !== 'pdf' || caps?.pdf);
  return (
    <div className="export" role="group" aria-label="Export">
      {!compact && <span className="muted small">Export</span>}
      {formats.map((f) => (
        <button key={f} type="button" className="small-btn" disabled={busy} onClick={() => void exportRun(id, f, caps?.nativeDialogs ?? false)} data-testid={`export-${f}`}>
          {f.toUpperCase()}
        </button>
      ))}
    </div>
  );
}
