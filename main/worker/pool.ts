// Runs CPU-heavy or input-dependent work (hashing, tokenizing, parsing user files and
// matching their regexes) on worker threads, so the main thread of `serve`, the desktop
// app and the CLI never stalls on it. Each job gets a worker of its own for its whole
// run; a job that runs past its time limit, or whose signal aborts, has its worker
// terminated (the only way to stop synchronous JavaScript), and the next job gets a fresh
// one. A worker that dies (out of memory within its resourceLimits, a crash) fails its
// job with WorkerCrashError; the main thread is never affected.
//
// Idle workers are kept for reuse a little while (they hold parsed tokenizers), unref'd
// so they never keep a process alive.
import os from 'node:os';
import { Worker, type ResourceLimits } from 'node:worker_threads';
import { cancellationError } from '../cancellation.js';
import { deserializeError, WorkerCrashError, WorkerTimeoutError } from './errors.js';
import type { FromWorker, TaskInput, TaskName, TaskOutput, ToWorker } from './protocol.js';

export interface RunOptions {
  signal?: AbortSignal;
  /** Stop the job (terminating its worker) after this many ms; none by default. */
  timeoutMs?: number;
  onProgress?: (done: number, total: number) => void;
  /** Objects moved to the worker instead of copied. */
  transfer?: ArrayBuffer[];
}

export interface PoolOptions {
  /** Name in error messages and thread names. */
  name: string;
  /** Most workers at once; more jobs wait in order. */
  size: number;
  resourceLimits?: ResourceLimits;
  /** Idle workers are terminated after this long (default 30 s). */
  idleMs?: number;
}

interface Job {
  id: number;
  task: TaskName;
  input: unknown;
  options: RunOptions;
  resolve(value: unknown): void;
  reject(err: unknown): void;
  settled: boolean;
}

interface Slot {
  worker: Worker;
  job: Job | null;
  idleTimer: NodeJS.Timeout | null;
  exited: boolean;
}

// The worker runs task-worker: its compiled .js next to this file (dist/, the Electron
// bundle), or, under tsx (tests, `node --import tsx`), the .ts source through tsx's loader,
// which worker threads do not inherit.
const SELF = import.meta.url;
const RUNNING_TS = SELF.endsWith('.ts');
const WORKER_URL = new URL(`./task-worker.${RUNNING_TS ? 'ts' : 'js'}`, SELF);

