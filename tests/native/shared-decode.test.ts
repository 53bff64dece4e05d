// The shared-cache decode (DESIGN.md's data flow): sequences that read the document from a
// base cache through a strategy store's correction, in place (model.newView), against the
// materialized rebuild (store.decode → a full cache). Same logits (fp32, 1e-5 relative) and
// tokens for every strategy, GQA and MHA, several mixes of rows in one batch and views of
// different document lengths; teacher-forced scoring on the engine against the TS reference.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type {
  NativeAdapter,
  NativeKvCache,
  NativeKvStore,
  NativeModel,
  NativeModelConfig,
  NativeStrategySpec,
} from '../../main/engine/native-types.js';
import { teacherForcedScores } from '../../main/compare/metrics.js';
import { loadAddon } from '../../main/engine/native-loader.js';
import { baseConfig, greedy, relErr, tokenSeq, writeAdapter, writeCheckpoint } from './tiny-model.js';

const onCuda = process.env.ADAPTERLENS_TEST_DEVICE === 'cuda';
const { addon } = loadAddon(onCuda ? 'cuda' : 'cpu');

const STRATEGIES: NativeStrategySpec[] = [
  { kind: 'base' },
  { kind: 'seed-minikv' },
  { kind: 'lragent' },
  { kind: 'delta-int8' },
  { kind: 'delta-int4' },
  { kind: 'lowrank', rank: 3 },
  { kind: 'hybrid', exactLayers: [1] },
  { kind: 'pca', bitsPerValue: 2 },
  { kind: 'pca', bitsPerValue: 1, exactParts: [0, 3] },
];
const T = 30;
const STEPS = 5;
const PROMPT = [3, 17, 9];
const TOL = { fp32: 1e-5, bf16: 3e-2 } as const;
const DTYPES = onCuda ? (['fp32', 'bf16'] as const) : (['fp32'] as const);

interface Seq {
  what: string;
  adapter: NativeAdapter | null;
  view: NativeKvCache;
  rebuilt: NativeKvCache;
}

