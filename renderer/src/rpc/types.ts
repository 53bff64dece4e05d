import type { RpcClient } from '../../../shared/rpc.js';

/** 'connecting' before the first open and while reconnecting. */
export type ConnectionState = 'connecting' | 'open' | 'closed';

/** An RpcClient that also says whether its transport is up (the WebSocket can drop). */
export interface ObservableRpcClient extends RpcClient {
  readonly state: ConnectionState;
  /** Called on every state change; returns the function that unsubscribes. */
  onState(listener: (state: ConnectionState) => void): () => void;
}
