// An in-memory RpcClient for store tests: answers calls from a table, emits events on demand.
import type { RpcEventName, RpcEvents, RpcMethodName, RpcParams, RpcResult } from '../../shared/rpc.js';
import type { ConnectionState, ObservableRpcClient } from '../src/rpc/types.js';

type Handler = (params: unknown) => unknown;

export class FakeClient implements ObservableRpcClient {
  state: ConnectionState = 'open';
  readonly calls: { method: RpcMethodName; params: unknown }[] = [];
  private readonly handlers = new Map<string, Handler>();
  private readonly listeners = new Map<string, Set<(p: unknown) => void>>();

  handle<M extends RpcMethodName>(method: M, fn: (params: RpcParams<M>) => RpcResult<M> | Promise<RpcResult<M>>): this {
    this.handlers.set(method, fn as Handler);
    return this;
  }

  async call<M extends RpcMethodName>(method: M, params: RpcParams<M>): Promise<RpcResult<M>> {
    this.calls.push({ method, params });
    const h = this.handlers.get(method);
    if (!h) throw new Error(`no handler for ${method}`);
    return (await h(params)) as RpcResult<M>;
  }

  on<E extends RpcEventName>(event: E, listener: (payload: RpcEvents[E]) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    const l = listener as (p: unknown) => void;
    set.add(l);
    return () => set.delete(l);
  }

  emit<E extends RpcEventName>(event: E, payload: RpcEvents[E]): void {
    for (const l of this.listeners.get(event) ?? []) l(payload);
  }

  onState(): () => void {
    return () => undefined;
  }
}
