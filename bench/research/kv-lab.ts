// Research harness for issue 15 (not the product path; bench/frontier.ts is): dumps the demo
// model's base and exact K/V over a document, and scores candidate caches (K/V written by an
// offline experiment) teacher-forced on the document's real continuation against exact.
//
//   npx tsx bench/research/kv-lab.ts dump  OUT_DIR DOC.txt [docTokens=1024] [contTokens=256]
//   npx tsx bench/research/kv-lab.ts score OUT_DIR          (scores OUT_DIR/cand/<adapter>/*.f32)
//
// Files: f32 little-endian, per layer K then V, each [kvHeads, T, headDim] (readLayer's layout).
//
// The offline experiments (numpy) that led to the pca strategy, in this folder: baseline.py
// (per-token / KIVI / last-64 / lowrank), spectra.py (rank of ΔK before and after RoPE, ΔV),
// tc.py (transform coding), sens.py (one part coded, the rest exact: per-layer sensitivity),
// pca.py + pca_run.py (the engine's algorithm, weighted or not), show.py (the table):
//   npx tsx bench/research/kv-lab.ts dump /tmp/lab/s1800 models/demo/documents/heldout-sotu-1800s.txt
//   python3 bench/research/baseline.py /tmp/lab/s1800 && npx tsx bench/research/kv-lab.ts score /tmp/lab/s1800
//   python3 bench/research/show.py /tmp/lab/s1800
import fs from 'node:fs';
import path from 'node:path';
import { EngineSession } from '../../main/compare/session.js';
import { loadTokenizer } from '../../main/model/tokenizer.js';
import { demoAdaptersDir, demoBaseDir } from '../../main/compare/demo-documents.js';
import { DEMO_ADAPTERS } from '../../main/compare/demo.js';
import type { NativeKvCache, NativeScoreItem } from '../../main/engine/native-types.js';

const [mode, outDir, docFile, docTok = '1024', contTok = '256'] = process.argv.slice(2);
if (!mode || !outDir) throw new Error('usage: kv-lab.ts dump|score OUT_DIR [DOC] [docTokens] [contTokens]');

const session = new EngineSession('cpu');
const model = await session.loadModel(demoBaseDir);
const cfg = model.checkpoint.config.native;
const adapters = [];
for (const name of DEMO_ADAPTERS) adapters.push(await session.loadAdapter(model, path.join(demoAdaptersDir, name)));
const tok = await loadTokenizer(demoBaseDir); // a script may block: the tokenizer itself, synchronous

function cacheBytes(c: NativeKvCache): Buffer {
  const parts: Buffer[] = [];
  for (let l = 0; l < cfg.numLayers; l++) {
    const { k, v } = c.readLayer(l);
    parts.push(Buffer.from(k.buffer, k.byteOffset, k.byteLength), Buffer.from(v.buffer, v.byteOffset, v.byteLength));
  }
  return Buffer.concat(parts);
}

if (mode === 'dump') {
  const text = fs.readFileSync(docFile!, 'utf8');
  const all = tok.encodeDocument(text);
  const T = Number(docTok), C = Number(contTok);
  if (all.length < T + C) throw new Error(`${docFile}: ${all.length} tokens < ${T} + ${C}`);
  const doc = all.slice(0, T), cont = all.slice(T, T + C);
  fs.mkdirSync(outDir, { recursive: true });
  const base = model.native.newCache(T);
  await model.native.prefill(base, Int32Array.from(doc), null, { chunkSize: 512, logits: 'none' }, null, null);
  fs.writeFileSync(path.join(outDir, 'base.f32'), cacheBytes(base));
  for (const [i, a] of adapters.entries()) {
    const ex = model.native.newCache(T);
    await model.native.prefill(ex, Int32Array.from(doc), a.native, { chunkSize: 512, logits: 'none' }, null, null);
    fs.writeFileSync(path.join(outDir, `exact-${DEMO_ADAPTERS[i]}.f32`), cacheBytes(ex));
    ex.dispose();
  }
  fs.writeFileSync(path.join(outDir, 'meta.json'), JSON.stringify({ T, C, doc, cont, layers: cfg.numLayers, kvHeads: cfg.numKvHeads, headDim: cfg.headDim, adapters: DEMO_ADAPTERS }));
  base.dispose();
} else if (mode === 'score') {
  const meta = JSON.parse(fs.readFileSync(path.join(outDir, 'meta.json'), 'utf8')) as { T: number; C: number; doc: number[]; cont: number[] };
  const T = meta.T;
  const per = cfg.numKvHeads * T * cfg.headDim;
  const load = (file: string, cap: number): NativeKvCache => {
    const buf = fs.readFileSync(file);
    const f = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    const c = model.native.newCache(cap);
    for (let l = 0; l < cfg.numLayers; l++) c.writeLayer(l, f.subarray(2 * l * per, (2 * l + 1) * per), f.subarray((2 * l + 1) * per, (2 * l + 2) * per), T);
    return c;
  };
  const feed = Int32Array.from([meta.doc[T - 1]!, ...meta.cont.slice(0, -1)]);
  const targets = Int32Array.from(meta.cont);
  const results: Record<string, Record<string, { kl: number; top1: number; flips: number[]; klPos: number[] }>> = {};
  for (const [i, a] of adapters.entries()) {
    const name = DEMO_ADAPTERS[i]!;
    const dir = path.join(outDir, 'cand', name);
    if (!fs.existsSync(dir)) continue;
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.f32')).sort();
    const cap = T + meta.C + 1;
    // Each cache holds the document minus its last token; the last token is fed again.
    const exact = load(path.join(outDir, `exact-${name}.f32`), cap);
    exact.truncate(T - 1);
    const caches = files.map((f) => { const c = load(path.join(dir, f), cap); c.truncate(T - 1); return c; });
    const items: NativeScoreItem[] = [exact, ...caches].map((cache) => ({ cache, adapter: a.native, tokens: feed, targets, reference: 0 }));
    const res = await model.native.score(items, null);
    results[name] = {};
    for (const [j, f] of files.entries()) {
      const r = res[j + 1]!;
      const kl = r.kl.reduce((s, x) => s + x, 0) / r.kl.length;
      const top1 = r.top1.reduce((s, x) => s + x, 0) / r.top1.length;
      results[name]![f.replace(/\.f32$/, '')] = { kl, top1, flips: [...r.top1].flatMap((x, k) => (x ? [] : [k])), klPos: [...r.kl] };
      console.log(`${name}\t${f}\tKL ${kl.toExponential(3)}\ttop1 ${top1.toFixed(4)}`);
    }
    for (const c of [exact, ...caches]) c.dispose();
  }
  fs.writeFileSync(path.join(outDir, 'scores.json'), JSON.stringify(results, null, 1));
}
session.dispose();
