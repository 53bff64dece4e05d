import { useApp } from '../store/app.js';
import { useSetup } from '../store/setup.js';
import { formatBytes } from '../logic/format.js';

function num(v: string): number {
  return v.trim() === '' ? Number.NaN : Number(v);
}

export function GenerationSettings(): React.JSX.Element {
  const g = useSetup((s) => s.settings);
  const set = useSetup((s) => s.setSettings);
  const backend = useApp((s) => s.info?.backend);

  return (
    <section className="card" aria-labelledby="gen-h">
      <h2 id="gen-h">Generation</h2>
      <div className="form-grid">
        <label htmlFor="max-new">Max new tokens</label>
        <input id="max-new" type="number" min={1} step={1} value={Number.isNaN(g.maxNewTokens) ? '' : g.maxNewTokens} onChange={(e) => set({ maxNewTokens: num(e.target.value) })} data-testid="max-new-tokens" />

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
        <select id="dtype" value={g.dtype} onChange={(e) => set({ dtype: e.target.value as typeof g.dtype })}>
          <option value="fp32">fp32</option>
          <option value="bf16">bf16</option>
          <option value="fp16">fp16</option>
        </select>

        <label htmlFor="device">Device</label>
        <select id="device" value={g.device} onChange={(e) => set({ device: e.target.value as typeof g.device })}>
          <option value="auto">auto</option>
          <option value="cpu">cpu</option>
          <option value="cuda">cuda</option>
        </select>

        <label htmlFor="eos">Stop at EOS</label>
        <input id="eos" type="checkbox" checked={g.stopAtEos} onChange={(e) => set({ stopAtEos: e.target.checked })} />
      </div>
      {backend && (
        <p className="muted small" data-testid="backend">
          Engine: {backend.kind.toUpperCase()} · {backend.device}
          {backend.memoryBytes !== null && ` · ${formatBytes(backend.memoryBytes)}`}
          {backend.fallbackReason && <span title={backend.fallbackReason}> · {backend.fallbackReason}</span>}
        </p>
      )}
      {backend?.kind === 'cpu' && g.dtype !== 'fp32' && <p className="warn small">The CPU engine computes in fp32 only.</p>}
    </section>
  );
}
