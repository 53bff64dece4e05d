import { useEffect, useState } from 'react';
import { EXPORT_FORMATS, type ExportFormat } from '../../../shared/rpc.js';
import { duration } from '../logic/format.js';
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

/** While an export is prepared (a PDF is printed by Chromium and takes tens of seconds): what and for how long. */
export function ExportProgress(): React.JSX.Element | null {
  const exporting = useHistory((s) => s.exporting);
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!exporting) return undefined;
    const t = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(t);
  }, [exporting]);
  if (!exporting) return null;
  const what = exporting.format === 'pdf' ? 'Preparing the PDF (Chromium prints the report; this takes a while)' : `Preparing the ${exporting.format.toUpperCase()} file`;
  return (
    <p className="export-progress" role="status" aria-live="polite" data-testid="export-progress" data-format={exporting.format}>
      <span className="spinner" aria-hidden="true" />
      {what}… {duration(Math.max(0, now - exporting.startedAt))}
    </p>
  );
}
