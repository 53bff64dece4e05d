// Picks the transport: the Electron preload bridge when present, else the WebSocket
// of `adapterlens serve` (same host, token from the page's query string).
import { SERVE_TOKEN_PARAM, WS_RPC_PATH, type RpcBridge } from '../../../shared/rpc.js';
import { BridgeRpcClient } from './bridge-client.js';
import type { ObservableRpcClient } from './types.js';
import { WsRpcClient } from './ws-client.js';

declare global {
  interface Window {
    adapterlens?: RpcBridge;
  }
}

const TOKEN_KEY = 'adapterlens.serveToken';

/** ws://host/rpc?token=… for a page served at `location` (exported for tests). */
export function serveRpcUrl(location: { protocol: string; host: string; search: string }, storedToken: string | null): string {
  const token = new URLSearchParams(location.search).get(SERVE_TOKEN_PARAM) ?? storedToken ?? '';
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}${WS_RPC_PATH}?${SERVE_TOKEN_PARAM}=${encodeURIComponent(token)}`;
}

export function createRpcClient(): ObservableRpcClient {
  if (window.adapterlens) return new BridgeRpcClient(window.adapterlens);
  const fromUrl = new URLSearchParams(window.location.search).get(SERVE_TOKEN_PARAM);
  let stored: string | null = null;
  try {
    // Keeps the token for a reload of a URL without it.
    if (fromUrl) window.sessionStorage.setItem(TOKEN_KEY, fromUrl);
    stored = window.sessionStorage.getItem(TOKEN_KEY);
  } catch {
    stored = null;
  }
  return new WsRpcClient({ url: serveRpcUrl(window.location, stored) });
}
