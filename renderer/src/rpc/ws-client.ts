// The RpcClient over `adapterlens serve`'s WebSocket (shared/rpc.ts wire messages).
// Reconnects with backoff; calls made while the socket is down wait for it (and fail
// if it stays down); calls in flight when it drops fail with a message saying so.
import {
  RPC_EVENT_NAMES,
  RpcError,
  type ClientMessage,
  type RpcClient,
  type RpcEventName,
  type RpcEvents,
  type RpcMethodName,
  type RpcParams,
  type RpcResult,
  type ServerMessage,
} from '../../../shared/rpc.js';
import type { ConnectionState, ObservableRpcClient } from './types.js';

/** The part of the DOM WebSocket this client uses (a test can pass its own). */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: Event) => void) | null;
  onclose: ((ev: CloseEvent) => void) | null;
  onerror: ((ev: Event) => void) | null;
  onmessage: ((ev: MessageEvent) => void) | null;
}

export interface WsClientOptions {
  url: string;
  createSocket?: (url: string) => SocketLike;
  /** How long a call waits for a connection before failing. */
  connectTimeoutMs?: number;
  maxBackoffMs?: number;
}

interface Pending {
  resolve(result: unknown): void;
  reject(error: Error): void;
}

const OPEN = 1;

export class WsRpcClient implements RpcClient, ObservableRpcClient {
  private socket: SocketLike | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly waiting: { send(): void; fail(e: Error): void }[] = [];
  private readonly listeners = new Map<RpcEventName, Set<(payload: unknown) => void>>();
  private readonly stateListeners = new Set<(s: ConnectionState) => void>();
  private attempts = 0;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private closedByUser = false;
  state: ConnectionState = 'connecting';

  constructor(private readonly options: WsClientOptions) {
    this.connect();
  }

  private setState(s: ConnectionState): void {
    if (this.state === s) return;
    this.state = s;
    for (const l of this.stateListeners) l(s);
  }

  private connect(): void {
    const create = this.options.createSocket ?? ((url: string) => new WebSocket(url));
    const socket = create(this.options.url);
    this.socket = socket;
    socket.onopen = () => {
      this.attempts = 0;
      this.setState('open');
      for (const w of this.waiting.splice(0)) w.send();
    };
    socket.onmessage = (ev) => {
      if (typeof ev.data === 'string') this.receive(ev.data);
    };
    socket.onerror = () => {
      // onclose follows and handles it.
    };
    socket.onclose = (ev) => {
      if (this.socket !== socket) return;
      this.socket = null;
      const lost = new RpcError({
        code: ev.code === 4401 || ev.code === 1008 ? 'UNAUTHORIZED' : 'INTERNAL',
        message: 'The connection to AdapterLens was lost before it answered; try again.',
      });
      for (const p of this.pending.values()) p.reject(lost);
      this.pending.clear();
      if (this.closedByUser) {
        this.setState('closed');
        return;
      }
      this.setState('connecting');
      const max = this.options.maxBackoffMs ?? 5000;
      const delay = Math.min(max, 250 * 2 ** Math.min(this.attempts, 5));
      this.attempts++;
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.connect();
      }, delay);
    };
  }

  private receive(text: string): void {
    let msg: ServerMessage;
    try {
      msg = JSON.parse(text) as ServerMessage;
    } catch {
      return;
    }
    if (msg.kind === 'event') {
      if (!(RPC_EVENT_NAMES as readonly string[]).includes(msg.event)) return;
      for (const l of this.listeners.get(msg.event) ?? []) {
        try {
          l(msg.payload);
        } catch (e) {
          console.error(`listener of ${msg.event} failed`, e);
        }
      }
      return;
    }
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    if (msg.kind === 'result') p.resolve(msg.result);
    else p.reject(new RpcError(msg.error));
  }

  call<M extends RpcMethodName>(method: M, params: RpcParams<M>): Promise<RpcResult<M>> {
    return new Promise<RpcResult<M>>((resolve, reject) => {
      const send = (): void => {
        const socket = this.socket;
        if (!socket || socket.readyState !== OPEN) {
          reject(new RpcError({ code: 'INTERNAL', message: 'Not connected to AdapterLens.' }));
          return;
        }
        const id = this.nextId++;
        // Each method's result has its declared type; the wire carries it as JSON.
        this.pending.set(id, { resolve: (r) => resolve(r as RpcResult<M>), reject });
        const msg: ClientMessage = { kind: 'call', id, method, params };
        socket.send(JSON.stringify(msg));
      };
      if (this.socket && this.socket.readyState === OPEN) {
        send();
        return;
      }
      if (this.closedByUser) {
        reject(new RpcError({ code: 'INTERNAL', message: 'The connection is closed.' }));
        return;
      }
      let done = false;
      const entry = {
        send: () => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          send();
        },
        fail: (e: Error) => {
          if (done) return;
          done = true;
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        const i = this.waiting.indexOf(entry);
        if (i >= 0) this.waiting.splice(i, 1);
        entry.fail(
          new RpcError({
            code: 'INTERNAL',
            message: 'Cannot reach AdapterLens: is `adapterlens serve` still running?',
          }),
        );
      }, this.options.connectTimeoutMs ?? 15000);
      this.waiting.push(entry);
    });
  }

  on<E extends RpcEventName>(event: E, listener: (payload: RpcEvents[E]) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    // Payloads of each event have its declared type (main sends them).
    const wrapped = (payload: unknown): void => listener(payload as RpcEvents[E]);
    set.add(wrapped);
    return () => {
      set.delete(wrapped);
    };
  }

  onState(listener: (state: ConnectionState) => void): () => void {
    this.stateListeners.add(listener);
    return () => {
      this.stateListeners.delete(listener);
    };
  }

  close(): void {
    this.closedByUser = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    for (const w of this.waiting.splice(0)) w.fail(new RpcError({ code: 'INTERNAL', message: 'The connection is closed.' }));
    this.socket?.close();
  }
}
