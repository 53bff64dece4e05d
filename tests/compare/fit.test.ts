// Fit to budget through the runner (CompareRequest.fit), on a fixture model: the fit row holds
// at most the budget, its choice is one of the points it measured and meets the target it
// reports, and a saved plan re-runs to the same store without fitting again.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CacheManager } from '../../main/cache/cache-manager.js';
import { CompareInputError, runComparison } from '../../main/compare/runner.js';
import { EngineSession } from '../../main/compare/session.js';
import { DEFAULT_SETTINGS, type CompareRequest } from '../../shared/compare.js';
import { adapterDir, modelDir, readManifest } from '../parity/hf-fixtures.js';

const manifest = readManifest();
const MODEL = 'llama-gqa-bf16';
const base: CompareRequest = {
  ...DEFAULT_SETTINGS,
  modelDir: modelDir(manifest, MODEL),
  adapters: [{ name: 'qv', dir: adapterDir(manifest, MODEL, 'qv-r8') }],
  documentText: manifest.documentText,
  promptText: manifest.promptText,
  strategies: ['exact', 'pca:2'],
  maxNewTokens: 4,
  continuationText: ' and then the committee wrote its report on the state of the union, which was long.',
};

describe('fit to budget (runner)', () => {
  const session = new EngineSession('cpu');
  const manager = new CacheManager({ budgetBytes: 1 << 30 });
  after(() => {
    manager.dispose();
    session.dispose();
  });

  it('a byte budget: the fit row holds at most it, and is the richest point within it', async () => {
    const probe = await runComparison(session, manager, base);
    const exactBytes = probe.memory.exactCacheBytes;
    const budgetBytes = Math.floor(exactBytes / 16);
    const r = await runComparison(session, manager, { ...base, fit: { budgetBytes } });
    const a = r.adapters[0]!;
    const row = a.strategies.find((s) => s.strategy === 'fit')!;
    assert.ok(row, 'a fit row');
    assert.ok(row.bytes <= budgetBytes, `${row.bytes} > ${budgetBytes}`);
    assert.ok(a.fit);
    assert.equal(a.fit.met, true);
    assert.equal(a.fit.chosen, row.fitted);
    assert.equal(a.fit.probes.length, 2 * r.model.numLayers);
    assert.ok(a.fit.points.every((p) => p.bytes <= budgetBytes));
    assert.equal(Math.max(...a.fit.points.map((p) => p.bytes)), row.bytes);
    assert.equal(r.settings.continuation, 'text');
    // Scored over the given continuation.
    const contTokens = (await (await session.loadTokenizer(base.modelDir)).encodePromptAsync(base.continuationText!)).length;
    assert.equal(row.scores.kl.length, contTokens);
  });

  it('a target KL: the choice is the cheapest point meeting it; its plan re-runs to the same store', async () => {
    const r = await runComparison(session, manager, { ...base, fit: { targetKl: 1e-3 } });
    const f = r.adapters[0]!.fit!;
    const chosen = f.points.find((p) => p.strategy === f.chosen)!;
    if (f.met) {
      assert.ok(chosen.meanKl <= 1e-3);
      assert.ok(f.points.filter((p) => p.bytes < chosen.bytes).every((p) => p.meanKl > 1e-3));
    }
    const row = r.adapters[0]!.strategies.find((s) => s.strategy === 'fit')!;
    assert.equal(row.scores.meanKl, chosen.meanKl, 'the fit row is scored like its point');
    const again = await runComparison(session, manager, { ...base, fit: { plan: { qv: f.chosen } } });
    const g = again.adapters[0]!.fit!;
    assert.equal(g.chosen, f.chosen);
    assert.deepEqual(g.probes, []);
    assert.equal(again.adapters[0]!.strategies.find((s) => s.strategy === 'fit')!.bytes, row.bytes);
  });

  it('refuses a fit row without a budget, a target or a plan, and a plan without the adapter', async () => {
    await assert.rejects(runComparison(session, manager, { ...base, strategies: ['exact', 'fit'] }), CompareInputError);
    await assert.rejects(runComparison(session, manager, { ...base, fit: { plan: { other: 'pca:2' } } }), /no choice for adapter "qv"/);
  });
});
