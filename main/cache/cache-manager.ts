// The cache manager the comparison runner uses: document caches (base, per-adapter
// exact) and strategy stores, keyed by content hashes, reused across runs, kept under
// a memory budget with LRU eviction, and reported live to the UI.
//
// Ownership rules, in one place:
// - An entry belongs to the manager. A Lease pins it; pinned entries are never evicted.
// - lease.release() unpins (idempotent). Unpinned entries stay cached until the budget,
//   evict(), clear() or dispose() frees them.
// - evict(key) / clear() on a pinned entry retire it: new acquires no longer find it,
//   it still counts in usage, and it is disposed when its last lease is released.
// - A RunScope (manager.scope()) records what one run holds: its leases and the
//   transient resources it owns (rebuilt caches for generation...). scope.close(),
//   called in the runner's `finally`, releases every lease and disposes every
//   transient, so cancelling at any point frees what the run held; cached entries stay
//   cached, unpinned.
//
// Single flight and cancellation:
// - Concurrent acquires of one key share one creation. `create` gets an AbortSignal
//   that fires only when no waiter wants the result any more (every waiter's signal
//   aborted, or its scope closed) or the manager is disposed.
// - A waiter whose signal aborts rejects at once with cancelledError() (message
//   'cancelled', code 'CANCELLED'); the creation goes on for the others.
// - If a creation rejects, nothing is stored and every waiter rejects with that error.
// - If a creation resolves after every waiter has gone, its value is disposed and not
//   stored (a run that was cancelled leaves nothing behind). A later acquire of the key
//   starts a new creation; it never joins an abandoned one.
import { createHash } from 'node:crypto';
import { endianness } from 'node:os';
import type { CacheEntryKind, CacheUsage, CacheUsageEntry } from '../../shared/cache-stats.js';

/** What the manager can hold: NativeKvCache and NativeKvStore fit. */
export interface CacheResource {
  /** Bytes the resource holds; read once, when the manager takes it. */
  readonly bytes: number;
  dispose(): void;
}

export type { CacheEntryKind, CacheUsage, CacheUsageEntry };

export interface CacheKeyParts {
  kind: CacheEntryKind;
  /** Combined SHA-256 of the model files. */
  modelHash: string;
  /** Combined SHA-256 of the adapter files; null/undefined for the base cache. */
  adapterHash?: string | null;
  /** Document token ids (int32 range). */
  tokens: ArrayLike<number>;
  /** Strategy id for stores (e.g. "lowrank:8"); omitted for caches. */
  strategy?: string;
}

/** An Error with message 'cancelled' and code 'CANCELLED' (the engine's cancellation error). */
export interface CancelledError extends Error {
  code: 'CANCELLED';
}

export function cancelledError(): CancelledError {
  const err = new Error('cancelled') as CancelledError;
  err.code = 'CANCELLED';
  return err;
}

export function isCancelledError(err: unknown): err is CancelledError {
  return err instanceof Error && (err as Error & { code?: unknown }).code === 'CANCELLED';
}

const KEY_VERSION = 'adapterlens.cache-key/1';
const TOKEN_CHUNK = 1 << 16;
const LITTLE_ENDIAN = endianness() === 'LE';

/**
 * A stable SHA-256 hex over a canonical encoding of the parts: a version tag, then each
 * field length-prefixed (so field boundaries cannot shift), absent adapter/strategy
 * distinct from empty strings, then the token count and the ids as little-endian int32.
 * A plain array and an Int32Array of the same ids give the same key.
 * Throws a RangeError for a token id that is not an int32 integer.
 */
