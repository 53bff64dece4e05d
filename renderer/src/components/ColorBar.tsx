import { sig3 } from '../logic/format.js';
import { VIRIDIS } from '../logic/heatmap.js';

/** The shared colour scale of a group of heatmaps. */
export function ColorBar({ domain, label }: { domain: [number, number]; label: string }): React.JSX.Element {
  return (
    <div className="colorbar" aria-label={`${label}: colour scale from ${sig3(domain[0])} to ${sig3(domain[1])}`} role="img">
      <span>{sig3(domain[0])}</span>
      <span className="colorbar-ramp" style={{ background: `linear-gradient(to right, ${VIRIDIS.join(', ')})` }} />
      <span>{sig3(domain[1])}</span>
      <span className="muted">{label}</span>
    </div>
  );
}
