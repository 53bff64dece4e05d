// The comparison runner: one CompareRequest → one adapterlens.report/1 Report. It is the
// code behind `adapterlens compare`, the app and the benchmark.
//
//   base prefill once (cached) → per adapter: exact prefill (cached) → per strategy:
//   encode a store (cached) and measure base + store against exact (on the device, one
//   layer rebuilt at a time) → one batched generation over every (adapter, strategy): each
//   sequence is a view that reads the document from the shared base cache (or its
//   adapter's exact cache) through its store, never a rebuilt copy → teacher-forced scoring
//   of every strategy on exact's continuation, in one batch, on the device.
//
// Everything the run allocates is either a cache-manager lease or a transient owned by
// the run's scope; scope.close() in `finally` frees both, so a cancel at any point
// leaves nothing pinned.
import path from 'node:path';
import { CacheManager, cacheKey, type RunScope } from '../cache/cache-manager.js';
import { checkContext, checkFits, estimateMemory, kvCacheBytes } from '../cache/memory-estimate.js';
import { cancelTokenFor, throwIfAborted } from '../engine/cancel.js';
import { untilAborted } from '../cancellation.js';
import { generate, type GenerationRequest } from '../engine/generate.js';
import type { NativeErrorSums, NativeKvCache, NativeKvStore, NativeScoreItem, NativeStrategySpec } from '../engine/native-types.js';
import { appVersion } from '../paths.js';
import type { CompareProgress, CompareRequest, CompareStage, TokenEvent } from '../../shared/compare.js';
import { REPORT_SCHEMA, type AdapterResult, type FitPoint, type FitResult, type Generation, type LayerErrors, type Report, type Scores, type StrategyResult } from '../../shared/report.js';
import { parseStrategy, pcaWeights, strategyId, type StrategyId } from '../../shared/strategies.js';
import { CompareInputError } from './input-error.js';
import { preflightRequest } from './preflight.js';
import { firstDivergence, headGrid, layerErrors, scoresFromEngine, selfErrors, tokenBinFor, tokenGrid } from './metrics.js';
import { cachedValues, chooseFit, fitIds, fitRates, PROBES_PER_PASS, probeBits, probeWeights } from './fit.js';
import type { EngineSession, LoadedAdapter, LoadedModel } from './session.js';

export interface RunHooks {
  signal?: AbortSignal;
  onProgress?: (p: CompareProgress) => void;
  onToken?: (t: TokenEvent) => void;
}

// Rows per pass of multi-sequence prefills (prompt feed); scoring passes are sized by the engine.
const BATCH_ROWS = 1024;

export { CompareInputError };

function adapterName(choice: { name?: string; dir: string }): string {
  return choice.name?.trim() || path.basename(path.resolve(choice.dir));
}

/** Per-strategy work of one adapter, filled in stage by stage. */
interface Cell {
  adapter: number;
  strategy: StrategyId;
  parsed: ReturnType<typeof parseStrategy>;
  bytes: number;
  errors: NativeErrorSums | null;
  outsideSpan: Float64Array | null;
  exactLayers?: number[];
  /** fit: the pca id chosen. */
  fitted?: StrategyId;
  /** The view this cell generates from: the shared document cache + its store, own positions after it (transient). */
  cache: NativeKvCache | null;
  tokens: number[];
  probs: number[];
  /** Its tokens' display pieces, decoded as they streamed (the report's pieces). */
  pieces: string[];
  scores: Scores | null;
}

/** The engine's spec of a pca id. */
function pcaSpec(bitsPerValue: number, exponents: number[] | null): NativeStrategySpec {
  return { kind: 'pca', bitsPerValue, ...(exponents ? { weights: pcaWeights(exponents) } : {}) };
}

