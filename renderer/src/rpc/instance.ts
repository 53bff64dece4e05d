// The one client the stores use. main.tsx installs the real one; tests install their own.
import type { ObservableRpcClient } from './types.js';

let current: ObservableRpcClient | null = null;

export function setRpc(client: ObservableRpcClient): void {
  current = client;
}

export function rpc(): ObservableRpcClient {
  if (!current) throw new Error('the RPC client is not installed yet');
  return current;
}

/** A message for people from whatever a call rejected with. */
export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