export function cacheKey(parts: CacheKeyParts): string {
  const h = createHash('sha256');
  const str = (tag: string, s: string | null | undefined) => {
    if (s === null || s === undefined) {
      h.update(`${tag}:-;`);
      return;
    }
    const b = Buffer.from(s, 'utf8');
    h.update(`${tag}:${b.length}:`);
    h.update(b);
    h.update(';');
  };
  h.update(`${KEY_VERSION}\n`);
  str('kind', parts.kind);
  str('model', parts.modelHash);
  str('adapter', parts.adapterHash);
  str('strategy', parts.strategy);
  const tokens = parts.tokens;
  const n = tokens.length;
  h.update(`tokens:${n}:`);
  if (tokens instanceof Int32Array && LITTLE_ENDIAN) {
    h.update(new Uint8Array(tokens.buffer, tokens.byteOffset, tokens.byteLength));
  } else {
    const chunk = new Int32Array(Math.min(TOKEN_CHUNK, Math.max(n, 1)));
    const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    for (let start = 0; start < n; start += chunk.length) {
      const m = Math.min(chunk.length, n - start);
      for (let i = 0; i < m; i++) {
        const t = tokens[start + i]!;
        if (!Number.isInteger(t) || t < -0x80000000 || t > 0x7fffffff) {
          throw new RangeError(`cacheKey: token ${start + i} is ${t}, not an int32 token id`);
        }
        chunk[i] = t;
      }
      const view = bytes.subarray(0, m * 4);
      h.update(LITTLE_ENDIAN ? view : Buffer.from(view).swap32());
    }
  }
  return h.digest('hex');
}

/** A pin on a cached value. release() unpins; calling it again does nothing. */
export interface Lease<T extends CacheResource> {
  readonly key: string;
  readonly value: T;
  /** True when no creation was started for this acquire (cache hit, or joined one in flight). */
  readonly hit: boolean;
  release(): void;
}

export interface AcquireOptions {
  /** Aborting rejects this acquire with cancelledError(); see the file header for the creation. */
  signal?: AbortSignal;
}

export type CreateFn<T extends CacheResource> = (signal: AbortSignal) => Promise<T>;

export interface CacheManagerOptions {
  budgetBytes: number;
  /** Called when a resource's dispose() throws; by default such errors are dropped. */
  onDisposeError?: (err: unknown, label: string) => void;
}

interface Entry {
  key: string;
  kind: CacheEntryKind;
  label: string;
  value: CacheResource;
  bytes: number;
  pins: number;
  hits: number;
  lastUsed: number;
  retired: boolean;
  disposed: boolean;
}

interface Waiter {
  resolve(lease: Lease<CacheResource>): void;
  reject(err: unknown): void;
  hit: boolean;
  detach(): void;
}

interface Pending {
  key: string;
  kind: CacheEntryKind;
  label: string;
  controller: AbortController;
  waiters: Set<Waiter>;
  abandoned: boolean;
}

/** The hooks a RunScope uses; not part of the public surface. */
interface ScopeHost {
  acquire<T extends CacheResource>(
    key: string,
    kind: CacheEntryKind,
    label: string,
    create: CreateFn<T>,
    options: AcquireOptions,
  ): Promise<Lease<T>>;
  addTransient(r: CacheResource): void;
  /** Disposes r if the manager still tracks it; false when it was already disposed. */
  disposeTransient(r: CacheResource): boolean;
}

export class CacheManager {
  private budget: number;
  private readonly onDisposeError: ((err: unknown, label: string) => void) | undefined;
  /** Cached entries in LRU order (first = least recently used). */
  private readonly entries = new Map<string, Entry>();
  /** Entries evicted/cleared while pinned, waiting for their last release. */
  private readonly retired = new Set<Entry>();
  private readonly pending = new Map<string, Pending>();
  private readonly transients = new Map<CacheResource, number>();
  private readonly listeners = new Set<() => void>();
  private hits = 0;
  private misses = 0;
  private evictions = 0;
  private disposed = false;
  private readonly host: ScopeHost;

  constructor(options: CacheManagerOptions) {
    this.budget = checkBudget(options.budgetBytes);
    this.onDisposeError = options.onDisposeError;
    this.host = {
      acquire: (key, kind, label, create, opts) => this.acquire(key, kind, label, create, opts),
      addTransient: (r) => this.addTransient(r),
      disposeTransient: (r) => this.disposeTransient(r),
    };
  }

  get budgetBytes(): number {
    return this.budget;
  }

  /** Changes the budget and evicts unpinned entries until it holds (as far as it can). */
  setBudget(budgetBytes: number): void {
    this.budget = checkBudget(budgetBytes);
    this.enforceBudget();
    this.emit();
  }

  /** Whether `key` is cached now (no hit is counted, no LRU update). */
  has(key: string): boolean {
    return this.entries.has(key);
  }

