// On the CUDA build a comparison copies back only results (error sums, scores, tokens and
// their probabilities, small factor matrices), never a cache: every strategy, metric and
// score runs on the device. Measured with the engine's device-to-host byte counter over a
// whole runComparison of every strategy, against the size of one exact cache of the document.
// Runs with ADAPTERLENS_TEST_DEVICE=cuda (bench/run-on-device.sh); skipped elsewhere.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import path from 'node:path';
import { CacheManager } from '../../main/cache/cache-manager.js';
import { kvCacheBytes } from '../../main/cache/memory-estimate.js';
import { runComparison } from '../../main/compare/runner.js';
import { EngineSession } from '../../main/compare/session.js';
import type { NativeModelConfig } from '../../main/engine/native-types.js';
import { DEFAULT_SETTINGS, type CompareRequest } from '../../shared/compare.js';
import { adapterConfig, allModules, tempDir, tinyConfig, writeAdapter, writeCheckpoint } from '../unit/model-fixtures.js';
import { modelDir, readManifest } from '../parity/hf-fixtures.js';

const onCuda = process.env.ADAPTERLENS_TEST_DEVICE === 'cuda';

// Wide K/V (8 KV heads of 64) so that one cache of a 1000-token document (16 MB in bf16)
// dwarfs everything a comparison legitimately brings back.
const native: NativeModelConfig = {
  vocabSize: 32000,
  hiddenSize: 256,
  intermediateSize: 512,
  numLayers: 4,
  numHeads: 8,
  numKvHeads: 8,
  headDim: 64,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  ropeScaling: { type: 'default' },
  maxPositionEmbeddings: 4096,
  tieWordEmbeddings: true,
  attentionBias: false,
};
const config = tinyConfig({
  vocab_size: 32000, hidden_size: 256, intermediate_size: 512, num_hidden_layers: 4, num_attention_heads: 8,
  num_key_value_heads: 8, head_dim: 64, max_position_embeddings: 4096, tie_word_embeddings: true,
});

describe('a CUDA comparison copies back results only', { skip: !onCuda && 'needs ADAPTERLENS_TEST_DEVICE=cuda' }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => {
    ({ dir, cleanup } = await tempDir('al-d2h-'));
    await writeCheckpoint(path.join(dir, 'model'), native, { config, dtype: 'BF16' });
    const fixture = modelDir(readManifest(), 'llama-gqa-bf16');
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(path.join(fixture, f), path.join(dir, 'model', f));
    await writeAdapter(path.join(dir, 'qv'), native, { config: adapterConfig({ r: 8, lora_alpha: 16 }), dtype: 'BF16',
      modules: allModules(4, ['q_proj', 'v_proj'], 8) });
    await writeAdapter(path.join(dir, 'all'), native, { config: adapterConfig({ r: 4, lora_alpha: 8, target_modules: 'all-linear' }),
      dtype: 'BF16', modules: allModules(4, ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], 4) });
  });
  after(() => cleanup?.());

  it('every strategy, metric and score: device-to-host bytes well under one exact cache', async () => {
    const session = new EngineSession('cuda');
    const manager = new CacheManager({ budgetBytes: 8 * 2 ** 30 });
    try {
      const text = readManifest().documentText;
      const request: CompareRequest = {
        ...DEFAULT_SETTINGS,
        modelDir: path.join(dir, 'model'),
        adapters: [{ dir: path.join(dir, 'qv') }, { dir: path.join(dir, 'all') }],
        documentText: Array.from({ length: 40 }, () => text).join('\n').slice(0, 5000),
        promptText: ' Summarize the above:',
        strategies: ['exact', 'base', 'seed-minikv', 'lragent', 'delta-int8', 'delta-int4', 'lowrank:8', 'hybrid:2'],
        maxNewTokens: 8,
        stopAtEos: false,
        dtype: 'bf16',
      };
      // Load first (its uploads and hashing are not the comparison's), then count.
      await runComparison(session, manager, { ...request, strategies: ['exact'], maxNewTokens: 1 });
      manager.clear();
      const before = session.engine.addon.info().deviceToHostBytes;
      const report = await runComparison(session, manager, request);
      const copied = session.engine.addon.info().deviceToHostBytes - before;
      const T = report.documentTokens.length;
      const oneCache = kvCacheBytes(native, T, 2);
      assert.ok(T > 900, `document of ${T} tokens`);
      assert.equal(report.adapters.length, 2);
      for (const a of report.adapters) assert.equal(a.strategies.length, 8);
      console.log(`device → host during the comparison: ${(copied / 2 ** 20).toFixed(2)} MiB; one exact cache ${(oneCache / 2 ** 20).toFixed(1)} MiB`);
      assert.ok(copied < oneCache / 4, `copied ${copied} bytes back, one exact cache is ${oneCache}`);
    } finally {
      manager.dispose();
      session.dispose();
    }
  });
});
