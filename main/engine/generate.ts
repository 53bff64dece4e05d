// Batched generation: every sequence (its own cache or view, adapter and sampling) advances
// one token per engine.decode call, so all of a comparison's sequences share each pass over
// the base weights; their prompts are fed together first (prefillBatch). Tokens are chosen
// (greedy or sampled) where the logits are, and only the tokens and their probabilities
// come back.
import { throwIfAborted } from './cancel.js';
import type { NativeAdapter, NativeCancelToken, NativeKvCache, NativeModel, NativeSampling } from './native-types.js';

export interface GenerationRequest {
  /** The cache or view to extend; generation appends to it (fork first to keep the original). */
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
  /** Cancels the prompt feed mid-pass (the decode loop checks `signal` between steps). */
  cancel?: NativeCancelToken | null;
  /** Called for each new token as soon as its step finishes, with the probability the model gave it. */
  onToken?: (sequence: number, token: number, step: number, prob: number) => void;
  /** Rows per pass of the prompt feed (all sequences' prompt tokens together). */
  maxRows?: number;
}

export async function generate(model: NativeModel, requests: GenerationRequest[], options: GenerateOptions = {}): Promise<number[][]> {
  const outputs: number[][] = requests.map(() => []);
  const next: number[] = [];
  for (const [i, req] of requests.entries()) {
    if (req.feedTokens.length === 0) throw new Error(`generation request ${i}: nothing to feed (an empty prompt needs at least one token)`);
    next.push(req.feedTokens[req.feedTokens.length - 1]!);
  }
  throwIfAborted(options.signal);
  // Every prompt but its last token in shared passes; the last token is the first decode step's input.
  const feeds = requests
    .filter((r) => r.feedTokens.length > 1)
    .map((r) => ({ cache: r.cache, adapter: r.adapter, tokens: Int32Array.from(r.feedTokens.slice(0, -1)) }));
  if (feeds.length > 0) await model.prefillBatch(feeds, { maxRows: options.maxRows ?? 512 }, null, options.cancel ?? null);

  const active = requests.map((r) => r.maxNewTokens > 0);
  for (let step = 0; active.some(Boolean); step++) {
    throwIfAborted(options.signal);
    const batch = requests.flatMap((req, i) => (active[i] ? [{ i, req }] : []));
    const result = await model.decode(
      batch.map(({ i, req }) => ({ cache: req.cache, adapter: req.adapter, token: next[i]!, sampling: req.sampling })),
      { logits: false },
    );
    for (const [b, { i, req }] of batch.entries()) {
      const token = result.tokens[b]!;
      outputs[i]!.push(token);
      next[i] = token;
      options.onToken?.(i, token, step, result.probs[b]!);
      if (outputs[i]!.length >= req.maxNewTokens || req.stopTokens.includes(token)) active[i] = false;
    }
  }
  return outputs;
}
