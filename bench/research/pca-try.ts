import fs from 'node:fs';
import path from 'node:path';
import { EngineSession } from '../../main/compare/session.ts';
import { demoAdaptersDir, demoBaseDir } from '../../main/compare/demo-documents.ts';
import { DEMO_ADAPTERS } from '../../main/compare/demo.ts';
const session = new EngineSession('cpu');
const model = await session.loadModel(demoBaseDir);
const tok = await session.loadTokenizer(demoBaseDir);
const all = tok.encodeDocument(fs.readFileSync('/work/wt-15/models/demo/documents/heldout-sotu-1800s.txt', 'utf8'));
const T = 1024, C = 256;
const doc = all.slice(0, T), cont = all.slice(T, T + C);
const base = model.native.newCache(T);
await model.native.prefill(base, Int32Array.from(doc), null, { chunkSize: 512, logits: 'none' }, null, null);
const W = JSON.parse(fs.readFileSync('/tmp/lab/w-s1800.json', 'utf8'));
for (const name of DEMO_ADAPTERS) {
  const a = await session.loadAdapter(model, path.join(demoAdaptersDir, name));
  const ex = model.native.newCache(T);
  await model.native.prefill(ex, Int32Array.from(doc), a.native, { chunkSize: 512, logits: 'none' }, null, null);
  const feed = Int32Array.from([doc[T - 1]!, ...cont.slice(0, -1)]);
  const targets = Int32Array.from(cont);
  const exView = model.native.newView({ cache: ex, store: null, length: T - 1 }, T + C + 1);
  const items = [{ cache: exView, adapter: a.native, tokens: feed, targets, reference: 0 }];
  const labels: string[] = [];
  for (const [bpv, w] of [[2, undefined], [1.5, W[name]], [1, W[name]]] as const) {
    const t0 = performance.now();
    const st = await model.native.encodeStore({ kind: 'pca', bitsPerValue: bpv, ...(w ? { weights: w } : {}) }, base, ex, a.native);
    const t1 = performance.now();
    const view = model.native.newView({ cache: base, store: st, length: T - 1 }, T + C + 1);
    const rebuilt = await st.decode(base, T + C + 1);
    rebuilt.truncate(T - 1);
    items.push({ cache: view, adapter: a.native, tokens: feed, targets, reference: 0 });
    items.push({ cache: rebuilt, adapter: a.native, tokens: feed, targets, reference: 0 });
    labels.push(`pca:${bpv}${w ? 'w' : ''} view share(bf16)=${(st.bytes / (8 * 2 * 128 * T * 2)).toFixed(4)} enc ${(t1 - t0).toFixed(0)}ms`, '   materialized');
  }
  const t2 = performance.now();
  const res = await model.native.score(items, null);
  console.log(name, `score ${(performance.now() - t2).toFixed(0)} ms`);
  for (let i = 1; i < res.length; i++) {
    const r = res[i]!;
    console.log('  ', labels[i - 1], 'KL', (r.kl.reduce((s, x) => s + x, 0) / r.kl.length).toExponential(3), 'top1', (r.top1.reduce((s, x) => s + x, 0) / r.top1.length).toFixed(4));
  }
}
