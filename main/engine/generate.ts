// Batched generation: every sequence (its own cache, adapter and sampling) advances
// one token per engine.decode call, so all of a comparison's sequences share each
// pass over the base weights.
import { throwIfAborted } from './cancel.js';
import type { NativeAdapter, NativeKvCache, NativeModel, NativeSampling } from './native-types.js';

export interface GenerationRequest {
  /** The cache to extend; generation appends to it (fork first to keep the original). */
  cache: NativeKvCache;
  adapter: NativeAdapter | null;
  /** Tokens to feed before the first generated one (at least one: the prompt). */
  feedTokens: number[];
  sampling: NativeSampling;
  maxNewTokens: number;
  /** Generation of this sequence ends after producing one of these (e.g. EOS). */
  stopTokens: number[];
}

export interface GenerateOptions {
  signal?: AbortSignal;
  /** Called for each new token as soon as its step finishes, with the probability the model gave it. */
  onToken?: (sequence: number, token: number, step: number, prob: number) => void;
  /** Prefill chunk for the fed tokens. */
  chunkSize?: number;
}

export async function generate(model: NativeModel, requests: GenerationRequest[], options: GenerateOptions = {}): Promise<number[][]> {
  const outputs: number[][] = requests.map(() => []);
  const next: number[] = [];
  for (const [i, req] of requests.entries()) {
    if (req.feedTokens.length === 0) throw new Error(`generation request ${i}: nothing to feed (an empty prompt needs at least one token)`);
    throwIfAborted(options.signal);
    const head = req.feedTokens.slice(0, -1);
    if (head.length > 0) {
      await model.prefill(req.cache, Int32Array.from(head), req.adapter, { chunkSize: options.chunkSize ?? 256, logits: 'none' }, null, null);
    }
    next.push(req.feedTokens[req.feedTokens.length - 1]!);
  }
  const active = requests.map((r) => r.maxNewTokens > 0);
  for (let step = 0; active.some(Boolean); step++) {
    throwIfAborted(options.signal);
    const batch = requests.flatMap((req, i) => (active[i] ? [{ i, req }] : []));
    const result = await model.decode(
      batch.map(({ i, req }) => ({ cache: req.cache, adapter: req.adapter, token: next[i]!, sampling: req.sampling })),
      { logits: options.onToken !== undefined },
    );
    const vocab = result.logits ? result.logits.length / batch.length : 0;
    for (const [b, { i, req }] of batch.entries()) {
      const token = result.tokens[b]!;
      outputs[i]!.push(token);
      next[i] = token;
      if (options.onToken) {
        options.onToken(i, token, step, result.logits ? softmaxAt(result.logits.subarray(b * vocab, (b + 1) * vocab), token) : NaN);
      }
      if (outputs[i]!.length >= req.maxNewTokens || req.stopTokens.includes(token)) active[i] = false;
    }
  }
  return outputs;
}

/** softmax(row)[index] in double precision (the model's own probability, temperature 1). */
function softmaxAt(row: Float32Array, index: number): number {
  let max = -Infinity;
  for (let j = 0; j < row.length; j++) if (row[j]! > max) max = row[j]!;
  let sum = 0;
  for (let j = 0; j < row.length; j++) sum += Math.exp(row[j]! - max);
  return Math.exp(row[index]! - max) / sum;
}
