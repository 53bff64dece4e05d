// A real CPU engine with a recorder and a fault injector around it, for the native-fault,
// cancel and soak tests. Native objects cannot be wrapped in proxies (the addon unwraps
// them), so the spy patches own properties on each object the engine hands out: every
// cache, store and adapter is recorded when created and when disposed, and any engine
// call can be made to fail (a rejected promise, as an AsyncWorker reports an error, or a
// synchronous throw, as a failing N-API call does) at its n-th use.
import type { NativeAdapter, NativeAddon, NativeKvCache, NativeKvStore, NativeModel } from '../../main/engine/native-types.js';
import type { LoadedAddon } from '../../main/engine/native-loader.js';
import type { EngineSession } from '../../main/compare/session.js';

export type FaultPoint =
  | 'loadModel'
  | 'loadAdapter'
  | 'prefill'
  | 'prefillBatch'
  | 'encodeStore'
  | 'decodeStore'
  | 'compareCaches'
  | 'decode'
  | 'score'
  | 'newCache'
  | 'newView'
  | 'fork';

export interface Fault {
  at: FaultPoint;
  /** Fail the n-th call (1-based) of `at` counted from when the fault was set. */
  nth: number;
  /** 'reject': the call returns a rejected promise; 'throw': it throws synchronously. */
  how: 'reject' | 'throw';
  message: string;
}

type Disposable = { dispose(): void };

export class EngineSpy {
  /** Objects created and not yet disposed, by kind. */
  readonly live = new Map<Disposable, 'cache' | 'store' | 'adapter' | 'model'>();
  readonly calls = new Map<FaultPoint, number>();
  private fault: (Fault & { seen: number }) | null = null;
  /** Called at the start of every engine call (after counting); tests cancel from here. */
  onCall: ((at: FaultPoint) => void) | null = null;

  inject(fault: Fault): void {
    this.fault = { ...fault, seen: 0 };
  }

  clearFault(): void {
    this.fault = null;
  }

  liveCount(kind: 'cache' | 'store' | 'adapter' | 'model'): number {
    let n = 0;
    for (const k of this.live.values()) if (k === kind) n++;
    return n;
  }

  /** Counts the call, runs onCall, and throws/rejects when the fault says so. */
  private enter(at: FaultPoint, isAsync: boolean): Promise<never> | null {
    this.calls.set(at, (this.calls.get(at) ?? 0) + 1);
    this.onCall?.(at);
    const f = this.fault;
    if (!f || f.at !== at) return null;
    f.seen++;
    if (f.seen !== f.nth) return null;
    this.fault = null;
    const err = new Error(f.message);
    if (f.how === 'throw' || !isAsync) throw err;
    return Promise.reject(err);
  }

  private track<T extends Disposable>(obj: T, kind: 'cache' | 'store' | 'adapter' | 'model'): T {
    this.live.set(obj, kind);
    const dispose = obj.dispose.bind(obj);
    let done = false;
    Object.defineProperty(obj, 'dispose', {
      configurable: true,
      value: () => {
        if (!done) {
          done = true;
          this.live.delete(obj);
        }
        dispose();
      },
    });
    return obj;
  }

  private cache(c: NativeKvCache): NativeKvCache {
    const fork = c.fork.bind(c);
    Object.defineProperty(c, 'fork', {
      configurable: true,
      value: (capacity: number) => {
        this.enter('fork', false);
        return this.cache(fork(capacity));
      },
    });
    return this.track(c, 'cache');
  }

  private store(s: NativeKvStore): NativeKvStore {
    const decode = s.decode.bind(s);
    Object.defineProperty(s, 'decode', {
      configurable: true,
      value: (base: NativeKvCache, capacity: number) => this.enter('decodeStore', true) ?? decode(base, capacity).then((c) => this.cache(c)),
    });
    return this.track(s, 'store');
  }

  private model(m: NativeModel): NativeModel {
    const orig = {
      newCache: m.newCache.bind(m),
      newView: m.newView.bind(m),
      prefillBatch: m.prefillBatch.bind(m),
      score: m.score.bind(m),
      loadAdapter: m.loadAdapter.bind(m),
      prefill: m.prefill.bind(m),
      encodeStore: m.encodeStore.bind(m),
      compareCaches: m.compareCaches.bind(m),
      decode: m.decode.bind(m),
    };
    const define = (name: string, value: unknown): void => {
      Object.defineProperty(m, name, { configurable: true, value });
    };
    define('newCache', (capacity: number) => {
      this.enter('newCache', false);
      return this.cache(orig.newCache(capacity));
    });
    define('newView', (...a: Parameters<NativeModel['newView']>) => {
      this.enter('newView', false);
      return this.cache(orig.newView(...a));
    });
    define('prefillBatch', (...a: Parameters<NativeModel['prefillBatch']>) => this.enter('prefillBatch', true) ?? orig.prefillBatch(...a));
    define('score', (...a: Parameters<NativeModel['score']>) => this.enter('score', true) ?? orig.score(...a));
    define('loadAdapter', (...a: Parameters<NativeModel['loadAdapter']>) =>
      this.enter('loadAdapter', true) ?? orig.loadAdapter(...a).then((ad: NativeAdapter) => this.track(ad, 'adapter')),
    );
    define('prefill', (...a: Parameters<NativeModel['prefill']>) => this.enter('prefill', true) ?? orig.prefill(...a));
    define('encodeStore', (...a: Parameters<NativeModel['encodeStore']>) =>
      this.enter('encodeStore', true) ?? orig.encodeStore(...a).then((s: NativeKvStore) => this.store(s)),
    );
    define('compareCaches', (...a: Parameters<NativeModel['compareCaches']>) => this.enter('compareCaches', true) ?? orig.compareCaches(...a));
    define('decode', (...a: Parameters<NativeModel['decode']>) => this.enter('decode', true) ?? orig.decode(...a));
    return this.track(m, 'model');
  }

  /** Puts the spy between `session` and its engine (as tests/compare/session-dtype.test.ts does). */
  attach(session: EngineSession): void {
    const real = session.engine.addon;
    const addon = Object.create(real) as NativeAddon;
    addon.loadModel = ((...a: Parameters<NativeAddon['loadModel']>) =>
      this.enter('loadModel', true) ?? real.loadModel(...a).then((m) => this.model(m))) as NativeAddon['loadModel'];
    const engine: LoadedAddon = { ...session.engine, addon };
    Object.defineProperty(session, 'engine', { value: engine });
  }
}
