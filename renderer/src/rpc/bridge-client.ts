// The RpcClient over Electron's preload bridge (`window.adapterlens`).
import {
  RpcError,
  type RpcBridge,
  type RpcClient,
  type RpcEventName,
  type RpcEvents,
  type RpcMethodName,
  type RpcParams,
  type RpcResult,
} from '../../../shared/rpc.js';
import type { ConnectionState, ObservableRpcClient } from './types.js';

export class BridgeRpcClient implements RpcClient, ObservableRpcClient {
  constructor(private readonly bridge: RpcBridge) {}

  readonly state: ConnectionState = 'open';

  async call<M extends RpcMethodName>(method: M, params: RpcParams<M>): Promise<RpcResult<M>> {
    const answer = await this.bridge.call(method, params);
    if (!answer.ok) throw new RpcError(answer.error);
    // The bridge is typed loosely (ipc); main answers each method with its result type.
    return answer.result as RpcResult<M>;
  }

  on<E extends RpcEventName>(event: E, listener: (payload: RpcEvents[E]) => void): () => void {
    return this.bridge.on(event, (payload) => listener(payload as RpcEvents[E]));
  }

  onState(): () => void {
    // ipc never disconnects.
    return () => undefined;
  }
}
