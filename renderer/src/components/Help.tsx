/** @jsxRuntime automatic @jsxImportSource react */
// (The pragma lets the node unit tests render this file: tsx there uses the root tsconfig, which has no JSX settings.)
// A small "?" beside a number's label: its definition (shared/metric-help.ts, the same
// text the exported reports carry), opened by click or keyboard, closed by Escape.
import { useId, useState } from 'react';
import { METRIC_HELP, type MetricTopic } from '../../../shared/metric-help.js';

export function Help({ topic }: { topic: MetricTopic }): React.JSX.Element {
  const [open, setOpen] = useState(false);
  const id = useId();
  const h = METRIC_HELP[topic];
  return (
    <span className="help" onKeyDown={(e) => e.key === 'Escape' && setOpen(false)}>
      <button type="button" className="help-btn" aria-label={`What is ${h.label}?`} aria-expanded={open} aria-controls={id} onClick={() => setOpen(!open)} data-testid={`help-${topic}`}>
        ?
      </button>
      {open && (
        <span role="note" id={id} className="help-pop" data-testid={`help-text-${topic}`}>
          <strong>{h.label}</strong>: {h.text}
        </span>
      )}
    </span>
  );
}
