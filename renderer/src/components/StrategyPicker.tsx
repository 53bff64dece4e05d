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
        <li>
          <label title={STRATEGY_DESCRIPTIONS.pca}>
            <input type="checkbox" checked={sel.pca.on} onChange={(e) => setStrategies({ ...sel, pca: { ...sel.pca, on: e.target.checked } })} data-testid="strategy-pca" />
            <code>pca:</code>
          </label>
          <input
            className="param"
            aria-label="pca bits per cached value b (comma list)"
            value={sel.pca.bits}
            onChange={(e) => setStrategies({ ...sel, pca: { on: true, bits: e.target.value } })}
            data-testid="strategy-pca-bits"
          />
          <span className="desc">b: bits per cached value, everything counted (2 = an eighth of a 16-bit cache); ΔK before RoPE and ΔV in principal bases</span>
        </li>
        <li>
          <label title={STRATEGY_DESCRIPTIONS.fit}>
            <input type="checkbox" checked={sel.fit.on} onChange={(e) => setStrategies({ ...sel, fit: { ...sel.fit, on: e.target.checked } })} data-testid="strategy-fit" />
            <code>fit</code>
          </label>
          <span className="desc">fit to budget: per adapter, the cheapest pca mix (weighted by each layer's measured sensitivity) that meets</span>
          <span className="fit-fields">
            <label>
              budget (bytes per adapter)
              <input className="param" inputMode="numeric" value={sel.fit.budgetBytes} placeholder="none" onChange={(e) => setStrategies({ ...sel, fit: { ...sel.fit, on: true, budgetBytes: e.target.value } })} data-testid="fit-budget-bytes" />
            </label>
            <label>
              mean KL ≤
              <input className="param" inputMode="decimal" value={sel.fit.targetKl} placeholder="none" onChange={(e) => setStrategies({ ...sel, fit: { ...sel.fit, on: true, targetKl: e.target.value } })} data-testid="fit-target-kl" />
            </label>
            <label>
              top-1 ≥
              <input className="param" inputMode="decimal" value={sel.fit.minTop1} placeholder="none" onChange={(e) => setStrategies({ ...sel, fit: { ...sel.fit, on: true, minTop1: e.target.value } })} data-testid="fit-min-top1" />
            </label>
          </span>
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