export async function runComparison(
  session: EngineSession,
  cacheManager: CacheManager,
  request: CompareRequest,
  hooks: RunHooks = {},
): Promise<Report> {
  const { signal } = hooks;
  const timings: { stage: string; ms: number }[] = [];
  let stageStart = performance.now();
  let currentStage: CompareStage = 'load';
  const progress = (stage: CompareStage, done: number, total: number, detail?: string): void => {
    if (stage !== currentStage) {
      timings.push({ stage: currentStage, ms: performance.now() - stageStart });
      stageStart = performance.now();
      currentStage = stage;
    }
    hooks.onProgress?.({ stage, done, total, detail });
  };

  const strategies: StrategyId[] = [...new Set<StrategyId>(['exact', ...request.strategies.map((s) => strategyId(parseStrategy(s))), ...(request.fit ? (['fit'] as const) : [])])];
  const fit = request.fit;
  if (strategies.includes('fit') && !fit) {
    throw new CompareInputError('the fit strategy needs a budget or a target: --budget-bytes N, --target-kl X or --plan FILE');
  }
  if (fit && fit.budgetBytes === undefined && fit.targetKl === undefined && !fit.plan) {
    throw new CompareInputError('fit to budget needs a budget in bytes, a target KL or a saved plan');
  }
  if (request.adapters.length === 0) throw new CompareInputError('choose at least one adapter to compare');
  const names = request.adapters.map(adapterName);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new CompareInputError(`two adapters are named "${dup}": give them distinct names (--adapter NAME=DIR)`);
  if (!Number.isInteger(request.maxNewTokens) || request.maxNewTokens < 0) throw new CompareInputError('max new tokens must be a non-negative integer');
  if (session.engine.backend === 'cpu' && request.dtype !== 'fp32') {
    throw new CompareInputError(`the CPU engine computes in fp32 only; ${request.dtype} needs the CUDA build (use --dtype fp32)`);
  }

  // ---- check, then load -------------------------------------------------------
  // Before any weight is loaded, off the main thread: the model's config, the tokenizer
  // against it, the document against the context (preflight.ts). The tokenizer remembers
  // what it encoded there, so the encode below costs nothing. The folders' hashing starts
  // first, beside it.
  // A run that fails before its loads are done releases the hold too: the session may then stop that hashing.
  const prefetch = session.prefetchDigests([request.modelDir, ...request.adapters.map((a) => a.dir)], signal);
  let model: LoadedModel;
  const adapters: LoadedAdapter[] = [];
  try {
    await preflightRequest(session, request, signal);
    progress('load', 0, request.adapters.length + 1, 'model');
    model = await session.loadModel(
      request.modelDir,
      signal,
      (what, d, t) => progress('load', 0, request.adapters.length + 1, `${what} ${d}/${t}`),
      request.dtype,
    );
    for (const [i, choice] of request.adapters.entries()) {
      progress('load', i + 1, request.adapters.length + 1, names[i]);
      adapters.push(await session.loadAdapter(model, choice.dir, signal));
    }
  } finally {
    prefetch.release();
  }
  // Bytes per cached K/V value and activation in the compute dtype.
  const bytesPerValue = request.dtype === 'fp32' ? 4 : 2;
  const cfg = model.checkpoint.config.native;
  const tokenizerDir = request.tokenizerDir ?? model.dir;
  const tokenizer = await session.loadTokenizer(tokenizerDir, signal);
  // Its digest (often the model folder's, being hashed already) is awaited by the report only.
  const tokenizerDigest = session.digest(path.resolve(tokenizerDir), signal);
  tokenizerDigest.catch(() => undefined); // awaited below; a run that stops first must not leave it unhandled

  // ---- tokenize and check before allocating ------------------------------------
  progress('tokenize', 0, 1);
  const documentTokens = await tokenizer.encodeDocumentAsync(request.documentText, { signal });
  const promptTokens = await tokenizer.encodePromptAsync(request.promptText, { signal });
  if (documentTokens.length < 1 || (documentTokens.length < 2 && promptTokens.length === 0)) {
    throw new CompareInputError('the document is empty: paste the text the adapters should share');
  }
  const T = documentTokens.length;
  // The continuation every strategy is teacher-forced on: the given text, or exact's generation.
  const givenContinuation = request.continuationText ? await tokenizer.encodePromptAsync(request.continuationText, { signal }) : null;
  const continuationRoom = Math.max(request.maxNewTokens, givenContinuation?.length ?? 0);
  const contextMessage = checkContext(T + promptTokens.length + continuationRoom, cfg.maxPositionEmbeddings);
  if (contextMessage) throw new CompareInputError(contextMessage);
  const estimate = estimateMemory({
    model: cfg,
    weightsBytes: model.native.bytes,
    documentTokens: T,
    promptTokens: promptTokens.length,
    maxNewTokens: continuationRoom,
    adapters: adapters.map((a) => ({ vRanks: a.vRanks, paramBytes: a.native.bytes })),
    strategies,
    bytesPerValue,
  });
  const fits = checkFits(estimate, cacheManager.usage().budgetBytes);
  if (fits) throw new CompareInputError(fits);
  for (const s of strategies) {
    const p = parseStrategy(s);
    if (p.kind === 'hybrid' && p.exactLayers > cfg.numLayers) {
      throw new CompareInputError(`${s}: the model has only ${cfg.numLayers} layers`);
    }
  }
  progress('tokenize', 1, 1);

  // An empty prompt still needs one token to feed: the document's last token, fed again
  // over a cache one shorter (its K/V are recomputed at the same position).
  const feed = promptTokens.length > 0 ? promptTokens : [documentTokens[T - 1]!];
  const leadLength = promptTokens.length > 0 ? T : T - 1;
  const capacity = leadLength + feed.length + continuationRoom + 1;
  if (fit?.plan) {
    for (const n of names) {
      const id = fit.plan[n];
      if (!id) throw new CompareInputError(`the plan has no choice for adapter "${n}": fit it again, or name the adapter as in the plan`);
      const p = parseStrategy(id);
      if (p.kind !== 'pca') throw new CompareInputError(`the plan's choice for "${n}" is ${id}, not a pca store`);
    }
  }

  // Closed in `finally` only, never on abort: native calls still running when the signal
  // fires stop at their own cancel token and must find their caches alive.
  const scope: RunScope = cacheManager.scope();
  try {
    const addon = session.engine.addon;
    // Keyed by the files as loaded (their stamps; the SHA-256 may still be in the making), and
    // by dtype: caches and stores of one model in two dtypes must not share keys.
    const modelHash = `${model.identity}@${model.dtype}`;
    // One token for the run's own native calls (one abort listener, not one per call).
    const runCancel = cancelTokenFor(addon, signal);
    // Prefill chunks the engine's device is fastest with (thousands of tokens on a GPU); progress
    // and cancel are checked between them.
    const prefillChunk = addon.info().prefillChunk;

    // ---- base prefill (once per document, cached across runs) -----------------------
    progress('base-prefill', 0, T);
    const base = (
      await scope.acquire(cacheKey({ kind: 'base-cache', modelHash, tokens: documentTokens }), 'base-cache', 'base cache', async (sig) => {
        const cache = model.native.newCache(T);
        try {
          await model.native.prefill(cache, Int32Array.from(documentTokens), null, { chunkSize: prefillChunk, logits: 'none' },
            (d, t) => progress('base-prefill', d, t), cancelTokenFor(addon, sig));
        } catch (e) {
          cache.dispose();
          throw e;
        }
        return cache;
      }, { signal })
    ).value;
    progress('base-prefill', T, T);

    // ---- adapter prefills (exact caches, cached) ---------------------------------------
    const exact: NativeKvCache[] = [];
    for (const [i, a] of adapters.entries()) {
      progress('adapter-prefill', i * T, adapters.length * T, names[i]);
      const lease = await scope.acquire(
        cacheKey({ kind: 'exact-cache', modelHash, adapterHash: a.identity, tokens: documentTokens }),
        'exact-cache',
        `exact cache: ${names[i]}`,
        async (sig) => {
          const cache = model.native.newCache(T);
          try {
            await model.native.prefill(cache, Int32Array.from(documentTokens), a.native,
              { chunkSize: prefillChunk, logits: 'none', captureLoraV: true },
              (d) => progress('adapter-prefill', i * T + d, adapters.length * T, names[i]), cancelTokenFor(addon, sig));
          } catch (e) {
            cache.dispose();
            throw e;
          }
          return cache;
        },
        { signal },
      );
      exact.push(lease.value);
    }
    progress('adapter-prefill', adapters.length * T, adapters.length * T);

    // ---- encode stores, rebuild, measure -----------------------------------------------
    const storeFor = async (ai: number, spec: NativeStrategySpec, id: string): Promise<NativeKvStore> => {
      const a = adapters[ai]!;
      const lease = await scope.acquire(
        cacheKey({ kind: 'store', modelHash, adapterHash: a.identity, tokens: documentTokens, strategy: id }),
        'store',
        `${id}: ${names[ai]}`,
        () => model.native.encodeStore(spec, base, exact[ai]!, a.native),
        { signal },
      );
      return lease.value;
    };
    const tokenBin = tokenBinFor(T);
    // Base + store over the whole document, measured against exact without a rebuilt cache
    // (the engine rebuilds one layer at a time into scratch and reduces on the device).
    const measure = async (store: NativeKvStore | null, ai: number): Promise<NativeErrorSums> => {
      const view = scope.own(model.native.newView({ cache: store ? base : exact[ai]!, store, length: T }, T));
      try {
        return await model.native.compareCaches(view, exact[ai]!, { tokenBin });
      } finally {
        scope.free(view);
      }
    };
    const cells: Cell[] = [];
    const total = adapters.length * strategies.length;
    for (const [ai, a] of adapters.entries()) {
      // seed-minikv's own per-layer errors choose hybrid's exact layers.
      let seedErrors: NativeErrorSums | null = null;
      const seedErrorsFor = async (): Promise<NativeErrorSums> => {
        seedErrors ??= await measure(await storeFor(ai, { kind: 'seed-minikv' }, 'seed-minikv'), ai);
        return seedErrors;
      };
      for (const s of strategies) {
        throwIfAborted(signal);
        progress('encode', cells.length, total, `${names[ai]} · ${s}`);
        const parsed = parseStrategy(s);
        if (parsed.kind === 'fit') continue;  // fitted after the generation (it needs the continuation)
        const cell: Cell = { adapter: ai, strategy: s, parsed, bytes: 0, errors: null, outsideSpan: null, cache: null, tokens: [], probs: [], pieces: [], scores: null };
        let store: NativeKvStore | null = null;
        if (parsed.kind === 'exact') {
          cell.bytes = kvCacheBytes(cfg, T, bytesPerValue);
        } else {
          let spec: NativeStrategySpec;
          if (parsed.kind === 'hybrid') {
            const perLayer = layerErrors(await seedErrorsFor());
            const worst = perLayer
              .map((l) => ({ layer: l.layer, err: Math.hypot(l.kRelErr, l.vRelErr) }))
              .sort((x, y) => y.err - x.err || x.layer - y.layer)
              .slice(0, parsed.exactLayers)
              .map((x) => x.layer)
              .sort((x, y) => x - y);
            cell.exactLayers = worst;
            spec = { kind: 'hybrid', exactLayers: worst };
          } else if (parsed.kind === 'lowrank') {
            spec = { kind: 'lowrank', rank: parsed.rank };
          } else if (parsed.kind === 'pca') {
            spec = pcaSpec(parsed.bitsPerValue, parsed.weightExponents);
          } else {
            spec = { kind: parsed.kind as 'base' | 'seed-minikv' | 'lragent' | 'delta-int8' | 'delta-int4' };
          }
          store = await storeFor(ai, spec, parsed.kind === 'hybrid' ? `${s}@${cell.exactLayers!.join(',')}` : s);
          cell.bytes = store.bytes;
          if (parsed.kind === 'seed-minikv') cell.outsideSpan = await model.native.outsideSpan(base, exact[ai]!, a.native);
        }
        progress('measure', cells.length, total, `${names[ai]} · ${s}`);
        // exact against itself is measured from another cell's norms below, when there is one.
        if (store) cell.errors = await measure(store, ai);
        if (parsed.kind === 'seed-minikv') seedErrors = cell.errors;
        // The sequence this cell generates from: the document read in place (exact's own
        // cache, or the shared base cache through the store), room for prompt and new tokens.
        cell.cache = scope.own(model.native.newView({ cache: store ? base : exact[ai]!, store, length: leadLength }, capacity));
        cells.push(cell);
      }
      const own = cells.filter((c) => c.adapter === ai);
      const measured = own.find((c) => c.errors);
      for (const c of own) c.errors ??= measured ? selfErrors(measured.errors!) : await measure(null, ai);
    }
    progress('measure', total, total);

    // Teacher-forced scores of stores (null: exact itself) of adapter ai on its continuation,
    // against exact, in one batch: fresh views fed the prompt, then scored.
    const scoreStores = async (ai: number, stores: NativeKvStore[]): Promise<Scores[]> => {
      const continuation = continuationOf(ai);
      const views = [null, ...stores].map((st) => scope.own(model.native.newView({ cache: st ? base : exact[ai]!, store: st, length: leadLength }, capacity)));
      try {
        if (feed.length > 1) {
          await model.native.prefillBatch(views.map((cache) => ({ cache, adapter: adapters[ai]!.native, tokens: Int32Array.from(feed.slice(0, -1)) })), { maxRows: BATCH_ROWS }, null, runCancel);
        }
        if (continuation.length === 0) return stores.map(() => ({ kl: [], top1: [], meanKl: 0, top1Agreement: 0, perplexityRatio: 1 }));
        const tokens = Int32Array.from([feed[feed.length - 1]!, ...continuation.slice(0, -1)]);
        const targets = Int32Array.from(continuation);
        const res = await model.native.score(views.map((cache) => ({ cache, adapter: adapters[ai]!.native, tokens, targets, reference: 0 })), runCancel);
        return res.slice(1).map(scoresFromEngine);
      } finally {
        for (const v of views) scope.free(v);
      }
    };
    // Fit to budget for one adapter (main/compare/fit.ts): probes, weighted points, the choice.
    const fitAdapter = async (ai: number, a: LoadedAdapter): Promise<{ result: FitResult; store: NativeKvStore }> => {
      const f = fit!;
      const values = cachedValues(cfg, T);
      const target = { budgetBytes: f.budgetBytes ?? null, targetKl: f.targetKl ?? null, minTop1: f.minTop1 ?? null };
      const planned = f.plan?.[names[ai]!];
      if (planned) {
        const p = parseStrategy(planned);
        if (p.kind !== 'pca') throw new Error(`the plan's choice for "${names[ai]}" is not a pca store`); // checked before any work (above): narrows the type
        const store = await storeFor(ai, pcaSpec(p.bitsPerValue, p.weightExponents), planned);
        const [sc] = await scoreStores(ai, [store]);
        const point: FitPoint = { strategy: planned, bytes: store.bytes, meanKl: sc!.meanKl, top1Agreement: sc!.top1Agreement };
        const met = (f.budgetBytes === undefined || store.bytes <= f.budgetBytes) && (f.targetKl === undefined || sc!.meanKl <= f.targetKl) && (f.minTop1 === undefined || sc!.top1Agreement >= f.minTop1);
        return { result: { ...target, probes: [], points: [point], chosen: planned, met, reason: 'the saved plan' }, store };
      }
      const L = cfg.numLayers;
      const pb = probeBits(f, values);
      const probes: FitResult['probes'] = [];
      for (let p0 = 0; p0 < 2 * L; p0 += PROBES_PER_PASS) {
        throwIfAborted(signal);
        progress('fit', ai * 2 * L + p0, adapters.length * 2 * L, `${names[ai]} · sensitivity of layers ${Math.floor(p0 / 2)}–${Math.floor(Math.min(2 * L, p0 + PROBES_PER_PASS) / 2) - 1}`);
        const parts = Array.from({ length: Math.min(PROBES_PER_PASS, 2 * L - p0) }, (_, i) => p0 + i);
        const stores: NativeKvStore[] = [];
        try {
          for (const p of parts) {
            const exactParts = Array.from({ length: 2 * L }, (_, q) => q).filter((q) => q !== p);
            stores.push(await model.native.encodeStore({ kind: 'pca', bitsPerValue: pb, exactParts }, base, exact[ai]!, a.native));
          }
          const sc = await scoreStores(ai, stores);
          for (const [i, p] of parts.entries()) {
            const errs = await measure(stores[i]!, ai);
            const l = Math.floor(p / 2);
            let sq = 0;
            for (let h = 0; h < errs.numKvHeads; h++) sq += (p % 2 ? errs.vDiffByHead : errs.kDiffByHead)[l * errs.numKvHeads + h]!;
            probes.push({ layer: l, kv: p % 2 ? 'V' : 'K', meanKl: sc[i]!.meanKl, sqErr: sq });
          }
        } finally {
          for (const st of stores) st.dispose();
        }
      }
      const weights = probeWeights(probes);
      const ids = fitIds(fitRates(f, values), weights);
      progress('fit', (ai + 1) * 2 * L, adapters.length * 2 * L, `${names[ai]} · ${ids.length} budget points`);
      // fitIds yields pca ids only: stores[i] is ids[i]'s store.
      const stores: NativeKvStore[] = [];
      for (const id of ids) {
        const p = parseStrategy(id);
        if (p.kind !== 'pca') throw new Error(`fit: ${id} is not a pca id`);
        stores.push(await storeFor(ai, pcaSpec(p.bitsPerValue, p.weightExponents), id));
      }
      const sc = await scoreStores(ai, stores);
      const points: FitPoint[] = ids.map((id, i) => ({ strategy: id, bytes: stores[i]!.bytes, meanKl: sc[i]!.meanKl, top1Agreement: sc[i]!.top1Agreement }));
      points.sort((x, y) => x.bytes - y.bytes);
      const choice = chooseFit(points, f);
      const store = stores[ids.indexOf(choice.chosen)]!;
      return { result: { ...target, probes, points, ...choice }, store };
    };

    // ---- one batched generation over every (adapter, strategy) -------------------------
    const eos = tokenizer.eosId;
    const stopTokens = request.stopAtEos && eos !== null ? [eos] : [];
    const sampling = { temperature: request.temperature, topP: request.topP, seed: request.seed };
    const requests: GenerationRequest[] = cells.map((c) => ({
      cache: c.cache!,
      adapter: adapters[c.adapter]!.native,
      feedTokens: feed,
      sampling,
      maxNewTokens: request.maxNewTokens,
      stopTokens,
    }));
    // One batched generation over `rows` (requests[i] is rows[i]'s): each token into its cell
    // and out as a live event once its piece of text is decoded (one token at a time, on a
    // tokenize worker: piece-streams.ts); those pieces are the report's too.
    const generateRows = async (rows: Cell[], rowRequests: GenerationRequest[], onStep?: () => void): Promise<void> => {
      // A row's index-th token came at step `index` (rows all start at step 0, generate.ts).
      const streams = tokenizer.pieceStreams(rows.length, {
        signal,
        onPiece: (seq, piece, index) => {
          const c = rows[seq]!;
          hooks.onToken?.({ adapter: c.adapter, strategy: c.strategy, step: index, token: c.tokens[index]!, piece, prob: c.probs[index]! });
        },
      });
      try {
        await generate(model.native, rowRequests, {
          signal,
          cancel: runCancel,
          maxRows: BATCH_ROWS,
          onToken: (seq, token, _step, prob) => {
            const c = rows[seq]!;
            c.tokens.push(token);
            c.probs.push(prob);
            // Decoded whether or not anyone listens live: the report takes these pieces. A
            // decode that failed ends the generation here rather than at its end.
            streams.throwIfFailed();
            streams.push(seq, token);
            onStep?.();
          },
        });
      } catch (e) {
        streams.stop();
        throw e;
      }
      const pieces = await streams.finish();
      rows.forEach((c, i) => (c.pieces = pieces[i]!));
    };
    progress('generate', 0, cells.length * request.maxNewTokens);
    let generated = 0;
    await generateRows(cells, requests, () => progress('generate', ++generated, cells.length * request.maxNewTokens));

    // ---- fit to budget (per adapter), then its rows generate ---------------------------------
    const continuationOf = (ai: number): number[] =>
      givenContinuation ?? cells.find((c) => c.adapter === ai && c.strategy === 'exact')!.tokens;
    const fits: (FitResult | null)[] = adapters.map(() => null);
    if (fit) {
      const fitCells: Cell[] = [];
      for (const [ai, a] of adapters.entries()) {
        throwIfAborted(signal);
        const r = await fitAdapter(ai, a);
        fits[ai] = r.result;
        const cell: Cell = { adapter: ai, strategy: 'fit', parsed: { kind: 'fit' }, bytes: r.store.bytes, errors: null, outsideSpan: null, cache: null, tokens: [], probs: [], pieces: [], scores: null, fitted: r.result.chosen };
        cell.errors = await measure(r.store, ai);
        cell.cache = scope.own(model.native.newView({ cache: base, store: r.store, length: leadLength }, capacity));
        fitCells.push(cell);
      }
      await generateRows(fitCells, fitCells.map((c) => ({ cache: c.cache!, adapter: adapters[c.adapter]!.native, feedTokens: feed, sampling, maxNewTokens: request.maxNewTokens, stopTokens })));
      cells.push(...fitCells);
    }

    // ---- teacher-forced scoring on exact's continuation, every cell in one batch -------------
    // Each cell's view goes back to its prompt (minus its last token), then is fed
    // [last prompt token, exact's continuation minus its last token]: row j predicts
    // continuation[j], scored against the exact cell's row j on the device.
    progress('score', 0, cells.length);
    const exactCell = (ai: number): number => cells.findIndex((c) => c.adapter === ai && c.strategy === 'exact');
    const items: NativeScoreItem[] = [];
    const scored: Cell[] = [];
    for (const c of cells) {
      const continuation = continuationOf(c.adapter);
      if (continuation.length === 0) {
        c.scores = { kl: [], top1: [], meanKl: 0, top1Agreement: 0, perplexityRatio: 1 };
        continue;
      }
      c.cache!.truncate(leadLength + feed.length - 1);
      scored.push(c);
    }
    for (const c of scored) {
      const continuation = continuationOf(c.adapter);
      items.push({
        cache: c.cache!,
        adapter: adapters[c.adapter]!.native,
        tokens: Int32Array.from([feed[feed.length - 1]!, ...continuation.slice(0, -1)]),
        targets: Int32Array.from(continuation),
        reference: scored.indexOf(cells[exactCell(c.adapter)]!),
      });
    }
    if (items.length > 0) {
      throwIfAborted(signal);
      const results = await model.native.score(items, runCancel);
      for (const [i, c] of scored.entries()) c.scores = scoresFromEngine(results[i]!);
    }
    progress('score', cells.length, cells.length);
    timings.push({ stage: currentStage, ms: performance.now() - stageStart });

    // ---- the report -------------------------------------------------------------------
    // The files' SHA-256, hashed in the background since the load: on a first run of a large
    // checkpoint the run may wait here for the rest of it.
    const generatedTexts = await tokenizer.decodeAsync(cells.map((c) => c.tokens), { skipSpecialTokens: true, signal });
    progress('score', cells.length, cells.length, 'SHA-256 of the files for the report');
    const digestsWait = performance.now();
    const [modelDigest, tokenizerFiles, ...adapterDigests] = await untilAborted(Promise.all([model.digest, tokenizerDigest, ...adapters.map((a) => a.digest)]), signal);
    // Shown as its own line: the hashing that did not fit under the run's work.
    timings.push({ stage: 'digests', ms: performance.now() - digestsWait });
    const info = session.engine.addon.info();
    const adapterResults: AdapterResult[] = adapters.map((a, ai) => {
      const adapterCells = cells.filter((c) => c.adapter === ai).sort((x, y) => strategies.indexOf(x.strategy) - strategies.indexOf(y.strategy));
      const exactTokens = adapterCells.find((c) => c.strategy === 'exact')!.tokens;
      return {
        name: names[ai]!,
        dir: a.dir,
        sha256: Object.fromEntries(adapterDigests[ai]!.files.map((f) => [f.name, f.sha256])),
        rank: a.summary.r,
        alpha: a.summary.alpha,
        targetModules: a.summary.targetModules,
        strategies: adapterCells.map((c): StrategyResult => {
          const layers: LayerErrors[] = layerErrors(c.errors!);
          if (c.outsideSpan) for (const l of layers) l.outsideSpan = Number.isNaN(c.outsideSpan[l.layer]!) ? null : c.outsideSpan[l.layer]!;
          const generation: Generation = {
            tokens: c.tokens,
            text: generatedTexts[cells.indexOf(c)]!,
            pieces: c.pieces,
            probs: c.probs,
            firstDivergence: firstDivergence(c.tokens, exactTokens),
          };
          return {
            strategy: c.strategy,
            bytes: c.bytes,
            layers,
            heads: headGrid(c.errors!),
            tokens: tokenGrid(c.errors!),
            generation,
            scores: c.scores!,
            ...(c.exactLayers ? { exactLayers: c.exactLayers } : {}),
            ...(c.fitted ? { fitted: c.fitted } : {}),
          };
        }),
        ...(fits[ai] ? { fit: fits[ai]! } : {}),
      };
    });
    const ck = model.checkpoint;
    return {
      schema: REPORT_SCHEMA,
      createdAt: new Date().toISOString(),
      versions: { adapterlens: appVersion, engine: info.engineVersion, node: process.versions.node },
      backend: { kind: session.engine.backend, device: info.device, fallbackReason: session.engine.fallbackReason },
      settings: {
        strategies,
        maxNewTokens: request.maxNewTokens,
        dtype: request.dtype,
        device: request.device,
        temperature: request.temperature,
        topP: request.topP,
        seed: request.seed,
        stopAtEos: request.stopAtEos,
        continuation: givenContinuation ? 'text' : 'exact-generation',
        ...(fit ? { fit: { budgetBytes: fit.budgetBytes ?? null, targetKl: fit.targetKl ?? null, minTop1: fit.minTop1 ?? null, planned: !!fit.plan } } : {}),
      },
      model: {
        name: path.basename(model.dir),
        dir: model.dir,
        architecture: ck.config.architecture,
        sha256: Object.fromEntries(modelDigest.files.map((f) => [f.name, f.sha256])),
        numLayers: cfg.numLayers,
        numHeads: cfg.numHeads,
        numKvHeads: cfg.numKvHeads,
        headDim: cfg.headDim,
        hiddenSize: cfg.hiddenSize,
        vocabSize: cfg.vocabSize,
        maxPositionEmbeddings: cfg.maxPositionEmbeddings,
        parameters: ck.parameterCount,
        storedDtype: ck.dtypeSummary,
      },
      tokenizer: { dir: path.resolve(tokenizerDir), sha256: Object.fromEntries(tokenizerFiles.files.map((f) => [f.name, f.sha256])) },
      document: { text: request.documentText },
      prompt: { text: request.promptText },
      documentTokens,
      promptTokens,
      memory: { baseCacheBytes: kvCacheBytes(cfg, T, bytesPerValue), exactCacheBytes: kvCacheBytes(cfg, T, bytesPerValue) },
      timings,
      adapters: adapterResults,
    };
  } finally {
    scope.close();
    session.releaseRunHolds();
  }
}

