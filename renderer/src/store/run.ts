// The run in progress: start, staged progress, streamed tokens, cancel, its end.
import { create } from 'zustand';
import type { CompareProgress, CompareRequest, CompareStage, TokenEvent } from '../../../shared/compare.js';
import type { RpcClient, RpcEvents } from '../../../shared/rpc.js';
import { appendTokens, type StreamedTokens } from '../logic/grid.js';
import { baseName } from '../logic/request.js';
import { errorMessage, rpc } from '../rpc/instance.js';

export type RunStatus = 'idle' | 'starting' | 'running' | 'cancelling' | 'finished' | 'failed' | 'cancelled';

export interface RunState {
  status: RunStatus;
  runId: string | null;
  request: CompareRequest | null;
  adapterNames: string[];
  seen: Partial<Record<CompareStage, CompareProgress>>;
  current: CompareStage | null;
  startedAt: number | null;
  endedAt: number | null;
  streams: StreamedTokens;
  error: string | null;
  reportId: string | null;
  /** Why a finished run's report was not saved to history (null: saved). */
  saveError: string | null;
  start(request: CompareRequest): Promise<boolean>;
  cancel(): Promise<void>;
  /** Picks up a run already in progress (a reconnecting tab). */
  resume(): Promise<void>;
  dismiss(): void;
}

const IDLE = {
  status: 'idle' as RunStatus,
  runId: null,
  request: null,
  adapterNames: [],
  seen: {},
  current: null,
  startedAt: null,
  endedAt: null,
  streams: {},
  error: null,
  reportId: null,
  saveError: null,
};

function namesOf(request: CompareRequest): string[] {
  return request.adapters.map((a) => a.name ?? baseName(a.dir));
}

export function isRunning(status: RunStatus): boolean {
  return status === 'starting' || status === 'running' || status === 'cancelling';
}

/** Events that arrive before run.start answers (the run id is unknown yet) wait here. */
let early: { event: string; payload: { runId: string } }[] = [];

export const useRun = create<RunState>((set, get) => ({
  ...IDLE,

  start: async (request) => {
    if (isRunning(get().status)) return false;
    early = [];
    tokenFlush.clear();
    set({ ...IDLE, status: 'starting', request, adapterNames: namesOf(request), startedAt: Date.now() });
    try {
      const { runId } = await rpc().call('run.start', { request });
      const cancelAsked = get().status === 'cancelling';
      set({ runId, status: get().status === 'starting' ? 'running' : get().status });
      const queued = early.filter((e) => e.payload.runId === runId);
      early = [];
      for (const e of queued) replay(e.event, e.payload);
      // Cancel was pressed before main answered: send it now.
      if (cancelAsked && get().status === 'cancelling') {
        set({ status: 'running' });
        await get().cancel();
      }
      return true;
    } catch (e) {
      set({ status: 'failed', error: errorMessage(e), endedAt: Date.now() });
      return false;
    }
  },

  cancel: async () => {
    const { runId, status } = get();
    if (!runId && status === 'starting') {
      set({ status: 'cancelling' }); // start() sends it once the run has an id
      return;
    }
    if (!runId || !isRunning(status)) return;
    set({ status: 'cancelling' });
    try {
      const { cancelled } = await rpc().call('run.cancel', { runId });
      if (!cancelled && get().status === 'cancelling') set({ status: 'running' });
    } catch (e) {
      if (get().status === 'cancelling') set({ status: 'running', error: `Cancel failed: ${errorMessage(e)}` });
    }
  },

  resume: async () => {
    try {
      const active = await rpc().call('run.active', {});
      const { runId, status } = get();
      if (!active) {
        // The run ended while we were away; its end event was lost with the connection.
        if (runId && isRunning(status)) set({ status: 'failed', error: 'The connection dropped and the run is no longer active; see History for its report.', endedAt: Date.now() });
        return;
      }
      if (active.runId === runId) return;
      tokenFlush.clear();
      // A reloaded tab: the run's true elapsed time (main's clock, as a duration), every stage so far, the tokens so far.
      set({
        ...IDLE,
        status: 'running',
        runId: active.runId,
        request: active.request,
        adapterNames: namesOf(active.request),
        startedAt: Date.now() - active.elapsedMs,
        seen: { ...active.stages },
        current: active.progress?.stage ?? null,
        streams: appendTokens({}, active.tokens),
      });
    } catch {
      // Not connected yet: the next reconnect tries again.
    }
  },

  dismiss: () => {
    if (!isRunning(get().status)) set({ ...IDLE });
  },
}));

