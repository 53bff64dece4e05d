import { MAX_NEW_TOKENS_LIMIT } from '../../../shared/compare.js';
import type { OptionAvailability } from '../../../shared/rpc.js';
import { formatBytes } from '../logic/format.js';
import { engineProblems, maxNewTokensProblem } from '../logic/request.js';
import { useApp } from '../store/app.js';
import { useSetup } from '../store/setup.js';

function num(v: string): number {
  return v.trim() === '' ? Number.NaN : Number(v);
}

/** The engine's choices for a setting: what it cannot do is shown, disabled, with the reason beside it. */
function Options<T extends string>({ choices, fallback }: { choices: OptionAvailability<T>[] | undefined; fallback: readonly T[] }): React.JSX.Element {
  const list = choices ?? fallback.map((id) => ({ id, available: true, reason: null }));
  return (
    <>
      {list.map((c) => (
        <option key={c.id} value={c.id} disabled={!c.available} title={c.reason ?? undefined}>
          {c.available ? c.id : `${c.id} (not on this engine)`}
        </option>
      ))}
    </>
  );
}

export function GenerationSettings(): React.JSX.Element {
  const g = useSetup((s) => s.settings);
  const set = useSetup((s) => s.setSettings);
  const backend = useApp((s) => s.info?.backend);
  const engine = useApp((s) => s.info?.engine ?? null);
  const maxNewProblem = maxNewTokensProblem(g.maxNewTokens);
  // "bf16, fp16: the CPU engine computes in fp32 only…; cuda: …": one line per reason.
  const byReason = new Map<string, string[]>();
  for (const c of [...(engine?.dtypes ?? []), ...(engine?.devices ?? [])]) if (!c.available && c.reason) byReason.set(c.reason, [...(byReason.get(c.reason) ?? []), c.id]);
  const reasons = [...byReason].map(([reason, ids]) => `${ids.join(', ')}: ${reason}`);
  const chosenProblems = engineProblems(g, engine);

  return (
    <section className="card" aria-labelledby="gen-h">
      <h2 id="gen-h">Generation</h2>
      <div className="form-grid">
        <label htmlFor="max-new">Max new tokens</label>
        <div>
          <input
            id="max-new"
            type="number"
            min={1}
            max={MAX_NEW_TOKENS_LIMIT}
            step={1}
            value={Number.isNaN(g.maxNewTokens) ? '' : g.maxNewTokens}
            onChange={(e) => set({ maxNewTokens: num(e.target.value) })}
            aria-invalid={maxNewProblem !== null}
            aria-describedby={maxNewProblem ? 'max-new-error' : undefined}
            data-testid="max-new-tokens"
          />
          {maxNewProblem && (
            <p id="max-new-error" className="error small" data-testid="max-new-error">
              {maxNewProblem}
            </p>
          )}
        </div>

        <span id="decoding-l">Decoding</span>
        <div className="seg" role="radiogroup" aria-labelledby="decoding-l">
          {(['greedy', 'sample'] as const).map((m) => (
            <label key={m} className={g.sampling === m ? 'on' : ''}>
              <input type="radio" name="sampling" value={m} checked={g.sampling === m} onChange={() => set({ sampling: m })} />
              {m === 'greedy' ? 'greedy' : 'temperature / top-p'}
            </label>
          ))}
        </div>

        {g.sampling === 'sample' && (
          <>
            <label htmlFor="temperature">Temperature</label>
            <input id="temperature" type="number" min={0.01} step={0.05} value={Number.isNaN(g.temperature) ? '' : g.temperature} onChange={(e) => set({ temperature: num(e.target.value) })} />
            <label htmlFor="top-p">Top-p</label>
            <input id="top-p" type="number" min={0.01} max={1} step={0.05} value={Number.isNaN(g.topP) ? '' : g.topP} onChange={(e) => set({ topP: num(e.target.value) })} />
            <label htmlFor="seed">Seed</label>
            <input id="seed" type="number" min={0} step={1} value={Number.isNaN(g.seed) ? '' : g.seed} onChange={(e) => set({ seed: num(e.target.value) })} />
          </>
        )}

        <label htmlFor="dtype">Compute dtype</label>
        <select id="dtype" value={g.dtype} onChange={(e) => set({ dtype: e.target.value as typeof g.dtype })} data-testid="dtype">
          <Options choices={engine?.dtypes} fallback={['fp32', 'bf16', 'fp16'] as const} />
        </select>

        <label htmlFor="device">Device</label>
        <select id="device" value={g.device} onChange={(e) => set({ device: e.target.value as typeof g.device })} data-testid="device">
          <Options choices={engine?.devices} fallback={['auto', 'cpu', 'cuda'] as const} />
        </select>

        <label htmlFor="eos">Stop at EOS</label>
        <input id="eos" type="checkbox" checked={g.stopAtEos} onChange={(e) => set({ stopAtEos: e.target.checked })} />
      </div>
      {reasons.length > 0 && (
        <p className="muted small" data-testid="engine-limits">
          Not on this engine: {reasons.join('; ')}.
        </p>
      )}
      {chosenProblems.map((p) => (
        <p key={p} className="error small" role="alert">
          {p}
        </p>
      ))}
      {backend && (
        <p className="muted small" data-testid="backend">
          Engine: {backend.kind.toUpperCase()} · {backend.device}
          {backend.memoryBytes !== null && ` · ${formatBytes(backend.memoryBytes)}`}
          {backend.fallbackReason && <span title={backend.fallbackReason}> · {backend.fallbackReason}</span>}
        </p>
      )}
    </section>
  );
}
