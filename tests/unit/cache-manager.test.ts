import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CacheManager,
  cacheKey,
  isCancelledError,
  type CacheEntryKind,
  type CacheResource,
  type Lease,
} from '../../main/cache/cache-manager.js';

class Fake implements CacheResource {
  disposed = 0;
  constructor(
    readonly name: string,
    readonly bytes: number,
  ) {}
  dispose(): void {
    this.disposed++;
  }
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(e: unknown): void;
}
function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const tick = () => new Promise<void>((r) => setImmediate(r));
const isCancel = (e: unknown) => isCancelledError(e) && e.message === 'cancelled' && e.code === 'CANCELLED';

/** acquire() of a fresh Fake with a call counter. */
function creator(m: CacheManager) {
  const made: Fake[] = [];
  const get = (key: string, bytes: number, kind: CacheEntryKind = 'store'): Promise<Lease<Fake>> =>
    m.acquire(key, kind, key, async () => {
      const f = new Fake(key, bytes);
      made.push(f);
      return f;
    });
  return { made, get };
}

/** Puts an unpinned entry in the cache. */
async function put(m: CacheManager, key: string, bytes: number): Promise<Fake> {
  const l = await m.acquire(key, 'store', key, async () => new Fake(key, bytes));
  l.release();
  return l.value;
}

describe('cacheKey', () => {
  const base = { kind: 'exact-cache' as const, modelHash: 'm1', adapterHash: 'a1', tokens: [1, 2, 3], strategy: 'seed-minikv' };

  it('is a stable SHA-256 hex, equal for plain arrays and Int32Arrays', () => {
    const k = cacheKey(base);
    assert.match(k, /^[0-9a-f]{64}$/);
    assert.equal(cacheKey({ ...base }), k);
    assert.equal(cacheKey({ ...base, tokens: Int32Array.from([1, 2, 3]) }), k);
    // a subarray view hashes only its own ids
    assert.equal(cacheKey({ ...base, tokens: Int32Array.from([9, 1, 2, 3, 9]).subarray(1, 4) }), k);
  });

  it('changes with every part, and field boundaries cannot shift', () => {
    const k = cacheKey(base);
    const variants = [
      { ...base, kind: 'store' as const },
      { ...base, modelHash: 'm2' },
      { ...base, adapterHash: 'a2' },
      { ...base, adapterHash: null },
      { ...base, adapterHash: '' },
      { ...base, strategy: undefined },
      { ...base, strategy: 'lowrank:8' },
      { ...base, tokens: [1, 2, 4] },
      { ...base, tokens: [1, 2, 3, 0] },
      { ...base, tokens: [] },
    ];
    const keys = new Set([k, ...variants.map((v) => cacheKey(v))]);
    assert.equal(keys.size, variants.length + 1);
    assert.notEqual(cacheKey({ ...base, modelHash: 'ab', adapterHash: 'c' }), cacheKey({ ...base, modelHash: 'a', adapterHash: 'bc' }));
    assert.equal(cacheKey({ ...base, adapterHash: null }), cacheKey({ ...base, adapterHash: undefined }));
  });

  it('rejects ids that are not int32, and hashes 1M tokens fast', () => {
    assert.throws(() => cacheKey({ ...base, tokens: [1, 2.5] }), RangeError);
    assert.throws(() => cacheKey({ ...base, tokens: [2 ** 31] }), RangeError);
    const big = new Int32Array(1_000_000).map((_, i) => i % 32000);
    const arr = Array.from(big);
    const t0 = performance.now();
    const k1 = cacheKey({ ...base, tokens: big });
    const k2 = cacheKey({ ...base, tokens: arr });
    assert.equal(k1, k2);
    assert.ok(performance.now() - t0 < 2000);
  });
});

