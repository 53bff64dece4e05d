// The metrics of DESIGN.md ("Metrics"), formed from what the engine returns:
// relative errors from squared-error sums, teacher-forced scores from logits.
import type { NativeErrorSums, NativeScoreResult } from '../engine/native-types.js';
import type { ErrorGrid, LayerErrors, Scores, TokenErrorGrid } from '../../shared/report.js';

/** sqrt(diff / norm), 0 when both are 0 (an all-zero exact tensor rebuilt exactly). */
function rel(diff: number, norm: number): number {
  if (norm === 0) return diff === 0 ? 0 : Infinity;
  return Math.sqrt(diff / norm);
}

/** Per layer: ‖X_s − X_exact‖_F / ‖X_exact‖_F over all tokens and KV heads. */
export function layerErrors(s: NativeErrorSums): LayerErrors[] {
  const out: LayerErrors[] = [];
  for (let l = 0; l < s.numLayers; l++) {
    let kd = 0, kn = 0, vd = 0, vn = 0;
    for (let h = 0; h < s.numKvHeads; h++) {
      const i = l * s.numKvHeads + h;
      kd += s.kDiffByHead[i]!;
      kn += s.kNormByHead[i]!;
      vd += s.vDiffByHead[i]!;
      vn += s.vNormByHead[i]!;
    }
    out.push({ layer: l, kRelErr: rel(kd, kn), vRelErr: rel(vd, vn) });
  }
  return out;
}

/**
 * The sums of exact's own cache against itself, without reading it again: zero differences and
 * the norms of exact's K/V, taken from another measurement of the same adapter (every one of
 * them sums exact's norms).
 */
export function selfErrors(like: NativeErrorSums): NativeErrorSums {
  return {
    ...like,
    kDiffByHead: new Float64Array(like.kDiffByHead.length),
    vDiffByHead: new Float64Array(like.vDiffByHead.length),
    kDiffByToken: new Float64Array(like.kDiffByToken.length),
    vDiffByToken: new Float64Array(like.vDiffByToken.length),
  };
}

/** Layer × KV head relative errors. */
export function headGrid(s: NativeErrorSums): ErrorGrid {
  const k: number[][] = [];
  const v: number[][] = [];
  for (let l = 0; l < s.numLayers; l++) {
    const kr: number[] = [];
    const vr: number[] = [];
    for (let h = 0; h < s.numKvHeads; h++) {
      const i = l * s.numKvHeads + h;
      kr.push(rel(s.kDiffByHead[i]!, s.kNormByHead[i]!));
      vr.push(rel(s.vDiffByHead[i]!, s.vNormByHead[i]!));
    }
    k.push(kr);
    v.push(vr);
  }
  return { k, v };
}

/**
 * Layer × token-range relative errors, at most `maxColumns` columns: a long document is
 * binned into consecutive ranges (errors summed per range, so each cell is the exact
 * relative error of its range, not an average of ratios). The engine may already have
 * summed `s.tokenBin` consecutive tokens per entry; ranges are then whole multiples of that.
 */
export function tokenGrid(s: NativeErrorSums, maxColumns = 256): TokenErrorGrid {
  const entryTokens = Math.max(1, s.tokenBin ?? 1);
  const entries = Math.ceil(s.tokens / entryTokens);
  const perColumn = Math.max(1, Math.ceil(Math.ceil(s.tokens / maxColumns) / entryTokens));
  const binSize = perColumn * entryTokens;
  const columns = Math.ceil(entries / perColumn);
  const k: number[][] = [];
  const v: number[][] = [];
  for (let l = 0; l < s.numLayers; l++) {
    const kr: number[] = [];
    const vr: number[] = [];
    for (let c = 0; c < columns; c++) {
      let kd = 0, kn = 0, vd = 0, vn = 0;
      for (let e = c * perColumn; e < Math.min(entries, (c + 1) * perColumn); e++) {
        const i = l * entries + e;
        kd += s.kDiffByToken[i]!;
        kn += s.kNormByToken[i]!;
        vd += s.vDiffByToken[i]!;
        vn += s.vNormByToken[i]!;
      }
      kr.push(rel(kd, kn));
      vr.push(rel(vd, vn));
    }
    k.push(kr);
    v.push(vr);
  }
  return { binSize, k, v };
}

/** The token bin the engine should sum into so that tokenGrid gets at most `maxColumns` columns. */
export function tokenBinFor(tokens: number, maxColumns = 256): number {
  return Math.max(1, Math.ceil(tokens / maxColumns));
}

/** Scores from the engine's per-position teacher-forced results (KL, argmax agreement, NLLs). */
export function scoresFromEngine(r: NativeScoreResult): Scores {
  const n = r.kl.length;
  const kl = Array.from(r.kl, (x) => Math.max(0, x));
  const top1 = Array.from(r.top1);
  let nll = 0, nllRef = 0;
  for (let i = 0; i < n; i++) {
    nll += r.nll[i]!;
    nllRef += r.nllReference[i]!;
  }
  const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
  return { kl, top1, meanKl: mean(kl), top1Agreement: mean(top1), perplexityRatio: n ? Math.exp((nll - nllRef) / n) : 1 };
}

/** log-softmax of one row, in double precision. */
export function logSoftmax(row: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]!);
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  const lse = max + Math.log(sum);
  const out = new Float64Array(row.length);
  for (let i = 0; i < row.length; i++) out[i] = row[i]! - lse;
  return out;
}

function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

/**
 * Teacher-forced scores of a strategy against exact over the same continuation, from host
 * logits: the reference the engine's on-device scoring (scoresFromEngine) is tested against.
 * `exactLogits` and `strategyLogits` are [positions, vocab]; row i predicts
 * `continuation[i]`.
 */
export function teacherForcedScores(
  exactLogits: Float32Array,
  strategyLogits: Float32Array,
  continuation: readonly number[],
  vocab: number,
): Scores {
  const n = continuation.length;
  if (exactLogits.length < n * vocab || strategyLogits.length < n * vocab) {
    throw new Error(`teacher-forced scoring: ${n} positions need ${n * vocab} logits`);
  }
  const kl: number[] = [];
  const top1: number[] = [];
  let nllExact = 0;
  let nllStrategy = 0;
  for (let i = 0; i < n; i++) {
    const pe = exactLogits.subarray(i * vocab, (i + 1) * vocab);
    const ps = strategyLogits.subarray(i * vocab, (i + 1) * vocab);
    const le = logSoftmax(pe);
    const ls = logSoftmax(ps);
    let d = 0;
    for (let j = 0; j < vocab; j++) {
      const p = Math.exp(le[j]!);
      if (p > 0) d += p * (le[j]! - ls[j]!);
    }
    kl.push(Math.max(0, d));
    top1.push(argmax(pe) === argmax(ps) ? 1 : 0);
    const t = continuation[i]!;
    nllExact -= le[t]!;
    nllStrategy -= ls[t]!;
  }
  const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
  return {
    kl,
    top1,
    meanKl: mean(kl),
    top1Agreement: mean(top1),
    perplexityRatio: n ? Math.exp((nllStrategy - nllExact) / n) : 1,
  };
}

/** Index of the first token where `tokens` differs from `reference` (a length difference counts); null if none. */
export function firstDivergence(tokens: readonly number[], reference: readonly number[]): number | null {
  const n = Math.max(tokens.length, reference.length);
  for (let i = 0; i < n; i++) if (tokens[i] !== reference[i]) return i;
  return null;
}
