// The contextBridge: `window.adapterlens`, an RpcBridge (shared/rpc.ts) and nothing else.
// The page never gets ipcRenderer itself: only call() on a known method name and on()
// for a known event name, so a compromised page can reach no channel but the RPC one,
// whose every argument main validates again anyway.
//
// This runs sandboxed (no Node), so it imports only 'electron' and shared/ (bundled).
import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron';
import { IPC_EVENT_CHANNEL, IPC_RPC_CHANNEL } from '../../shared/ipc.js';
import { RPC_EVENT_NAMES, RPC_METHOD_NAMES, type RpcBridge, type RpcErrorPayload, type RpcEventName, type RpcMethodName } from '../../shared/rpc.js';

const methods: ReadonlySet<string> = new Set(RPC_METHOD_NAMES);
const events: ReadonlySet<string> = new Set(RPC_EVENT_NAMES);

/** One ipc listener for every subscription (the page may subscribe many times). */
const listeners = new Map<string, Set<(payload: unknown) => void>>();
ipcRenderer.on(IPC_EVENT_CHANNEL, (_e: IpcRendererEvent, name: unknown, payload: unknown) => {
  // The ipc event object (with its sender) is never passed on to the page.
  for (const l of [...(listeners.get(String(name)) ?? [])]) {
    try {
      l(payload);
    } catch (err) {
      console.error(`adapterlens: a listener of ${String(name)} threw`, err);
    }
  }
});

type Answer = { ok: true; result: unknown } | { ok: false; error: RpcErrorPayload };

const bridge: RpcBridge = {
  call(method: RpcMethodName, params: unknown): Promise<Answer> {
    if (typeof method !== 'string' || !methods.has(method)) {
      return Promise.resolve({ ok: false, error: { code: 'BAD_REQUEST', message: `unknown method "${String(method)}"` } });
    }
    return ipcRenderer.invoke(IPC_RPC_CHANNEL, method, params) as Promise<Answer>;
  },
  on(event: RpcEventName, listener: (payload: unknown) => void): () => void {
    if (typeof event !== 'string' || !events.has(event)) throw new Error(`unknown event "${String(event)}"`);
    if (typeof listener !== 'function') throw new Error('the listener must be a function');
    let set = listeners.get(event);
    if (!set) listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
    };
  },
};

contextBridge.exposeInMainWorld('adapterlens', bridge);