  /**
   * The cached value for `key` (a hit) or the result of `create` (a miss), pinned by the
   * returned lease. See the file header for single flight and cancellation. `key` must
   * always name the same kind of resource (cacheKey() puts the kind into the key).
   */
  acquire<T extends CacheResource>(
    key: string,
    kind: CacheEntryKind,
    label: string,
    create: CreateFn<T>,
    options: AcquireOptions = {},
  ): Promise<Lease<T>> {
    if (this.disposed) return Promise.reject(new Error('the cache manager has been disposed'));
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(cancelledError());
    const entry = this.entries.get(key);
    if (entry) {
      if (entry.kind !== kind) {
        return Promise.reject(new Error(`cache key ${key} holds a ${entry.kind}, not a ${kind}`));
      }
      this.hits++;
      entry.hits++;
      entry.pins++;
      this.touch(entry);
      const lease = this.makeLease<T>(entry, true);
      this.emit();
      return Promise.resolve(lease);
    }
    let pending = this.pending.get(key);
    let hit: boolean;
    if (pending) {
      if (pending.kind !== kind) {
        return Promise.reject(new Error(`cache key ${key} is being created as a ${pending.kind}, not a ${kind}`));
      }
      this.hits++;
      hit = true;
    } else {
      this.misses++;
      pending = this.startCreation(key, kind, label, create);
      hit = false;
    }
    return this.wait<T>(pending, hit, signal);
  }

  /** Evicts one entry: disposed now if unpinned, retired (disposed on last release) if pinned. */
  evict(key: string): boolean {
    const entry = this.entries.get(key);
    if (!entry) return false;
    this.entries.delete(key);
    this.evictions++;
    if (entry.pins > 0) this.retire(entry);
    else this.disposeEntry(entry);
    this.emit();
    return true;
  }

  /** Disposes every unpinned entry; pinned ones are retired and disposed on their last release. */
  clear(): void {
    for (const entry of [...this.entries.values()]) {
      this.entries.delete(entry.key);
      if (entry.pins > 0) this.retire(entry);
      else this.disposeEntry(entry);
    }
    this.emit();
  }

  /**
   * Whether `bytes` more would fit under the budget once every unpinned entry were
   * evicted (what is pinned, retired or owned by a run stays).
   */
  canFit(bytes: number): boolean {
    return this.pinnedBytes() + bytes <= this.budget;
  }

  usage(): CacheUsage {
    const entries: CacheUsageEntry[] = [];
    for (const e of [...this.entries.values(), ...this.retired]) {
      entries.push({
        key: e.key,
        kind: e.kind,
        label: e.label,
        bytes: e.bytes,
        pinned: e.pins > 0,
        leases: e.pins,
        lastUsed: e.lastUsed,
        hits: e.hits,
        retired: e.retired,
      });
    }
    const usedBytes = this.usedBytes();
    return {
      budgetBytes: this.budget,
      usedBytes,
      pinnedBytes: this.pinnedBytes(),
      transientBytes: this.transientBytes(),
      entries,
      hits: this.hits,
      misses: this.misses,
      evictions: this.evictions,
      overBudget: usedBytes > this.budget,
    };
  }

  /** Called after every insert, eviction, pin, release, clear and dispose; returns an unsubscribe function. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** A tracker of what one run holds; close() it in `finally`. */
  scope(): RunScope {
    return new RunScope(this.host);
  }