/**
 * Token events reach the store at most every FLUSH_MS: one decode step is one event for
 * every row, and a render per step (hundreds a second on a small model, each over every
 * row's tokens) would leave the page no time for input. The first event after a quiet
 * spell is applied at once; the rest wait for the timer.
 */
const FLUSH_MS = 80;

class TokenFlush {
  private pending: { runId: string; tokens: readonly TokenEvent[] }[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;

  add(runId: string, tokens: readonly TokenEvent[]): void {
    this.pending.push({ runId, tokens });
    if (this.timer === null) {
      this.flush();
      this.arm();
    }
  }

  /** Flushes what waits every FLUSH_MS while events keep coming; stops after a quiet window. */
  private arm(): void {
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.pending.length === 0) return;
      this.flush();
      this.arm();
    }, FLUSH_MS);
  }

  /** Applies what waits (before a run's end, so its last tokens are shown). */
  flush(): void {
    const waiting = this.pending;
    this.pending = [];
    const s = useRun.getState();
    const mine = waiting.filter((w) => w.runId === s.runId).flatMap((w) => w.tokens);
    if (mine.length > 0) useRun.setState({ streams: appendTokens(s.streams, mine) });
  }

  /** Drops what waits (a new run, or a reloaded one whose tokens come whole from main). */
  clear(): void {
    this.pending = [];
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}

const tokenFlush = new TokenFlush();

type Handlers = { [E in keyof RpcEvents]?: (payload: RpcEvents[E]) => void };

const handlers: Handlers = {
  'run.progress': ({ runId, progress }) => {
    const s = useRun.getState();
    if (s.runId !== runId) return;
    useRun.setState({ seen: { ...s.seen, [progress.stage]: progress }, current: progress.stage });
  },
  'run.tokens': ({ runId, tokens }) => {
    if (useRun.getState().runId !== runId) return;
    tokenFlush.add(runId, tokens);
  },
  'run.finished': ({ runId, reportId, saveError }) => {
    tokenFlush.flush();
    if (useRun.getState().runId !== runId) return;
    useRun.setState({ status: 'finished', reportId, saveError: saveError ?? null, endedAt: Date.now() });
  },
  'run.failed': ({ runId, error }) => {
    tokenFlush.flush();
    if (useRun.getState().runId !== runId) return;
    useRun.setState({ status: 'failed', error: error.message, endedAt: Date.now() });
  },
  'run.cancelled': ({ runId }) => {
    tokenFlush.flush();
    if (useRun.getState().runId !== runId) return;
    useRun.setState({ status: 'cancelled', endedAt: Date.now() });
  },
};

/** run.start has not answered yet: events of the new run cannot be told from others. */
function awaitingId(s: RunState): boolean {
  return s.runId === null && (s.status === 'starting' || s.status === 'cancelling');
}

function replay(event: string, payload: { runId: string }): void {
  const h = handlers[event as keyof Handlers] as ((p: unknown) => void) | undefined;
  h?.(payload);
}

function route<E extends keyof Handlers>(event: E, payload: RpcEvents[E] & { runId: string }): void {
  const s = useRun.getState();
  if (awaitingId(s)) {
    early.push({ event, payload });
    return;
  }
  replay(event, payload);
}

/** Subscribes the run store to the client's run events; returns the unsubscribe. */
export function attachRunEvents(client: RpcClient, onFinished?: (payload: RpcEvents['run.finished']) => void): () => void {
  const offs = [
    client.on('run.progress', (p) => route('run.progress', p)),
    client.on('run.tokens', (p) => route('run.tokens', p)),
    client.on('run.finished', (p) => {
      const mine = useRun.getState().runId === p.runId || awaitingId(useRun.getState());
      route('run.finished', p);
      if (mine) onFinished?.(p);
    }),
    client.on('run.failed', (p) => route('run.failed', p)),
    client.on('run.cancelled', (p) => route('run.cancelled', p)),
  ];
  return () => offs.forEach((off) => off());
}