describe('CacheManager', () => {
  it('counts misses and hits, and a second acquire skips create', async () => {
    const m = new CacheManager({ budgetBytes: 1000 });
    const { made, get } = creator(m);
    const l1 = await get('doc', 100, 'base-cache');
    assert.equal(l1.hit, false);
    l1.release();
    const l2 = await get('doc', 100, 'base-cache');
    assert.equal(l2.hit, true);
    assert.equal(l2.value, l1.value);
    assert.equal(made.length, 1);
    const u = m.usage();
    assert.equal(u.misses, 1);
    assert.equal(u.hits, 1);
    assert.equal(u.entries.length, 1);
    assert.deepEqual(
      { kind: u.entries[0]!.kind, label: u.entries[0]!.label, bytes: u.entries[0]!.bytes, pinned: u.entries[0]!.pinned, hits: u.entries[0]!.hits },
      { kind: 'base-cache', label: 'doc', bytes: 100, pinned: true, hits: 1 },
    );
    assert.equal(u.usedBytes, 100);
    assert.equal(u.pinnedBytes, 100);
    l2.release();
    assert.equal(m.usage().pinnedBytes, 0);
    assert.equal(made[0]!.disposed, 0);
    // a key of another kind is refused
    await assert.rejects(m.acquire('doc', 'store', 'x', async () => new Fake('x', 1)), /holds a base-cache/);
  });

  it('shares one creation between concurrent acquires (single flight)', async () => {
    const m = new CacheManager({ budgetBytes: 1000 });
    const d = deferred<Fake>();
    let calls = 0;
    const create = () => {
      calls++;
      return d.promise;
    };
    const p1 = m.acquire('k', 'store', 'k', create);
    const p2 = m.acquire('k', 'store', 'k', create);
    const p3 = m.acquire('k', 'store', 'k', create);
    assert.equal(calls, 1);
    d.resolve(new Fake('k', 10));
    const [a, b, c] = await Promise.all([p1, p2, p3]);
    assert.equal(a.value, b.value);
    assert.equal(b.value, c.value);
    assert.deepEqual([a.hit, b.hit, c.hit], [false, true, true]);
    const u = m.usage();
    assert.equal(u.misses, 1);
    assert.equal(u.hits, 2);
    assert.equal(u.entries[0]!.leases, 3);
    assert.equal(u.entries[0]!.hits, 2);
    // release is idempotent: releasing one lease twice leaves the others pinned
    a.release();
    a.release();
    assert.equal(m.usage().entries[0]!.leases, 2);
    b.release();
    assert.equal(m.usage().entries[0]!.pinned, true);
    c.release();
    assert.equal(m.usage().entries[0]!.pinned, false);
  });

  it('keeps LRU order: acquires and releases refresh an entry', async () => {
    const m = new CacheManager({ budgetBytes: 100 });
    const a = await put(m, 'a', 40);
    const b = await put(m, 'b', 40);
    // touch a: b is now the least recently used (an acquire counts as a use)
    const held = await m.acquire('a', 'store', 'a', async () => new Fake('never', 1));
    assert.deepEqual(m.usage().entries.map((e) => e.key), ['b', 'a']);
    held.release();
    assert.deepEqual(m.usage().entries.map((e) => e.key), ['b', 'a']);
    const c = await m.acquire('c', 'store', 'c', async () => new Fake('c', 40));
    assert.equal(b.disposed, 1);
    assert.equal(a.disposed, 0);
    assert.equal(c.value.disposed, 0);
    assert.equal(m.has('b'), false);
    assert.deepEqual(m.usage().entries.map((e) => e.key), ['a', 'c']);
    assert.equal(m.usage().evictions, 1);
  });

  it('a release counts as a use: an entry held longer is more recently used', async () => {
    const m = new CacheManager({ budgetBytes: 100 });
    const x = await m.acquire('x', 'store', 'x', async () => new Fake('x', 40));
    const y = await m.acquire('y', 'store', 'y', async () => new Fake('y', 40));
    y.release();
    x.release();
    assert.deepEqual(m.usage().entries.map((e) => e.key), ['y', 'x']);
    await m.acquire('z', 'store', 'z', async () => new Fake('z', 40));
    assert.deepEqual([x.value.disposed, y.value.disposed], [0, 1]);
  });

  it('budget eviction disposes exactly the least recently used unpinned entries', async () => {
    const m = new CacheManager({ budgetBytes: 100 });
    const a = await put(m, 'a', 30);
    const b = await put(m, 'b', 30);
    const c = await put(m, 'c', 30);
    const d = await m.acquire('d', 'store', 'd', async () => new Fake('d', 70)); // 160 → evict a, b → 100
    assert.deepEqual([a.disposed, b.disposed, c.disposed, d.value.disposed], [1, 1, 0, 0]);
    const u = m.usage();
    assert.equal(u.usedBytes, 100);
    assert.equal(u.evictions, 2);
    assert.equal(u.overBudget, false);
    assert.deepEqual(u.entries.map((e) => e.key), ['c', 'd']);
  });

  it('never evicts pinned entries, flags overBudget, and evicts once they are released', async () => {
    const m = new CacheManager({ budgetBytes: 50 });
    const a = await m.acquire('a', 'store', 'a', async () => new Fake('a', 40));
    const b = await m.acquire('b', 'store', 'b', async () => new Fake('b', 40));
    assert.equal(a.value.disposed, 0);
    assert.equal(b.value.disposed, 0);
    let u = m.usage();
    assert.equal(u.usedBytes, 80);
    assert.equal(u.pinnedBytes, 80);
    assert.equal(u.overBudget, true);
    assert.equal(u.evictions, 0);
    assert.equal(m.canFit(1), false);
    a.release(); // a is unpinned now and the budget is exceeded: a goes
    assert.equal(a.value.disposed, 1);
    assert.equal(b.value.disposed, 0);
    u = m.usage();
    assert.equal(u.overBudget, false);
    assert.equal(u.usedBytes, 40);
  });

  it('canFit counts only what cannot be evicted', async () => {
    const m = new CacheManager({ budgetBytes: 100 });
    await put(m, 'u', 50); // unpinned: evictable
    const p = await m.acquire('p', 'store', 'p', async () => new Fake('p', 40));
    assert.equal(m.canFit(60), true);
    assert.equal(m.canFit(61), false);
    p.release();
    assert.equal(m.canFit(100), true);
    assert.equal(m.canFit(101), false);
  });

  it('stores nothing when create fails, and every waiter gets the error', async () => {
    const m = new CacheManager({ budgetBytes: 1000 });
    const d = deferred<Fake>();
    const p1 = m.acquire('k', 'store', 'k', () => d.promise);
    const p2 = m.acquire('k', 'store', 'k', () => d.promise);
    const boom = new Error('out of memory');
    d.reject(boom);
    await assert.rejects(p1, (e) => e === boom);
    await assert.rejects(p2, (e) => e === boom);
    assert.equal(m.has('k'), false);
    assert.equal(m.usage().entries.length, 0);
    assert.equal(m.usage().usedBytes, 0);
    // a synchronous throw counts too, and the next acquire creates again
    await assert.rejects(
      m.acquire('k', 'store', 'k', () => {
        throw new Error('sync');
      }),
      /sync/,
    );
    const l = await m.acquire('k', 'store', 'k', async () => new Fake('k', 5));
    assert.equal(l.hit, false);
    assert.equal(m.usage().misses, 3);
  });

  it('an aborted waiter rejects with CANCELLED while the creation goes on for the others', async () => {
    const m = new CacheManager({ budgetBytes: 1000 });
    const d = deferred<Fake>();
    let createSignal: AbortSignal | undefined;
    const create = (s: AbortSignal) => {
      createSignal = s;
      return d.promise;
    };
    const ac = new AbortController();
    const pa = m.acquire('k', 'store', 'k', create, { signal: ac.signal });
    const pb = m.acquire('k', 'store', 'k', create);
    ac.abort();
    await assert.rejects(pa, isCancel);
    assert.equal(createSignal!.aborted, false);
    const f = new Fake('k', 10);
    d.resolve(f);
    const b = await pb;
    assert.equal(b.value, f);
    assert.equal(m.usage().entries[0]!.leases, 1);
    b.release();
    assert.equal(m.usage().entries[0]!.pinned, false);
    assert.equal(f.disposed, 0);
  });

  it('when the last waiter aborts, the creation is cancelled and its late result is disposed, not stored', async () => {
    const m = new CacheManager({ budgetBytes: 1000 });
    const d = deferred<Fake>();
    let createSignal: AbortSignal | undefined;
    const ac = new AbortController();
    const p = m.acquire('k', 'store', 'k', (s) => {
      createSignal = s;
      return d.promise;
    }, { signal: ac.signal });
    ac.abort();
    await assert.rejects(p, isCancel);
    assert.equal(createSignal!.aborted, true);
    // a new acquire does not join the abandoned creation
    const d2 = deferred<Fake>();
    const p2 = m.acquire('k', 'store', 'k', () => d2.promise);
    const late = new Fake('late', 10);
    d.resolve(late);
    await tick();
    assert.equal(late.disposed, 1);
    assert.equal(m.has('k'), false);
    const fresh = new Fake('fresh', 10);
    d2.resolve(fresh);
    assert.equal((await p2).value, fresh);
    assert.equal(m.usage().misses, 2);
  });

  it('an already-aborted signal rejects at once without creating', async () => {
    const m = new CacheManager({ budgetBytes: 1000 });
    const ac = new AbortController();
    ac.abort();
    let calls = 0;
    await assert.rejects(
      m.acquire('k', 'store', 'k', async () => {
        calls++;
        return new Fake('k', 1);
      }, { signal: ac.signal }),
      isCancel,
    );
    assert.equal(calls, 0);
    assert.equal(m.usage().misses, 0);
  });

  it('evict() disposes an unpinned entry, retires a pinned one until its last release', async () => {
    const m = new CacheManager({ budgetBytes: 1000 });
    const u = await put(m, 'u', 10);
    const p1 = await m.acquire('p', 'store', 'p', async () => new Fake('p', 20));
    const p2 = await m.acquire('p', 'store', 'p', async () => new Fake('never', 1));
    assert.equal(m.evict('u'), true);
    assert.equal(u.disposed, 1);
    assert.equal(m.evict('missing'), false);
    assert.equal(m.evict('p'), true);
    assert.equal(p1.value.disposed, 0);
    assert.equal(m.has('p'), false);
    let usage = m.usage();
    assert.equal(usage.usedBytes, 20);
    assert.equal(usage.entries[0]!.retired, true);
    p1.release();
    assert.equal(p1.value.disposed, 0);
    p2.release();
    assert.equal(p1.value.disposed, 1);
    p2.release();
    assert.equal(p1.value.disposed, 1);
    usage = m.usage();
    assert.equal(usage.usedBytes, 0);
    assert.equal(usage.evictions, 2);
  });

  it('clear() disposes unpinned entries now and pinned ones on their last release', async () => {
    const m = new CacheManager({ budgetBytes: 1000 });
    const u = await put(m, 'u', 10);
    const p = await m.acquire('p', 'store', 'p', async () => new Fake('p', 20));
    m.clear();
    assert.equal(u.disposed, 1);
    assert.equal(p.value.disposed, 0);
    assert.equal(m.usage().usedBytes, 20);
    // the cleared key is created anew
    const again = await m.acquire('p', 'store', 'p', async () => new Fake('p2', 20));
    assert.equal(again.hit, false);
    assert.notEqual(again.value, p.value);
    p.release();
    assert.equal(p.value.disposed, 1);
    assert.equal(again.value.disposed, 0);
    assert.equal(m.usage().evictions, 0);
  });

  it('dispose() disposes everything once, aborts creations, and refuses later acquires', async () => {
    const m = new CacheManager({ budgetBytes: 1000 });
    const u = await put(m, 'u', 10);
    const p = await m.acquire('p', 'store', 'p', async () => new Fake('p', 20));
    const scope = m.scope();
    const t = scope.own(new Fake('t', 5));
    let createSignal: AbortSignal | undefined;
    const d = deferred<Fake>();
    const waiting = m.acquire('w', 'store', 'w', (s) => {
      createSignal = s;
      return d.promise;
    });
    m.dispose();
    assert.deepEqual([u.disposed, p.value.disposed, t.disposed], [1, 1, 1]);
    await assert.rejects(waiting, isCancel);
    assert.equal(createSignal!.aborted, true);
    const late = new Fake('late', 1);
    d.resolve(late);
    await tick();
    assert.equal(late.disposed, 1);
    p.release();
    scope.close();
    m.dispose();
    assert.deepEqual([u.disposed, p.value.disposed, t.disposed], [1, 1, 1]);
    await assert.rejects(m.acquire('x', 'store', 'x', async () => new Fake('x', 1)), /disposed/);
  });

  it('onChange fires on insert, pin, release, eviction and clear; unsubscribe stops it', async () => {
    const m = new CacheManager({ budgetBytes: 50 });
    let n = 0;
    const off = m.onChange(() => n++);
    const a = await m.acquire('a', 'store', 'a', async () => new Fake('a', 30)); // insert
    assert.equal(n, 1);
    a.release();
    assert.equal(n, 2);
    (await m.acquire('a', 'store', 'a', async () => new Fake('never', 1))).release(); // pin + release
    assert.equal(n, 4);
    const b = await m.acquire('b', 'store', 'b', async () => new Fake('b', 30)); // insert evicting a
    assert.equal(n, 5);
    assert.equal(m.usage().evictions, 1);
    b.release();
    m.evict('b');
    assert.equal(n, 7);
    m.clear();
    assert.equal(n, 8);
    off();
    await put(m, 'c', 1);
    assert.equal(n, 8);
    // a throwing listener does not break bookkeeping
    m.onChange(() => {
      throw new Error('listener');
    });
    await put(m, 'd', 1);
    assert.equal(m.has('d'), true);
  });
});

