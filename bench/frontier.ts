// The quality/bytes frontier of issue 15 on the demo model (models/demo), on the CPU:
// per document (none of them the demo's own, none trained on), the document's first
// DOC_TOKENS tokens are shared, every strategy is teacher-forced on its real continuation (the
// next CONT_TOKENS tokens), and KL / top-1 against the exact cache are measured per adapter.
//
//   npx tsx bench/frontier.ts [--docs FILE|corpus:ID,...] [--doc-tokens 1024] [--cont-tokens 256]
//                             [--out bench/results/frontier.json] [--md bench/results/frontier.md]
//
// Product rows come from the product's path (runComparison, what `adapterlens compare` runs):
// every strategy of shared/strategies.ts, pca at several rates and `fit` (--target-kl 1e-3
// --min-top1 0.99). "fit, plan from <doc>" re-runs the choice fitted on another document
// (--plan): the fit's quality measured on text it did not see. Reference rows (the issue's
// table: ΔK/ΔV int2 per token, KIVI-style int2, the last 64 tokens exact) are not product
// strategies: they are computed here from the caches (readLayer → quantized → writeLayer) and
// scored by the same engine call (model.score) the runner uses.
//
// Bytes: "bits/value" is what a store holds per cached K/V value (dtype-independent: its codes,
// scales and bases); "÷ exact" is against a 16-bit exact cache (what the product keeps on a
// GPU in bf16), so 2 bits/value is 1/8. The reference rows count fp16 scales and zeros.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CacheManager } from '../main/cache/cache-manager.js';
import { runComparison } from '../main/compare/runner.js';
import { EngineSession } from '../main/compare/session.js';
import { loadTokenizer } from '../main/model/tokenizer.js';
import { demoAdaptersDir, demoBaseDir, demoDocumentsDir } from '../main/compare/demo-documents.js';
import { DEMO_ADAPTERS } from '../main/compare/demo.js';
import type { NativeKvCache, NativeScoreItem } from '../main/engine/native-types.js';
import { scoresFromEngine } from '../main/compare/metrics.js';
import { DEFAULT_SETTINGS, type CompareRequest, type FitPlan } from '../shared/compare.js';
import type { Report } from '../shared/report.js';
import { documentsOf, loadCorpus, type Genre } from '../models/demo/train/corpus.js';

const { values } = parseArgs({
  options: {
    docs: { type: 'string' },
    'doc-tokens': { type: 'string' },
    'cont-tokens': { type: 'string' },
    out: { type: 'string' },
    md: { type: 'string' },
  },
});
const DOC_TOKENS = Number(values['doc-tokens'] ?? 1024);
const CONT_TOKENS = Number(values['cont-tokens'] ?? 256);
const DOCS = (values.docs ?? `${path.join(demoDocumentsDir, 'heldout-sotu-1800s.txt')},${path.join(demoDocumentsDir, 'heldout-sotu-modern.txt')},corpus:moby-dick/chapter_10`).split(',');
const TARGET = { targetKl: 1e-3, minTop1: 0.99 };
const STRATEGIES = ['exact', 'base', 'seed-minikv', 'lragent', 'delta-int8', 'delta-int4', 'lowrank:8', 'hybrid:2', 'pca:0.5', 'pca:1', 'pca:1.5', 'pca:2', 'pca:3'];

/** A document's text: a file, or `corpus:ID` from the demo's corpus (its held-out split only). */
function documentText(spec: string): { name: string; text: string } {
  if (!spec.startsWith('corpus:')) return { name: path.basename(spec, '.txt'), text: fs.readFileSync(spec, 'utf8') };
  const id = spec.slice('corpus:'.length);
  const corpus = loadCorpus();
  for (const g of Object.keys(corpus) as Genre[]) {
    const d = documentsOf(corpus, g, 'test').find((x) => x.id === id);
    if (d) return { name: id.replace('/', '-'), text: d.text };
  }
  throw new Error(`${spec}: not a held-out (test split) document of the demo's corpus`);
}

