// Folder digests as background jobs, one per folder however many ask: the model's load,
// its adapters' loads, a run's prefetch and the report all join the same hashing.
//
// An EngineSession owns one (or is given one). A new process can make it before the
// engine: the CLI starts its run's folders hashing, waits until their files are with the
// hash workers (`dispatched`), and only then starts the engine (the CUDA probe, a child,
// then the device), whose few synchronous moments (loading the build) hold this thread but
// not the workers.
// On a first run the SHA-256 of the largest shard, one core's work, is the longest job of
// the run, so every moment it starts earlier comes off the run's end.
import path from 'node:path';
import { untilAborted } from '../cancellation.js';
import type { DigestCache } from './digest-cache.js';
import { cachedDirDigest, sha256Dir, type DirDigest } from './sha256.js';

/** A folder's digest being computed in the background. */
export interface DigestJob {
  promise: Promise<DirDigest>;
  /** Settles once every file of the folder is known or with a hash worker (or the job failed). */
  dispatched: Promise<void>;
  abort(): void;
  /** Hashing progress in bytes; returns the unsubscribe. */
  listen(listener: (done: number, total: number) => void): () => void;
}

export interface DigestPrefetch {
  /** One per folder. */
  jobs: readonly DigestJob[];
  /** Settles once every folder's files are known or with a hash worker (never rejects). */
  dispatched: Promise<void>;
  /** From now on a stop of the prefetch's signal leaves these jobs going (their loads own them). */
  release(): void;
}

export class DigestJobs {
  /** By folder (resolved path). */
  private readonly running = new Map<string, DigestJob>();
  /** How many times each running job was asked for (start() calls): an ahead job no one else asked for may be dropped. */
  private readonly askers = new WeakMap<DigestJob, number>();
  /** Folders an unreleased prefetch holds, with how many hold each: abortAll leaves them going. */
  private readonly held = new Map<string, number>();

  constructor(readonly cache: DigestCache) {}

  /** The folder's running job, or a new one: known digests at once, otherwise hashing starts now. */
  start(dirIn: string): DigestJob {
    const dir = path.resolve(dirIn);
    const running = this.running.get(dir);
    if (running) {
      this.askers.set(running, (this.askers.get(running) ?? 1) + 1);
      return running;
    }
    const controller = new AbortController();
    const listeners = new Set<(done: number, total: number) => void>();
    let markDispatched!: () => void;
    const dispatched = new Promise<void>((r) => (markDispatched = r));
    const promise = (async (): Promise<DirDigest> => {
      const known = await cachedDirDigest(dir, this.cache);
      if (known) return known;
      return sha256Dir(dir, {
        signal: controller.signal,
        onProgress: (d, t) => listeners.forEach((l) => l(d, t)),
        onDispatched: markDispatched,
        cache: this.cache,
      });
    })();
    const job: DigestJob = {
      promise,
      dispatched,
      abort: () => {
        // Gone from the map at once: whoever asks next starts afresh rather than join a cancelled job.
        if (this.running.get(dir) === job) this.running.delete(dir);
        controller.abort();
      },
      listen: (l) => {
        listeners.add(l);
        return () => listeners.delete(l);
      },
    };
    this.running.set(dir, job);
    // Never an unhandled rejection: whoever needs the digest awaits `promise` and sees the error.
    promise
      .catch(() => undefined)
      .finally(() => {
        markDispatched();
        if (this.running.get(dir) === job) this.running.delete(dir);
      });
    return job;
  }

  /**
   * The folder's digest: from the cache when every file's stamp is unchanged, else from its
   * job (joined or started). `signal` stops the wait, not the hashing.
   */
  async digest(dirIn: string, signal?: AbortSignal): Promise<DirDigest> {
    const dir = path.resolve(dirIn);
    // A running job is joined at once (counted as asked for before this call returns).
    if (this.running.has(dir)) return untilAborted(this.start(dir).promise, signal);
    const known = await cachedDirDigest(dir, this.cache);
    if (known) return known;
    return untilAborted(this.start(dir).promise, signal);
  }

  /**
   * Starts these folders hashing ahead of their loads (which join the jobs). Until
   * `release()`, stopping `signal` stops these jobs too.
   */
  prefetch(dirs: readonly string[], signal?: AbortSignal): DigestPrefetch {
    const folders = [...new Set(dirs.map((d) => path.resolve(d)))];
    const jobs = folders.map((dir) => this.start(dir));
    for (const dir of folders) this.held.set(dir, (this.held.get(dir) ?? 0) + 1);
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      signal?.removeEventListener('abort', onAbort);
      for (const dir of folders) {
        const n = (this.held.get(dir) ?? 1) - 1;
        if (n > 0) this.held.set(dir, n);
        else this.held.delete(dir);
      }
    };
    const onAbort = (): void => {
      release();
      jobs.forEach((j) => j.abort());
    };
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    return { jobs, dispatched: Promise.all(jobs.map((j) => j.dispatched)).then(() => undefined), release };
  }

  /**
   * Starts the folder's hashing before anyone needs it (the app, when a folder is picked);
   * `drop()` stops it again unless someone else has asked for it since (a run's prefetch or
   * load), so that a folder picked and then replaced does not keep the hash workers busy
   * ahead of the one that is used.
   */
  ahead(dir: string): { drop(): void } {
    // Only a job this call starts may be dropped: one already running was asked for before.
    const mine = !this.running.has(path.resolve(dir));
    const job = this.start(dir);
    return {
      drop: () => {
        if (mine && (this.askers.get(job) ?? 1) === 1 && this.running.get(path.resolve(dir)) === job) job.abort();
      },
    };
  }

  /**
   * Stops every job but `keep`'s and those an unreleased prefetch holds (a run that is
   * starting wants them): what the others hash is no longer wanted.
   */
  abortAll(keep?: string): void {
    for (const [dir, job] of [...this.running]) if (dir !== keep && !this.held.has(dir)) job.abort();
  }
}
