// One RPC call, whatever the transport: name check → params schema → handler → result.
// It never throws: every failure becomes an RpcErrorPayload (errors.ts), so a bad call
// from a renderer or a browser tab cannot take main down.
import { RPC_METHOD_NAMES, type RpcErrorPayload, type RpcMethodName } from '../../shared/rpc.js';
import { toErrorPayload } from './errors.js';
import { parseParams } from './schemas.js';
import type { Handlers } from './service.js';

export type DispatchResult = { ok: true; result: unknown } | { ok: false; error: RpcErrorPayload };

const METHODS: ReadonlySet<string> = new Set(RPC_METHOD_NAMES);

export function isMethodName(name: unknown): name is RpcMethodName {
  return typeof name === 'string' && METHODS.has(name);
}

/** Runs a handler with typed params; the method/params pairing is checked by parseParams. */
function invoke<M extends RpcMethodName>(handlers: Handlers, method: M, params: unknown): Promise<unknown> {
  const parsed = parseParams(method, params);
  const handler = handlers[method] as (p: typeof parsed) => Promise<unknown>;
  return handler(parsed);
}

export async function dispatch(handlers: Handlers, method: unknown, params: unknown): Promise<DispatchResult> {
  if (!isMethodName(method)) {
    const shown = typeof method === 'string' ? `"${method.slice(0, 80)}"` : typeof method;
    return { ok: false, error: { code: 'BAD_REQUEST', message: `unknown method ${shown}` } };
  }
  try {
    return { ok: true, result: await invoke(handlers, method, params) };
  } catch (e) {
    return { ok: false, error: toErrorPayload(e) };
  }
}