const session = new EngineSession('cpu');
const manager = new CacheManager({ budgetBytes: 8 * 2 ** 30 });
const tok = await loadTokenizer(demoBaseDir); // a script may block: the tokenizer itself, synchronous

/** The text split at a token count: document (DOC_TOKENS tokens with BOS) and continuation. */
function split(text: string): { doc: string; cont: string; docTokens: number; contTokens: number } {
  // The largest word boundary whose prefix is at most DOC_TOKENS tokens; then the continuation
  // cut at the first word boundary with at least CONT_TOKENS tokens.
  const bounds = [...text.matchAll(/\s+/g)].map((m) => m.index!);
  let lo = 0, hi = bounds.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (tok.encodeDocument(text.slice(0, bounds[mid]!)).length <= DOC_TOKENS) lo = mid; else hi = mid - 1;
  }
  const cut = bounds[lo]!;
  const doc = text.slice(0, cut), rest = text.slice(cut);
  const rb = [...rest.matchAll(/\s+/g)].map((m) => m.index!).filter((i) => i > 0);
  const end = rb.find((i) => tok.encodePrompt(rest.slice(0, i)).length >= CONT_TOKENS) ?? rest.length;
  const cont = rest.slice(0, end);
  return { doc, cont, docTokens: tok.encodeDocument(doc).length, contTokens: tok.encodePrompt(cont).length };
}

function request(doc: string, cont: string, strategies: string[], fit: CompareRequest['fit']): CompareRequest {
  return {
    ...DEFAULT_SETTINGS,
    strategies: strategies as CompareRequest['strategies'],
    maxNewTokens: 4,
    device: 'cpu',
    modelDir: demoBaseDir,
    adapters: DEMO_ADAPTERS.map((name) => ({ name, dir: path.join(demoAdaptersDir, name) })),
    documentText: doc,
    promptText: '',
    continuationText: cont,
    ...(fit ? { fit } : {}),
  };
}

interface Row {
  document: string;
  adapter: string;
  strategy: string;
  kind: 'product' | 'reference';
  bytes: number;
  bitsPerValue: number;
  shareOf16bitExact: number;
  meanKl: number;
  top1: number;
}
const rows: Row[] = [];
const plans: Record<string, FitPlan> = {};
const log = (s: string): void => void process.stderr.write(`${s}\n`);

