import { sig3 } from '../logic/format.js';
import { VIRIDIS } from '../logic/heatmap.js';

/** The shared colour scale of a group of heatmaps (values at its ends; a log scale says so). */
export function ColorBar({ domain, label, log = false, testId }: { domain: [number, number]; label: string; log?: boolean; testId?: string }): React.JSX.Element {
  const lo = log ? `≤ ${sig3(domain[0])}` : sig3(domain[0]);
  return (
    <div className="colorbar" aria-label={`${label}: colour scale from ${lo} to ${sig3(domain[1])}${log ? ', logarithmic' : ''}`} role="img" data-testid={testId} data-lo={domain[0]} data-hi={domain[1]} data-log={log}>
      <span>{lo}</span>
      <span className="colorbar-ramp" style={{ background: `linear-gradient(to right, ${VIRIDIS.join(', ')})` }} />
      <span>{sig3(domain[1])}</span>
      <span className="muted">
        {label}
        {log ? ' (log scale)' : ''}
      </span>
    </div>
  );
}