  /**
   * Disposes everything: cached, pinned and retired entries and run transients; creations
   * in flight are aborted and their waiters reject with cancelledError(). Later acquires
   * reject; lease.release() and scope.close() become no-ops for what was disposed here.
   */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const p of this.pending.values()) {
      p.abandoned = true;
      p.controller.abort(cancelledError());
      for (const w of p.waiters) {
        w.detach();
        w.reject(cancelledError());
      }
      p.waiters.clear();
    }
    this.pending.clear();
    for (const e of this.entries.values()) this.disposeEntry(e);
    this.entries.clear();
    for (const e of this.retired) this.disposeEntry(e);
    this.retired.clear();
    for (const r of [...this.transients.keys()]) this.disposeTransient(r);
    this.emit();
    this.listeners.clear();
  }

  // ---- internals ----

  private startCreation<T extends CacheResource>(key: string, kind: CacheEntryKind, label: string, create: CreateFn<T>): Pending {
    const pending: Pending = {
      key,
      kind,
      label,
      controller: new AbortController(),
      waiters: new Set(),
      abandoned: false,
    };
    this.pending.set(key, pending);
    let p: Promise<T>;
    try {
      p = Promise.resolve(create(pending.controller.signal));
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then(
      (value) => this.created(pending, value),
      (err: unknown) => this.failed(pending, err),
    );
    return pending;
  }

  private wait<T extends CacheResource>(pending: Pending, hit: boolean, signal: AbortSignal | undefined): Promise<Lease<T>> {
    return new Promise<Lease<T>>((resolve, reject) => {
      const onAbort = () => {
        if (!pending.waiters.delete(waiter)) return;
        reject(cancelledError());
        if (pending.waiters.size === 0) this.abandon(pending);
      };
      const waiter: Waiter = {
        resolve: resolve as (lease: Lease<CacheResource>) => void,
        reject,
        hit,
        detach: () => signal?.removeEventListener('abort', onAbort),
      };
      pending.waiters.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private abandon(pending: Pending): void {
    pending.abandoned = true;
    if (this.pending.get(pending.key) === pending) this.pending.delete(pending.key);
    pending.controller.abort(cancelledError());
  }

  private created(pending: Pending, value: CacheResource): void {
    if (this.pending.get(pending.key) === pending) this.pending.delete(pending.key);
    if (pending.abandoned || pending.waiters.size === 0 || this.disposed) {
      this.safeDispose(value, pending.label);
      return;
    }
    const bytes = value.bytes;
    if (!Number.isFinite(bytes) || bytes < 0) {
      this.safeDispose(value, pending.label);
      this.failed(pending, new Error(`${pending.label}: the resource reports ${bytes} bytes`));
      return;
    }
    const entry: Entry = {
      key: pending.key,
      kind: pending.kind,
      label: pending.label,
      value,
      bytes,
      pins: pending.waiters.size,
      hits: [...pending.waiters].filter((w) => w.hit).length,
      lastUsed: Date.now(),
      retired: false,
      disposed: false,
    };
    this.entries.set(entry.key, entry);
    for (const w of pending.waiters) {
      w.detach();
      w.resolve(this.makeLease(entry, w.hit));
    }
    pending.waiters.clear();
    this.enforceBudget();
    this.emit();
  }

  private failed(pending: Pending, err: unknown): void {
    if (this.pending.get(pending.key) === pending) this.pending.delete(pending.key);
    for (const w of pending.waiters) {
      w.detach();
      w.reject(err);
    }
    pending.waiters.clear();
  }

  private makeLease<T extends CacheResource>(entry: Entry, hit: boolean): Lease<T> {
    let released = false;
    return {
      key: entry.key,
      value: entry.value as T,
      hit,
      release: () => {
        if (released) return;
        released = true;
        this.unpin(entry);
      },
    };
  }

  private unpin(entry: Entry): void {
    if (entry.disposed) return;
    entry.pins--;
    if (entry.retired) {
      if (entry.pins === 0) {
        this.retired.delete(entry);
        this.disposeEntry(entry);
      }
    } else {
      this.touch(entry);
      this.enforceBudget();
    }
    this.emit();
  }

  private touch(entry: Entry): void {
    entry.lastUsed = Date.now();
    this.entries.delete(entry.key);
    this.entries.set(entry.key, entry);
  }

  private retire(entry: Entry): void {
    entry.retired = true;
    this.retired.add(entry);
  }

  /** Evicts least recently used unpinned entries until usedBytes <= budget (or none is left). */
  private enforceBudget(): void {
    let used = this.usedBytes();
    if (used <= this.budget) return;
    for (const entry of [...this.entries.values()]) {
      if (used <= this.budget) break;
      if (entry.pins > 0) continue;
      this.entries.delete(entry.key);
      this.disposeEntry(entry);
      this.evictions++;
      used -= entry.bytes;
    }
  }

  private addTransient(r: CacheResource): void {
    if (this.disposed) {
      this.safeDispose(r, 'transient');
      throw new Error('the cache manager has been disposed');
    }
    const bytes = Number.isFinite(r.bytes) && r.bytes > 0 ? r.bytes : 0;
    this.transients.set(r, bytes);
    this.enforceBudget();
    this.emit();
  }

  private disposeTransient(r: CacheResource): boolean {
    if (!this.transients.delete(r)) return false;
    this.safeDispose(r, 'transient');
    if (!this.disposed) this.emit();
    return true;
  }

  private disposeEntry(entry: Entry): void {
    if (entry.disposed) return;
    entry.disposed = true;
    this.safeDispose(entry.value, entry.label);
  }

  private safeDispose(r: CacheResource, label: string): void {
    try {
      r.dispose();
    } catch (err) {
      this.onDisposeError?.(err, label);
    }
  }

  private transientBytes(): number {
    let n = 0;
    for (const b of this.transients.values()) n += b;
    return n;
  }

  private usedBytes(): number {
    let n = this.transientBytes();
    for (const e of this.entries.values()) n += e.bytes;
    for (const e of this.retired) n += e.bytes;
    return n;
  }

  private pinnedBytes(): number {
    let n = this.transientBytes();
    for (const e of this.entries.values()) if (e.pins > 0) n += e.bytes;
    for (const e of this.retired) n += e.bytes;
    return n;
  }

  private emit(): void {
    for (const l of [...this.listeners]) {
      try {
        l();
      } catch {
        // A listener's failure must not break cache bookkeeping.
      }
    }
  }
}

/**
 * What one run holds. acquire() pins entries for the run; own() takes transient
 * resources (counted in usage while owned); close() releases every lease and disposes
 * every owned transient, and cancels this scope's acquires still waiting. After close(),
 * acquire() rejects with cancelledError() and own() disposes what it is given and
 * throws cancelledError(), so late work of a cancelled run cannot leak.
 */
export class RunScope {
  private readonly leases = new Set<Lease<CacheResource>>();
  private readonly owned: CacheResource[] = [];
  private readonly controller = new AbortController();
  private isClosed = false;

  /** @internal Use CacheManager.scope(). */
  constructor(private readonly host: ScopeHost) {}

  get closed(): boolean {
    return this.isClosed;
  }

  /** The scope's own signal: aborted by close(). Pass it to native work the run starts. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** CacheManager.acquire, with the lease recorded here; also cancelled by close(). */
  async acquire<T extends CacheResource>(
    key: string,
    kind: CacheEntryKind,
    label: string,
    create: CreateFn<T>,
    options: AcquireOptions = {},
  ): Promise<Lease<T>> {
    if (this.isClosed) throw cancelledError();
    const linked = linkSignals(this.controller.signal, options.signal);
    let inner: Lease<T>;
    try {
      inner = await this.host.acquire(key, kind, label, create, { signal: linked.signal });
    } finally {
      linked.unlink();
    }
    if (this.isClosed) {
      inner.release();
      throw cancelledError();
    }
    const lease: Lease<T> = {
      key: inner.key,
      value: inner.value,
      hit: inner.hit,
      release: () => {
        this.leases.delete(lease);
        inner.release();
      },
    };
    this.leases.add(lease);
    return lease;
  }

  /** Takes a transient resource; disposed by close() or free(). Returns it. */
  own<T extends CacheResource>(resource: T): T {
    if (this.isClosed) {
      try {
        resource.dispose();
      } catch {
        // already on a cancelled path
      }
      throw cancelledError();
    }
    this.host.addTransient(resource);
    this.owned.push(resource);
    return resource;
  }

  /** Disposes an owned transient now (no-op if it is not owned or already freed). */
  free(resource: CacheResource): void {
    const i = this.owned.indexOf(resource);
    if (i < 0) return;
    this.owned.splice(i, 1);
    this.host.disposeTransient(resource);
  }

  /** Releases every lease, disposes every owned transient (newest first). Idempotent; never throws. */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.controller.abort(cancelledError());
    for (const lease of [...this.leases]) lease.release();
    this.leases.clear();
    for (const r of this.owned.splice(0).reverse()) this.host.disposeTransient(r);
  }
}

function linkSignals(a: AbortSignal, b: AbortSignal | undefined): { signal: AbortSignal; unlink(): void } {
  if (!b) return { signal: a, unlink: () => {} };
  const c = new AbortController();
  const onAbort = () => c.abort(cancelledError());
  if (a.aborted || b.aborted) onAbort();
  a.addEventListener('abort', onAbort, { once: true });
  b.addEventListener('abort', onAbort, { once: true });
  return {
    signal: c.signal,
    unlink: () => {
      a.removeEventListener('abort', onAbort);
      b.removeEventListener('abort', onAbort);
    },
  };
}

function checkBudget(bytes: number): number {
  if (!Number.isFinite(bytes) || bytes < 0) throw new RangeError(`budgetBytes must be a non-negative number, got ${bytes}`);
  return bytes;
}
