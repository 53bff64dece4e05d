// One answer to "was this cancelled?" for every layer. Three kinds of error mean the user
// (or a shutdown) cancelled: the engine's (code 'CANCELLED', main/engine/cancel.ts), the
// cache manager's (the same code), and the DOMException an AbortSignal throws
// (`signal.throwIfAborted()`, streams, timers: name 'AbortError'). Callers that report
// to a person (the CLI's exit code, the RPC error code) must treat all three alike.

/** The error this codebase throws for a cancel it notices itself (workers, loaders). */
export interface CancellationError extends Error {
  code: 'CANCELLED';
}

/**
 * 'cancelled', with code 'CANCELLED' (what the engine and the cache manager check) and
 * name 'AbortError' (what AbortSignal users check).
 */
export function cancellationError(): CancellationError {
  const err = new Error('cancelled') as CancellationError;
  err.name = 'AbortError';
  err.code = 'CANCELLED';
  return err;
}

export function isCancellation(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { code?: unknown; name?: unknown };
  return e.code === 'CANCELLED' || e.name === 'AbortError';
}

/** `promise`, or a cancellation as soon as `signal` fires (the work behind it goes on). */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(cancellationError());
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(cancellationError());
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