describe('RunScope', () => {
  it('close() releases every lease and disposes transients even when the run threw', async () => {
    const m = new CacheManager({ budgetBytes: 1000 });
    const scope = m.scope();
    let base: Fake | undefined;
    let transient: Fake | undefined;
    let freed: Fake | undefined;
    await assert.rejects(async () => {
      try {
        base = (await scope.acquire('base', 'base-cache', 'base', async () => new Fake('base', 100))).value;
        await scope.acquire('exact', 'exact-cache', 'exact', async () => new Fake('exact', 100));
        transient = scope.own(new Fake('rebuilt', 50));
        freed = scope.own(new Fake('freed', 7));
        scope.free(freed);
        assert.equal(freed.disposed, 1);
        assert.equal(m.usage().transientBytes, 50);
        assert.equal(m.usage().pinnedBytes, 250);
        throw new Error('run failed');
      } finally {
        scope.close();
      }
    }, /run failed/);
    assert.equal(transient!.disposed, 1);
    assert.equal(freed!.disposed, 1);
    assert.equal(base!.disposed, 0);
    const u = m.usage();
    assert.equal(u.transientBytes, 0);
    assert.equal(u.pinnedBytes, 0);
    assert.deepEqual(u.entries.map((e) => [e.key, e.pinned]), [['base', false], ['exact', false]]);
    scope.close(); // idempotent
    assert.equal(transient!.disposed, 1);
    // cached entries serve the next run
    const next = m.scope();
    assert.equal((await next.acquire('base', 'base-cache', 'base', async () => new Fake('never', 1))).hit, true);
    next.close();
  });

  it('close() cancels an acquire in flight (aborting its creation) and refuses later work', async () => {
    const m = new CacheManager({ budgetBytes: 1000 });
    const scope = m.scope();
    const d = deferred<Fake>();
    let createSignal: AbortSignal | undefined;
    const p = scope.acquire('k', 'store', 'k', (s) => {
      createSignal = s;
      return d.promise;
    });
    scope.close();
    await assert.rejects(p, isCancel);
    assert.equal(createSignal!.aborted, true);
    assert.equal(scope.signal.aborted, true);
    const late = new Fake('late', 10);
    d.resolve(late);
    await tick();
    assert.equal(late.disposed, 1);
    assert.equal(m.usage().usedBytes, 0);
    await assert.rejects(scope.acquire('k', 'store', 'k', async () => new Fake('k', 1)), isCancel);
    const after = new Fake('after', 1);
    assert.throws(() => scope.own(after), isCancel);
    assert.equal(after.disposed, 1);
  });

  it("a scope's acquire honours its own signal too, and transients count toward the budget", async () => {
    const m = new CacheManager({ budgetBytes: 100 });
    const cached = await put(m, 'old', 60);
    const scope = m.scope();
    const ac = new AbortController();
    const d = deferred<Fake>();
    const p = scope.acquire('k', 'store', 'k', () => d.promise, { signal: ac.signal });
    ac.abort();
    await assert.rejects(p, isCancel);
    scope.own(new Fake('rebuilt', 50)); // 110 > 100: the unpinned cached entry goes
    assert.equal(cached.disposed, 1);
    assert.equal(m.usage().usedBytes, 50);
    scope.close();
    assert.equal(m.usage().usedBytes, 0);
  });
});
