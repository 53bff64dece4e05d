// The CUDA build in bf16 against transformers in bf16 (tests/reference/make_bf16_reference.py):
// runs only with ADAPTERLENS_TEST_DEVICE=cuda (bench/run-on-device.sh), skipped elsewhere.
//
// Tolerances. Two bf16 implementations round at different points (fused vs. unfused ops,
// GEMM split and accumulation order), so they agree only to a few bf16 ulps (2^-8 ≈ 3.9e-3
// relative each) compounded over the layers:
//   logits at the first and last document position: ‖ours − HF‖ / ‖HF‖ < 3e-2;
//   greedy tokens: identical up to the first step where HF's top1−top2 margin is below
//   MIN_MARGIN (there a bf16 rounding difference may legitimately flip the argmax, and the
//   continuations diverge from there on).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { loadAddon } from '../../main/engine/native-loader.js';
import { generate } from '../../main/engine/generate.js';
import type { NativeModel } from '../../main/engine/native-types.js';
import { openCheckpoint } from '../../main/model/checkpoint.js';
import { decodeToFloat32, readSafetensorsHeader, readTensorBytes, weightRef } from '../../main/model/safetensors.js';
import { fixturesDir, modelDir, readManifest, relErr } from './hf-fixtures.js';

const LOGITS_TOLERANCE = 3e-2;
const MIN_MARGIN = 0.25;
const onCuda = process.env.ADAPTERLENS_TEST_DEVICE === 'cuda';
const refJson = path.join(fixturesDir, 'reference', 'bf16.json');
const refTensors = path.join(fixturesDir, 'reference', 'bf16.safetensors');

interface Bf16Case {
  id: string;
  model: string;
  logitsPositions: number[];
  greedy: { newTokens: number[]; margins: number[] };
}

const skip = !onCuda ? 'needs ADAPTERLENS_TEST_DEVICE=cuda' : !fs.existsSync(refJson) ? 'no bf16 reference (tests/reference/make_bf16_reference.py)' : false;

describe('CUDA bf16 parity with transformers in bf16', { skip }, () => {
  if (skip) return;
  const { addon } = loadAddon('cuda');
  const manifest = readManifest();
  const ref = JSON.parse(fs.readFileSync(refJson, 'utf8')) as { cases: Bf16Case[] };
  const figures: string[] = [];
  after(() => console.log(`\nbf16 parity figures (logits rel. error vs HF bf16; greedy)\n${figures.join('\n')}`));

  for (const c of ref.cases) {
    it(`${c.id}: logits within ${LOGITS_TOLERANCE}, greedy tokens`, async () => {
      const mc = manifest.cases.find((m) => m.id === c.id)!;
      const ckpt = await openCheckpoint(modelDir(manifest, c.model));
      const model: NativeModel = await addon.loadModel({ ...ckpt.config.native, dtype: 'bf16' }, ckpt.tensors, null, null);
      const V = ckpt.config.native.vocabSize;
      const T = mc.documentTokens.length;
      const cache = model.newCache(T + mc.promptTokens.length + c.greedy.newTokens.length + 1);
      try {
        const header = await readSafetensorsHeader(refTensors);
        const r = weightRef(header, header.entries.get(c.id)!);
        const hf = decodeToFloat32(await readTensorBytes(r), r.dtype);
        const logits = (await model.prefill(cache, Int32Array.from(mc.documentTokens), null, { chunkSize: 16, logits: 'all' }, null, null))!;
        let worst = 0;
        for (const [row, pos] of c.logitsPositions.entries()) {
          worst = Math.max(worst, relErr(logits.subarray(pos * V, (pos + 1) * V), hf.subarray(row * V, (row + 1) * V)));
        }
        const [tokens] = await generate(model, [
          { cache, adapter: null, feedTokens: mc.promptTokens, sampling: { temperature: 0, topP: 1, seed: 0 }, maxNewTokens: c.greedy.newTokens.length, stopTokens: [] },
        ]);
        let firstSmall = c.greedy.margins.findIndex((m) => m < MIN_MARGIN);
        if (firstSmall < 0) firstSmall = c.greedy.newTokens.length;
        const same = tokens!.findIndex((t, i) => t !== c.greedy.newTokens[i]);
        figures.push(`${c.id.padEnd(40)} ${worst.toExponential(2)}  greedy ${same < 0 ? 'identical' : `differ from step ${same}`} (compared ${firstSmall} of ${tokens!.length})`);
        assert.ok(worst < LOGITS_TOLERANCE, `logits relative error ${worst}`);
        assert.deepEqual(tokens!.slice(0, firstSmall), c.greedy.newTokens.slice(0, firstSmall));
      } finally {
        cache.dispose();
        model.dispose();
      }
    });
  }
});