function spawnWorker(name: string, resourceLimits: ResourceLimits | undefined): Worker {
  if (!RUNNING_TS) return new Worker(WORKER_URL, { name, resourceLimits });
  const boot = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(WORKER_URL.href)}); })`;
  return new Worker(boot, { eval: true, name, resourceLimits });
}

let nextJobId = 1;

export class WorkerPool {
  private readonly slots = new Set<Slot>();
  private readonly queue: Job[] = [];
  private disposed = false;

  constructor(private readonly options: PoolOptions) {}

  run<N extends TaskName>(task: N, input: TaskInput<N>, options: RunOptions = {}): Promise<TaskOutput<N>> {
    if (this.disposed) return Promise.reject(new Error(`the ${this.options.name} workers have been shut down`));
    if (options.signal?.aborted) return Promise.reject(cancellationError());
    return new Promise<TaskOutput<N>>((resolve, reject) => {
      const job: Job = { id: nextJobId++, task, input, options, resolve: resolve as (v: unknown) => void, reject, settled: false };
      const onAbort = (): void => this.finish(job, cancellationError());
      options.signal?.addEventListener('abort', onAbort, { once: true });
      const settle = (f: () => void): void => {
        options.signal?.removeEventListener('abort', onAbort);
        f();
      };
      job.resolve = (v) => settle(() => resolve(v as TaskOutput<N>));
      job.reject = (e) => settle(() => reject(e));
      this.queue.push(job);
      this.pump();
    });
  }

  /** Jobs running and waiting (tests, diagnostics). */
  get load(): { running: number; waiting: number; workers: number } {
    let running = 0;
    for (const s of this.slots) if (s.job) running++;
    return { running, waiting: this.queue.length, workers: this.slots.size };
  }

  /** Terminates every worker; running and waiting jobs reject as cancelled. */
  async dispose(): Promise<void> {
    this.disposed = true;
    for (const job of this.queue.splice(0)) this.finish(job, cancellationError());
    const exits: Promise<number>[] = [];
    for (const slot of [...this.slots]) {
      if (slot.job) this.finish(slot.job, cancellationError());
      exits.push(this.retire(slot));
    }
    await Promise.all(exits);
  }

  private pump(): void {
    while (this.queue.length > 0) {
      let slot: Slot | undefined;
      for (const s of this.slots) if (!s.job && !s.exited) slot = s;
      if (!slot) {
        if (this.slots.size >= this.options.size) return;
        slot = this.newSlot();
      }
      const job = this.queue.shift()!;
      if (job.settled) continue;
      this.start(slot, job);
    }
  }

  private newSlot(): Slot {
    const worker = spawnWorker(`adapterlens ${this.options.name}`, this.options.resourceLimits);
    const slot: Slot = { worker, job: null, idleTimer: null, exited: false };
    worker.on('message', (msg: FromWorker) => this.onMessage(slot, msg));
    worker.on('error', (err) => this.onDeath(slot, describeDeath(err, this.options.resourceLimits)));
    worker.on('exit', (code) => this.onDeath(slot, `its worker exited (code ${code})`));
    this.slots.add(slot);
    return slot;
  }

  private start(slot: Slot, job: Job): void {
    if (slot.idleTimer) clearTimeout(slot.idleTimer);
    slot.idleTimer = null;
    slot.job = job;
    slot.worker.ref();
    const { timeoutMs } = job.options;
    if (timeoutMs !== undefined) {
      const timer = setTimeout(() => this.finish(job, new WorkerTimeoutError(job.task, timeoutMs)), timeoutMs);
      const resolve = job.resolve;
      const reject = job.reject;
      job.resolve = (v) => {
        clearTimeout(timer);
        resolve(v);
      };
      job.reject = (e) => {
        clearTimeout(timer);
        reject(e);
      };
    }
    const msg: ToWorker = { id: job.id, task: job.task, input: job.input };
    try {
      slot.worker.postMessage(msg, job.options.transfer ?? []);
    } catch (e) {
      // An input structured clone cannot copy: the job fails, the worker stays usable.
      slot.job = null;
      this.idle(slot);
      this.finish(job, e);
    }
  }

  private onMessage(slot: Slot, msg: FromWorker): void {
    const job = slot.job;
    if (!job || job.id !== msg.id) return;
    if (msg.kind === 'progress') {
      try {
        job.options.onProgress?.(msg.done, msg.total);
      } catch {
        // A progress listener's failure is not the job's.
      }
      return;
    }
    // Idle first: finishing pumps the queue, which may hand this worker its next job at once.
    slot.job = null;
    this.idle(slot);
    if (msg.kind === 'result') this.finish(job, null, msg.value);
    else this.finish(job, deserializeError(msg.error));
  }

  /** Settles a job once. A job that ends while its worker still works on it (timeout, cancel) takes the worker down with it. */
  private finish(job: Job, err: unknown, value?: unknown): void {
    if (job.settled) return;
    job.settled = true;
    const qi = this.queue.indexOf(job);
    if (qi >= 0) this.queue.splice(qi, 1);
    for (const slot of this.slots) {
      if (slot.job === job) {
        slot.job = null;
        void this.retire(slot);
      }
    }
    if (err === null) job.resolve(value);
    else job.reject(err);
    this.pump();
  }

  private onDeath(slot: Slot, reason: string): void {
    if (slot.exited) return;
    slot.exited = true;
    this.slots.delete(slot);
    if (slot.idleTimer) clearTimeout(slot.idleTimer);
    const job = slot.job;
    slot.job = null;
    if (job) this.finish(job, new WorkerCrashError(job.task, reason));
    this.pump();
  }

  /** Marks a worker idle: unref'd (it must not keep the process alive) and retired after idleMs unless a job comes. */
  private idle(slot: Slot): void {
    if (slot.exited) return;
    slot.worker.unref();
    if (slot.idleTimer) clearTimeout(slot.idleTimer);
    slot.idleTimer = setTimeout(() => void this.retire(slot), this.options.idleMs ?? 30_000);
    slot.idleTimer.unref();
  }

  private retire(slot: Slot): Promise<number> {
    if (slot.idleTimer) clearTimeout(slot.idleTimer);
    slot.idleTimer = null;
    slot.exited = true;
    this.slots.delete(slot);
    return slot.worker.terminate().catch(() => 0);
  }
}

function describeDeath(err: unknown, limits: ResourceLimits | undefined): string {
  const code = (err as { code?: unknown }).code;
  if (code === 'ERR_WORKER_OUT_OF_MEMORY') {
    return `it ran out of memory${limits?.maxOldGenerationSizeMb ? ` (the limit is ${limits.maxOldGenerationSizeMb} MiB)` : ''}`;
  }
  return err instanceof Error ? err.message : String(err);
}

// ---------------------------------------------------------------------------------
// The process's pools, one per kind of work so that one kind cannot starve another
// (a long tokenization never delays hashing or an inspection).

const cpus = Math.max(1, os.availableParallelism());
/** Tokenizer workers: a long document's pieces are encoded on all of them at once (tokenize-split.ts). */
export const TOKENIZE_WORKERS = Math.max(2, Math.min(4, cpus));

const POOL_OPTIONS = {
  /** Config files, safetensors headers, adapter regexes, history files. */
  inspect: { name: 'inspect', size: 2, resourceLimits: { maxOldGenerationSizeMb: 1024 } },
  tokenize: { name: 'tokenize', size: TOKENIZE_WORKERS, resourceLimits: { maxOldGenerationSizeMb: 4096 } },
  /** Shards are hashed in parallel, one worker per file. */
  hash: { name: 'hash', size: Math.max(2, Math.min(4, cpus)), resourceLimits: { maxOldGenerationSizeMb: 256 } },
} as const satisfies Record<string, PoolOptions>;

export type PoolKind = keyof typeof POOL_OPTIONS;

const pools = new Map<PoolKind, WorkerPool>();

export function pool(kind: PoolKind): WorkerPool {
  let p = pools.get(kind);
  if (!p) {
    p = new WorkerPool(POOL_OPTIONS[kind]);
    pools.set(kind, p);
  }
  return p;
}

/** Stops every pool's workers (tests; a process that exits need not call it: idle workers are unref'd). */
export async function shutdownPools(): Promise<void> {
  const all = [...pools.values()];
  pools.clear();
  await Promise.all(all.map((p) => p.dispose()));
}