const docs = DOCS.map(documentText).map((d) => ({ ...d, ...split(d.text) }));
for (const d of docs) {
  log(`${d.name}: ${d.docTokens} document tokens, ${d.contTokens} continuation tokens`);
  const t0 = performance.now();
  const report: Report = await runComparison(session, manager, request(d.doc, d.cont, STRATEGIES, TARGET));
  log(`  product strategies and fit: ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  const values = report.model.numLayers * 2 * report.model.numKvHeads * report.model.headDim * report.documentTokens.length;
  const kvWidth = report.model.numKvHeads * report.model.headDim;
  for (const a of report.adapters) {
    for (const s of a.strategies) {
      // Held in the compute dtype (fp32 here): exact itself and hybrid's exact layers, counted at 16 bits.
      let bytes = s.bytes;
      if (s.strategy === 'exact') bytes = values * 2;
      if (s.exactLayers) bytes -= s.exactLayers.length * report.documentTokens.length * 2 * kvWidth * 2;
      rows.push({ document: d.name, adapter: a.name, strategy: s.strategy === 'fit' ? `fit (${s.fitted})` : s.strategy, kind: 'product', bytes, bitsPerValue: (8 * bytes) / values, shareOf16bitExact: bytes / (values * 2), meanKl: s.scores.meanKl, top1: s.scores.top1Agreement });
    }
    if (a.fit) {
      plans[d.name] ??= { schema: 'adapterlens.plan/1', adapters: {} };
      plans[d.name]!.adapters[a.name] = a.fit.chosen;
      for (const p of a.fit.points) {
        rows.push({ document: d.name, adapter: a.name, strategy: `budget point ${p.strategy.split('@')[0]}`, kind: 'product', bytes: p.bytes, bitsPerValue: (8 * p.bytes) / values, shareOf16bitExact: p.bytes / (values * 2), meanKl: p.meanKl, top1: p.top1Agreement });
      }
    }
  }
  await referenceRows(d.name, report);
}
// The fit of one document applied to the next one: quality on text the fit did not see.
for (const [i, d] of docs.entries()) {
  const from = docs[(i + docs.length - 1) % docs.length]!;
  if (from === d || !plans[from.name]) continue;
  const report = await runComparison(session, manager, request(d.doc, d.cont, ['exact'], { plan: plans[from.name]!.adapters }));
  const values = report.model.numLayers * 2 * report.model.numKvHeads * report.model.headDim * report.documentTokens.length;
  for (const a of report.adapters) {
    const s = a.strategies.find((x) => x.strategy === 'fit')!;
    rows.push({ document: d.name, adapter: a.name, strategy: `fit, plan from the previous document (${s.fitted?.split('@')[0]})`, kind: 'product', bytes: s.bytes, bitsPerValue: (8 * s.bytes) / values, shareOf16bitExact: s.bytes / (values * 2), meanKl: s.scores.meanKl, top1: s.scores.top1Agreement });
  }
}

// ---- reference rows (the issue's table), computed from the caches ---------------------------

async function referenceRows(docName: string, report: Report): Promise<void> {
  const model = await session.loadModel(demoBaseDir);
  const cfg = model.checkpoint.config.native;
  const L = cfg.numLayers, H = cfg.numKvHeads, hd = cfg.headDim;
  const ids = report.documentTokens, T = ids.length;
  const cont = tok.encodePrompt(report.settings.continuation === 'text' ? docs.find((x) => x.name === docName)!.cont : '');
  const cap = T + cont.length + 2;
  const base = model.native.newCache(T);
  await model.native.prefill(base, Int32Array.from(ids), null, { chunkSize: 512, logits: 'none' }, null, null);
  const baseLayers = Array.from({ length: L }, (_, l) => base.readLayer(l));
  const values = L * 2 * H * hd * T;
  for (const name of DEMO_ADAPTERS) {
    const a = await session.loadAdapter(model, path.join(demoAdaptersDir, name));
    const ex = model.native.newCache(T);
    await model.native.prefill(ex, Int32Array.from(ids), a.native, { chunkSize: 512, logits: 'none' }, null, null);
    const exLayers = Array.from({ length: L }, (_, l) => ex.readLayer(l));
    ex.dispose();
    // Each candidate: per layer, K and V rebuilt from base + the quantized delta.
    const candidates: { strategy: string; bytes: number; build: (l: number) => { k: Float32Array; v: Float32Array } }[] = [
      { strategy: 'ref: ΔK/ΔV int2 per token (asymmetric, fp16 scale+zero)', bytes: (L * 2 * H * T * (2 * hd + 32)) / 8, build: (l) => ({ k: perToken(baseLayers[l]!.k, exLayers[l]!.k, H, T, hd), v: perToken(baseLayers[l]!.v, exLayers[l]!.v, H, T, hd) }) },
      { strategy: 'ref: KIVI-style int2 (K per channel, groups of 32 tokens; V per token)', bytes: (L * H * T * (2 * hd + 32)) / 8 + (L * H * hd * (2 * T + 32 * Math.ceil(T / 32))) / 8, build: (l) => ({ k: perChannel(baseLayers[l]!.k, exLayers[l]!.k, H, T, hd, 32), v: perToken(baseLayers[l]!.v, exLayers[l]!.v, H, T, hd) }) },
      { strategy: 'ref: last 64 tokens exact, base elsewhere', bytes: L * 2 * H * Math.min(64, T) * hd * 2, build: (l) => ({ k: lastExact(baseLayers[l]!.k, exLayers[l]!.k, H, T, hd, 64), v: lastExact(baseLayers[l]!.v, exLayers[l]!.v, H, T, hd, 64) }) },
    ];
    const caches: NativeKvCache[] = [];
    const reference = model.native.newCache(cap);
    for (let l = 0; l < L; l++) reference.writeLayer(l, exLayers[l]!.k, exLayers[l]!.v, T);
    caches.push(reference);
    for (const c of candidates) {
      const cache = model.native.newCache(cap);
      for (let l = 0; l < L; l++) {
        const { k, v } = c.build(l);
        cache.writeLayer(l, k, v, T);
      }
      caches.push(cache);
    }
    // As the runner scores with an empty prompt: the document's last token fed again.
    for (const c of caches) c.truncate(T - 1);
    const tokens = Int32Array.from([ids[T - 1]!, ...cont.slice(0, -1)]);
    const items: NativeScoreItem[] = caches.map((cache) => ({ cache, adapter: a.native, tokens, targets: Int32Array.from(cont), reference: 0 }));
    const res = await model.native.score(items, null);
    for (const [i, c] of candidates.entries()) {
      const s = scoresFromEngine(res[i + 1]!);
      rows.push({ document: docName, adapter: name, strategy: c.strategy, kind: 'reference', bytes: c.bytes, bitsPerValue: (8 * c.bytes) / values, shareOf16bitExact: c.bytes / (values * 2), meanKl: s.meanKl, top1: s.top1Agreement });
    }
    for (const c of caches) c.dispose();
  }
  base.dispose();
}

/** base + Δ quantized to 2 bits per (head, token) row, asymmetric (min and step per row). */
function perToken(b: Float32Array, e: Float32Array, H: number, T: number, hd: number): Float32Array {
  const out = new Float32Array(b.length);
  for (let r = 0; r < H * T; r++) {
    let lo = Infinity, hi = -Infinity;
    for (let i = 0; i < hd; i++) {
      const d = e[r * hd + i]! - b[r * hd + i]!;
      lo = Math.min(lo, d);
      hi = Math.max(hi, d);
    }
    const step = (hi - lo) / 3 || 1;
    for (let i = 0; i < hd; i++) {
      const d = e[r * hd + i]! - b[r * hd + i]!;
      out[r * hd + i] = b[r * hd + i]! + lo + Math.min(3, Math.max(0, Math.round((d - lo) / step))) * step;
    }
  }
  return out;
}

/** base + Δ quantized to 2 bits per (head, channel, group of G tokens), asymmetric. */
function perChannel(b: Float32Array, e: Float32Array, H: number, T: number, hd: number, G: number): Float32Array {
  const out = new Float32Array(b.length);
  for (let h = 0; h < H; h++) {
    for (let g0 = 0; g0 < T; g0 += G) {
      const g1 = Math.min(T, g0 + G);
      for (let c = 0; c < hd; c++) {
        let lo = Infinity, hi = -Infinity;
        for (let t = g0; t < g1; t++) {
          const i = (h * T + t) * hd + c;
          lo = Math.min(lo, e[i]! - b[i]!);
          hi = Math.max(hi, e[i]! - b[i]!);
        }
        const step = (hi - lo) / 3 || 1;
        for (let t = g0; t < g1; t++) {
          const i = (h * T + t) * hd + c;
          out[i] = b[i]! + lo + Math.min(3, Math.max(0, Math.round((e[i]! - b[i]! - lo) / step))) * step;
        }
      }
    }
  }
  return out;
}

/** The last n positions exact, the base elsewhere. */
function lastExact(b: Float32Array, e: Float32Array, H: number, T: number, hd: number, n: number): Float32Array {
  const out = Float32Array.from(b);
  for (let h = 0; h < H; h++) for (let t = Math.max(0, T - n); t < T; t++) for (let i = 0; i < hd; i++) out[(h * T + t) * hd + i] = e[(h * T + t) * hd + i]!;
  return out;
}

// ---- output ---------------------------------------------------------------------------------

const fmtKl = (x: number): string => (x === 0 ? '0' : x.toExponential(2));
const lines: string[] = [];
for (const d of docs) {
  lines.push(`### ${d.name} (${d.docTokens} document tokens, ${d.contTokens} continuation tokens)`, '');
  lines.push('"fit (…)" and its budget points are chosen on this continuation itself; "fit, plan from the previous document" applies the choice made on another document.', '');
  lines.push(`| strategy | bits/value | ÷ 16-bit exact | ${DEMO_ADAPTERS.map((a) => `${a}: KL, top-1`).join(' | ')} |`);
  lines.push(`| --- | ---: | ---: | ${DEMO_ADAPTERS.map(() => '---:').join(' | ')} |`);
  const names = [...new Set(rows.filter((r) => r.document === d.name).map((r) => r.strategy.replace(/ \(pca:[^)]*\)$/, '')))];
  for (const n of names) {
    const cells = DEMO_ADAPTERS.map((a) => rows.find((r) => r.document === d.name && r.adapter === a && r.strategy.replace(/ \(pca:[^)]*\)$/, '') === n));
    const bits = cells.map((c) => c?.bitsPerValue ?? NaN);
    const same = bits.every((b) => Math.abs(b - bits[0]!) < 0.01);
    const bitsText = same ? bits[0]!.toFixed(3) : bits.map((b) => b.toFixed(3)).join(' / ');
    const shareText = same ? cells[0]!.shareOf16bitExact.toFixed(4) : cells.map((c) => c!.shareOf16bitExact.toFixed(4)).join(' / ');
    lines.push(`| ${n} | ${bitsText} | ${shareText} | ${cells.map((c) => (c ? `${fmtKl(c.meanKl)}, ${c.top1.toFixed(3)}` : '—')).join(' | ')} |`);
  }
  lines.push('');
}
// Per adapter: the cheapest product row meeting the target on every document, within an
// eighth of a 16-bit exact cache. Rows chosen on the very continuation they are scored on
// (the fit's own row and its budget points) are left out: the fit's honest row is its plan
// applied to another document.
lines.push('### Target (mean KL ≤ 1e-3 and top-1 ≥ 0.99, ≤ 1/8 of a 16-bit exact cache)', '');
lines.push('| adapter | cheapest row meeting it on every document | largest ÷ exact | worst KL | worst top-1 |', '| --- | --- | ---: | ---: | ---: |');
for (const a of DEMO_ADAPTERS) {
  const names = [...new Set(rows.filter((r) => r.adapter === a && r.kind === 'product' && r.strategy !== 'exact' && !/^(fit \(|budget point)/.test(r.strategy)).map((r) => r.strategy.replace(/ \(pca:[^)]*\)$/, '')))];
  let best: { n: string; share: number; kl: number; top1: number } | null = null;
  for (const n of names) {
    const rs = docs.map((d) => rows.find((r) => r.document === d.name && r.adapter === a && r.strategy.replace(/ \(pca:[^)]*\)$/, '') === n));
    if (rs.some((r) => !r || r.meanKl > TARGET.targetKl || r.top1 < TARGET.minTop1)) continue;
    const share = Math.max(...rs.map((r) => r!.shareOf16bitExact));
    if (share > 0.125) continue;
    if (!best || share < best.share) best = { n, share, kl: Math.max(...rs.map((r) => r!.meanKl)), top1: Math.min(...rs.map((r) => r!.top1)) };
  }
  lines.push(best ? `| ${a} | ${best.n} | ${best.share.toFixed(4)} | ${fmtKl(best.kl)} | ${best.top1.toFixed(3)} |` : `| ${a} | none | | | |`);
}
const md = `${lines.join('\n')}\n`;
process.stdout.write(md);
if (values.out) fs.writeFileSync(values.out, JSON.stringify({ createdAt: new Date().toISOString(), docTokens: DOC_TOKENS, contTokens: CONT_TOKENS, documents: docs.map((d) => ({ name: d.name, docTokens: d.docTokens, contTokens: d.contTokens })), target: TARGET, plans, rows }, null, 1));
if (values.md) fs.writeFileSync(values.md, md);
manager.dispose();
session.dispose();