for (const dtype of DTYPES)
for (const shape of ['GQA', 'MHA'] as const) {
  const cfg: NativeModelConfig = { ...baseConfig, numLayers: 3, dtype, ...(shape === 'MHA' ? { numKvHeads: 4 } : {}) };
  const bytesPerValue = dtype === 'fp32' ? 4 : 2;

  describe(`shared-cache decode equals the materialized rebuild (${shape}, ${dtype})`, () => {
    let dir: string;
    let model: NativeModel;
    let base: NativeKvCache;
    const adapters: NativeAdapter[] = [];
    const exact: NativeKvCache[] = [];
    const seqs: Seq[] = [];
    const owned: { dispose(): void }[] = [];
    const own = <X extends { dispose(): void }>(x: X): X => (owned.push(x), x);

    before(async () => {
      dir = mkdtempSync(path.join(tmpdir(), 'al-shared-'));
      const ck = writeCheckpoint(dir, 'm', cfg, 'F32', 71);
      model = await addon.loadModel(ck.config, ck.refs, null, null);
      const qv = writeAdapter(dir, 'qv', cfg, ['q_proj', 'v_proj'], 4, 2, 'F32', 72);
      const all = writeAdapter(dir, 'all', cfg, ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], 3, 1.5, 'F32', 73);
      for (const a of [qv, all]) adapters.push(own(await model.loadAdapter(a.spec, null, null)));
      const doc = Int32Array.from(tokenSeq(T, cfg.vocabSize, 74));
      base = own(model.newCache(T));
      await model.prefill(base, doc, null, { chunkSize: 7, logits: 'none' }, null, null);
      for (const a of adapters) {
        const e = own(model.newCache(T));
        await model.prefill(e, doc, a, { chunkSize: 7, logits: 'none', captureLoraV: true }, null, null);
        exact.push(e);
      }
      const capacity = T + PROMPT.length + STEPS + 1;
      for (const [ai, a] of adapters.entries()) {
        // Views of the whole document and of a shorter one (a sequence that re-feeds the
        // document's tail), so rows of one batch read prefixes of different lengths.
        for (const [si, spec] of STRATEGIES.entries()) {
          const store: NativeKvStore = own(await model.encodeStore(spec, base, exact[ai]!, a));
          const length = (ai + si) % 3 === 0 ? T - 4 : T;
          const rebuilt = own(await store.decode(base, capacity));
          rebuilt.truncate(length);
          const view = own(model.newView({ cache: base, store, length }, capacity));
          seqs.push({ what: `adapter ${ai} · ${spec.kind} · prefix ${length}`, adapter: a, view, rebuilt });
        }
        const rebuilt = own(exact[ai]!.fork(capacity));
        rebuilt.truncate(T - ai);
        seqs.push({ what: `adapter ${ai} · exact`, adapter: a, view: own(model.newView({ cache: exact[ai]!, length: T - ai }, capacity)), rebuilt });
      }
      // A row without an adapter straight over the base cache.
      const rebuilt = own(base.fork(capacity));
      seqs.push({ what: 'no adapter · base', adapter: null, view: own(model.newView({ cache: base, length: T }, capacity)), rebuilt });
    });

    after(() => {
      for (const x of owned.reverse()) x.dispose();
      model?.dispose();
      rmSync(dir, { recursive: true, force: true });
    });

    test('a view reads the same K/V as the rebuilt cache', () => {
      for (const s of seqs) {
        assert.equal(s.view.length, s.rebuilt.length, s.what);
        for (let l = 0; l < cfg.numLayers; l++) {
          const a = s.view.readLayer(l), b = s.rebuilt.readLayer(l);
          const tol = dtype === 'fp32' ? 1e-6 : 1e-2;  // bf16: the view's prefix is rebuilt through the store's own rounding
          assert.ok(relErr(a.k, b.k) < tol && relErr(a.v, b.v) < tol, `${s.what}: layer ${l}`);
        }
        const own = (s.view.capacity - s.view.length) * cfg.numLayers * 2 * cfg.numKvHeads * cfg.headDim * bytesPerValue;
        assert.equal(s.view.bytes, own, `${s.what}: a view holds only its own positions`);
      }
    });

    // Mixes of rows: all together, one adapter's derived rows only, and a single row.
    const mixes: { name: string; pick: (i: number) => boolean }[] = [
      { name: 'every sequence in one batch', pick: () => true },
      { name: "adapter 1's sequences", pick: (i) => i >= STRATEGIES.length + 1 && i < 2 * (STRATEGIES.length + 1) },
      { name: 'a single hybrid row', pick: (i) => i === STRATEGIES.length - 1 },
    ];
    for (const mix of mixes) {
      test(`prompt feed + ${STEPS} decode steps, ${mix.name}: same logits and tokens`, async () => {
        const chosen = seqs.filter((_, i) => mix.pick(i));
        // Fresh copies of both sides at the same lengths, so each mix starts from the document.
        const views = chosen.map((s) => own(s.view.fork(s.view.capacity)));
        const rebuilt = chosen.map((s) => own(s.rebuilt.fork(s.rebuilt.capacity)));
        const feed = Int32Array.from(PROMPT.slice(0, -1));
        await model.prefillBatch(chosen.map((s, i) => ({ cache: views[i]!, adapter: s.adapter, tokens: feed })), { maxRows: 8 }, null, null);
        for (const [i, s] of chosen.entries()) await model.prefill(rebuilt[i]!, feed, s.adapter, { chunkSize: 4, logits: 'none' }, null, null);
        // Both sides are fed the rebuilt side's tokens (in bf16 a near tie may break differently).
        let next = chosen.map(() => PROMPT[PROMPT.length - 1]!);
        for (let step = 0; step < STEPS; step++) {
          const rv = await model.decode(chosen.map((s, i) => ({ cache: views[i]!, adapter: s.adapter, token: next[i]!, sampling: greedy })), { logits: true });
          const rr = await model.decode(chosen.map((s, i) => ({ cache: rebuilt[i]!, adapter: s.adapter, token: next[i]!, sampling: greedy })), { logits: true });
          const V = cfg.vocabSize;
          for (const [i, s] of chosen.entries()) {
            const e = relErr(rv.logits!.subarray(i * V, (i + 1) * V), rr.logits!.subarray(i * V, (i + 1) * V));
            assert.ok(e < TOL[dtype], `${s.what}, step ${step}: logits rel err ${e}`);
          }
          if (dtype === 'fp32') {
            assert.deepEqual(Array.from(rv.tokens), Array.from(rr.tokens), `step ${step}: tokens`);
            for (let i = 0; i < chosen.length; i++) assert.ok(Math.abs(rv.probs[i]! - rr.probs[i]!) < 1e-5, `step ${step}: probability`);
          }
          next = Array.from(rr.tokens);
        }
      });
    }

    test('on-device teacher-forced scores equal the TS reference from host logits', async () => {
      const cont = tokenSeq(6, cfg.vocabSize, 75);
      const fed = Int32Array.from([PROMPT[PROMPT.length - 1]!, ...cont.slice(0, -1)]);
      const ex = STRATEGIES.length; // adapter 0's exact sequence
      const pick = [ex, 1, 3, 5];
      const items = pick.map((i) => ({ cache: own(seqs[i]!.view.fork(seqs[i]!.view.capacity)), adapter: seqs[i]!.adapter, tokens: fed, targets: Int32Array.from(cont), reference: 0 }));
      const results = await model.score(items, null);
      const logits = [];
      for (const i of pick) {
        const c = own(seqs[i]!.view.fork(seqs[i]!.view.capacity));
        logits.push((await model.prefill(c, fed, seqs[i]!.adapter, { chunkSize: 3, logits: 'all' }, null, null))!);
      }
      for (const [j, r] of results.entries()) {
        const want = teacherForcedScores(logits[0]!, logits[j]!, cont, cfg.vocabSize);
        for (let p = 0; p < cont.length; p++) {
          // bf16: the batch and the single prefill may take different kernels (rounding apart).
          const [abs, rel] = dtype === 'fp32' ? [1e-6, 1e-4] : [1e-3, 5e-2];
          assert.ok(Math.abs(r.kl[p]! - want.kl[p]!) < abs + rel * want.kl[p]!, `item ${j} position ${p}: KL ${r.kl[p]} vs ${want.kl[p]}`);
          if (dtype === 'fp32') assert.equal(r.top1[p], want.top1[p], `item ${j} position ${p}: top-1`);
        }
        if (j === 0) assert.ok(r.kl.every((x) => x === 0) && r.top1.every((x) => x === 1), 'the reference against itself');
      }
      assert.equal(items[0]!.cache.length, seqs[ex]!.view.length + fed.length, 'scoring appends to the sequence');
    });

    test('views refuse what would break the shared prefix', async () => {
      const v = seqs[1]!.view;
      assert.throws(() => v.truncate(v.length - v.length), /shared prefix/);
      assert.throws(() => base.truncate(2), /view\(s\) read its first/);
      assert.throws(() => v.writeLayer(0, new Float32Array(0), new Float32Array(0), 0), /document positions are shared/);
      assert.throws(() => model.newView({ cache: v, length: 2 }, 10), /plain cache/);
      assert.throws(() => model.newView({ cache: base, length: T + 1 }, 40), /prefix\.length must be an integer in \[0, 30\]/);
      await assert.rejects(model.encodeStore({ kind: 'base' }, v, exact[0]!, adapters[0]!), /base and exact must be plain caches/);
    });
  });
}
