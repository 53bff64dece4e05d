// Greedy generation of the trained demo model (models/demo) against transformers + PEFT on
// the same document and prompt (models/demo/train/hf-reference.json, written by the training
// script on the GPU machine): identical tokens in fp32, on the CPU build (CI) and with
// ADAPTERLENS_TEST_DEVICE=cuda. In bf16 (CUDA) identical up to the first step where HF's own
// top-1/top-2 margin is below 0.25: this 14.5M model has near ties (HF's bf16 logits tie
// exactly at step 16 of the base), where two bf16 implementations may rightly part (the
// rule of tests/parity/bf16-parity.test.ts).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAddon } from '../../main/engine/native-loader.js';
import { openAdapter } from '../../main/model/adapter.js';
import { openCheckpoint } from '../../main/model/checkpoint.js';
import { loadTokenizer } from '../../main/model/tokenizer.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const demo = path.join(root, 'models', 'demo');
const refFile = path.join(demo, 'train', 'hf-reference.json');
const onCuda = process.env.ADAPTERLENS_TEST_DEVICE === 'cuda';

interface Reference {
  maxNewTokens: number;
  promptIds: number[];
  documentTokens: number;
  rows: Record<string, { tokens: number[]; minMargin: number | null; margins: number[]; text?: string }>;
}
const BF16_MARGIN = 0.25;

const present = fs.existsSync(path.join(demo, 'base', 'model.safetensors')) && fs.existsSync(refFile);

describe('demo model: greedy tokens equal transformers + PEFT', { skip: !present && 'models/demo is not trained yet' }, () => {
  for (const dtype of onCuda ? (['fp32', 'bf16'] as const) : (['fp32'] as const)) {
    it(`${onCuda ? 'CUDA' : 'CPU'} ${dtype}: the base and every adapter`, async () => {
      const ref = JSON.parse(fs.readFileSync(refFile, 'utf8')) as Reference;
      const { addon } = loadAddon(onCuda ? 'cuda' : 'cpu');
      const ckpt = await openCheckpoint(path.join(demo, 'base'));
      const model = await addon.loadModel({ ...ckpt.config.native, dtype }, ckpt.tensors, null, null);
      try {
        const tok = await loadTokenizer(path.join(demo, 'base'));
        const docFile = path.join(demo, 'documents', 'demo-moby-dick.txt');
        const doc = tok.encodeDocument(fs.readFileSync(docFile, 'utf8'));
        assert.equal(doc.length, ref.documentTokens, 'the app tokenizes the demo document as the training script did');
        const ids = Int32Array.from([...doc, ...ref.promptIds]);
        const names = Object.keys(ref.rows).filter((k) => k.endsWith(`/${dtype}`)).map((k) => k.slice(0, -dtype.length - 1));
        assert.ok(names.includes('base') && names.length >= 4, `reference rows for ${dtype}: ${names.join(', ')}`);
        const report: string[] = [];
        for (const name of names) {
          const adapter = name === 'base' ? null : await model.loadAdapter((await openAdapter(path.join(demo, 'adapters', name), ckpt.config.native)).spec, null, null);
          const cache = model.newCache(ids.length + ref.maxNewTokens + 1);
          const logits = await model.prefill(cache, ids, adapter, { chunkSize: 256, logits: 'last' }, null, null);
          let next = argmax(logits!);
          const tokens = [next];
          while (tokens.length < ref.maxNewTokens) {
            const r = await model.decode([{ cache, adapter, token: next, sampling: { temperature: 0, topP: 1, seed: 0 } }], { logits: false });
            next = r.tokens[0]!;
            tokens.push(next);
          }
          const want = ref.rows[`${name}/${dtype}`]!;
          const first = tokens.findIndex((t, i) => t !== want.tokens[i]);
          // fp32: every step; bf16: up to HF's first near tie.
          const tie = want.margins.findIndex((m) => m < BF16_MARGIN);
          const upTo = dtype === 'fp32' || tie < 0 ? want.tokens.length : tie;
          report.push(`${name}: ${first < 0 ? 'identical' : `first difference at ${first}`} (HF min margin ${want.minMargin?.toFixed(3)}${dtype === 'bf16' ? `, compared through step ${upTo - 1}` : ''})`);
          assert.deepEqual(tokens.slice(0, upTo), want.tokens.slice(0, upTo), `${name} (${dtype}): tokens differ from HF from index ${first}`);
          cache.dispose();
          adapter?.dispose();
        }
        console.log(`demo greedy parity (${onCuda ? 'cuda' : 'cpu'}, ${dtype}): ${report.join('; ')}`);
      } finally {
        model.dispose();
      }
    });
  }
});

function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}
