// Bridges the Node world's AbortSignal to the engine's CancelToken, and names the
// error a cancelled native job rejects with.
import type { NativeAddon, NativeCancelToken } from './native-types.js';

/** True for the error a native job rejects with when its CancelToken fired. */
export function isCancelled(err: unknown): boolean {
  return err instanceof Error && (err as Error & { code?: unknown }).code === 'CANCELLED';
}

/** A CancelToken that fires when `signal` aborts (already-aborted signals fire at once). */
export function cancelTokenFor(addon: NativeAddon, signal: AbortSignal | undefined): NativeCancelToken | null {
  if (!signal) return null;
  const token = new addon.CancelToken();
  if (signal.aborted) token.cancel();
  else signal.addEventListener('abort', () => token.cancel(), { once: true });
  return token;
}

/** Throws the same error a native job would, for JS-side loops between native calls. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    const err = new Error('cancelled') as Error & { code: string };
    err.code = 'CANCELLED';
    throw err;
  }
}
