// The two Electron ipc channels that carry the RPC contract (shared/rpc.ts) between the
// preload bridge and main. Only main/preload and main/electron use them.

/** renderer → main: invoke(IPC_RPC_CHANNEL, method, params) → { ok, result } | { ok, error }. */
export const IPC_RPC_CHANNEL = 'adapterlens:rpc';
/** main → renderer: send(IPC_EVENT_CHANNEL, eventName, payload). */
export const IPC_EVENT_CHANNEL = 'adapterlens:event';
