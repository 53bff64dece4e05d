import { maxLowrankRank, STRATEGY_DESCRIPTIONS } from '../../../shared/strategies.js';
import { strategyProblems } from '../logic/request.js';
import { SIMPLE_KINDS, selectedStrategies, type SimpleKind } from '../logic/strategy-selection.js';
import { useSetup } from '../store/setup.js';

export function StrategyPicker(): React.JSX.Element {
  const sel = useSetup((s) => s.strategies);
  const setStrategies = useSetup((s) => s.setStrategies);
  const model = useSetup((s) => s.model);
  const tokenCount = useSetup((s) => s.tokenCount);
  const { ids } = selectedStrategies(sel);
  // Parameters checked against the model (hybrid:n ≤ its layers, lowrank:k ≤ what the SVD of ΔK, ΔV can give).
  const errors = strategyProblems(sel, model, tokenCount);
  const maxRank = model ? maxLowrankRank(model, tokenCount?.complete ? tokenCount.documentTokens : null) : null;
  const toggle = (k: SimpleKind, on: boolean): void => setStrategies({ ...sel, simple: { ...sel.simple, [k]: on } });

  return (
    <section className="card" aria-labelledby="strategies-h">
      <h2 id="strategies-h">
        KV strategies <span className="muted">({ids.length})</span>
      </h2>
      <ul className="strategies">
        {SIMPLE_KINDS.map((k) => (
          <li key={k}>
            <label title={STRATEGY_DESCRIPTIONS[k]}>
              <input type="checkbox" checked={k === 'exact' || sel.simple[k]} disabled={k === 'exact'} onChange={(e) => toggle(k, e.target.checked)} data-testid={`strategy-${k}`} />
              <code>{k}</code>
              <span className="desc">{k === 'exact' ? 'reference, always on' : STRATEGY_DESCRIPTIONS[k]}</span>
            </label>
          </li>
        ))}
        <li>
          <label title={STRATEGY_DESCRIPTIONS.lowrank}>
            <input type="checkbox" checked={sel.lowrank.on} onChange={(e) => setStrategies({ ...sel, lowrank: { ...sel.lowrank, on: e.target.checked } })} data-testid="strategy-lowrank" />
            <code>lowrank:</code>
          </label>
          <input
            className="param"
            aria-label="lowrank ranks k (comma list)"
            value={sel.lowrank.ranks}
            onChange={(e) => setStrategies({ ...sel, lowrank: { on: true, ranks: e.target.value } })}
            data-testid="strategy-lowrank-ranks"
          />
          <span className="desc">k: truncated SVD rank of ΔK, ΔV per layer{maxRank !== null && <span data-testid="lowrank-bound"> (k ≤ {maxRank} here)</span>}</span>
        </li>
        <li>
          <label title={STRATEGY_DESCRIPTIONS.hybrid}>
            <input type="checkbox" checked={sel.hybrid.on} onChange={(e) => setStrategies({ ...sel, hybrid: { ...sel.hybrid, on: e.target.checked } })} data-testid="strategy-hybrid" />
            <code>hybrid:</code>
          </label>
          <input
            className="param"
            aria-label="hybrid exact layers n (comma list)"
            value={sel.hybrid.layers}
            onChange={(e) => setStrategies({ ...sel, hybrid: { on: true, layers: e.target.value } })}
            data-testid="strategy-hybrid-layers"
          />
          <span className="desc">n: seed-minikv + exact K/V where it errs most{model && <span data-testid="hybrid-bound"> (n ≤ {model.numLayers} here)</span>}</span>
        </li>
      </ul>
      {errors.map((e) => (
        <p key={e} className="error small" role="alert" data-testid="strategy-error">
          {e}
        </p>
      ))}
    </section>
  );
}
