// Loading without waiting on hashing (issue 10, "Loading"):
// - a file-digest cache in the data folder, keyed by path and stamp (size, mtime, ctime,
//   inode): a second start on the same files hashes nothing; a changed file is caught;
//   a corrupt cache file is ignored;
// - hashing runs alongside the weight load, not before it, and the shards are read in
//   parallel on worker threads;
// - a missing folder is the loader's own message.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { EngineSession } from '../../main/compare/session.js';
import { DigestCache, DIGEST_CACHE_FILE } from '../../main/model/digest-cache.js';
import { LoadError } from '../../main/model/errors.js';
import { WorkerPool } from '../../main/worker/pool.js';
import type { TaskName } from '../../main/worker/protocol.js';
import type { NativeAddon } from '../../main/engine/native-types.js';
import type { LoadedAddon } from '../../main/engine/native-loader.js';
import { ADAPTERS_DIR, MODEL_DIR, tempDir } from '../rpc/helpers.js';
import { startSessionForRun } from '../../main/compare/start-session.js';
import { holdTasks, watchTasks } from './worker-spy.js';
import { DigestJobs } from '../../main/model/digest-jobs.js';

/** Counts hash jobs, and the most that ran at once, by watching WorkerPool.run. */
function watchHashing(): { jobs: () => number; maxConcurrent: () => number; restore: () => void } {
  const original = WorkerPool.prototype.run;
  let jobs = 0;
  let running = 0;
  let max = 0;
  WorkerPool.prototype.run = function (this: WorkerPool, task: TaskName, ...rest: unknown[]) {
    if (task !== 'hash-file') return (original as (...a: unknown[]) => Promise<unknown>).call(this, task, ...rest);
    jobs++;
    running++;
    max = Math.max(max, running);
    return (original as (...a: unknown[]) => Promise<unknown>).call(this, task, ...rest).finally(() => running--);
  } as typeof original;
  return { jobs: () => jobs, maxConcurrent: () => max, restore: () => (WorkerPool.prototype.run = original) };
}

/** Holds every hash job until open() (worker-spy.ts), with the files they were given. */
function holdHashing(failWith?: Error): ReturnType<typeof holdTasks<{ file: string }>> & { files(): string[] } {
  const gate = holdTasks<{ file: string }>('hash-file', failWith);
  return Object.assign(gate, { files: () => gate.inputs.map((i) => i.file) });
}

/** A copy of a fixture folder (own files: their stamps are this test's). */
function copyFolder(from: string, name: string): string {
  const dir = path.join(tempDir(`digest-${name}`), name);
  fs.mkdirSync(dir);
  for (const f of fs.readdirSync(from)) fs.copyFileSync(path.join(from, f), path.join(dir, f));
  return dir;
}
const copyModel = (): string => copyFolder(MODEL_DIR, 'model');
const relevantFiles = (dir: string): string[] => fs.readdirSync(dir).filter((n) => /\.(safetensors|json)$/.test(n));

describe('file digests and loading', { timeout: 300_000 }, () => {
  let dataDir: string;
  let modelDir: string;
  let watch: ReturnType<typeof watchHashing>;
  before(() => {
    dataDir = tempDir('digest-data');
    modelDir = copyModel();
    watch = watchHashing();
  });
  after(() => watch.restore());

  it('the first start hashes every file, shards in parallel, while the weights load', async () => {
    const session = new EngineSession('cpu', { digestCache: DigestCache.inDataDir(dataDir) });
    // When the engine is asked to load the weights, hashing must not have finished yet.
    const real = session.engine.addon;
    const addon = Object.create(real) as NativeAddon;
    let hashedWhenLoadStarted: boolean | null = null;
    let hashedBytes = 0;
    let totalBytes = -1;
    addon.loadModel = ((...a: Parameters<NativeAddon['loadModel']>) => {
      hashedWhenLoadStarted = totalBytes >= 0 && hashedBytes >= totalBytes;
      return real.loadModel(...a);
    }) as NativeAddon['loadModel'];
    Object.defineProperty(session, 'engine', { value: { ...session.engine, addon } satisfies LoadedAddon });
    try {
      const before = watch.jobs();
      const m = await session.loadModel(modelDir, undefined, (what, d, t) => {
        if (what === 'hashing model files') {
          hashedBytes = d;
          totalBytes = t;
        }
      });
      const relevant = fs.readdirSync(modelDir).filter((n) => /\.(safetensors|json)$/.test(n));
      assert.equal((await m.digest).files.length, relevant.length);
      assert.equal(watch.jobs() - before, relevant.length, 'every relevant file hashed once');
      assert.equal(hashedWhenLoadStarted, false, 'the weight load started before hashing finished');
      assert.ok(watch.maxConcurrent() >= 2, `files hashed in parallel (at most ${watch.maxConcurrent()} at once)`);
      assert.ok(fs.existsSync(path.join(dataDir, DIGEST_CACHE_FILE)), 'digests saved in the data folder');
    } finally {
      session.dispose();
    }
  });

  it('a second start (a new session, as after a restart) on the same files hashes nothing', async () => {
    const first = JSON.parse(fs.readFileSync(path.join(dataDir, DIGEST_CACHE_FILE), 'utf8')) as { entries: Record<string, unknown> };
    assert.ok(Object.keys(first.entries).some((k) => k.startsWith(modelDir)));
    const session = new EngineSession('cpu', { digestCache: DigestCache.inDataDir(dataDir) });
    try {
      const before = watch.jobs();
      const phases: string[] = [];
      const m = await session.loadModel(modelDir, undefined, (what) => phases.push(what));
      assert.equal(watch.jobs() - before, 0, 'no file hashed');
      assert.ok(!phases.includes('hashing model files'));
      assert.equal((await m.digest).files.length, fs.readdirSync(modelDir).filter((n) => /\.(safetensors|json)$/.test(n)).length);
    } finally {
      session.dispose();
    }
  });

  it('a changed file is caught: hashed again, with a new digest', async () => {
    const s1 = new EngineSession('cpu', { digestCache: DigestCache.inDataDir(dataDir) });
    const oldDigest = await (await s1.loadModel(modelDir)).digest;
    s1.dispose();
    // Same size, new content: only the stamp (mtime/ctime) tells.
    const file = path.join(modelDir, 'generation_config.json');
    const text = fs.readFileSync(file, 'utf8');
    fs.writeFileSync(file, text.replace(/"bos_token_id": 1/, '"bos_token_id": 7'));
    assert.equal(fs.statSync(file).size, Buffer.byteLength(text));
    const s2 = new EngineSession('cpu', { digestCache: DigestCache.inDataDir(dataDir) });
    try {
      const before = watch.jobs();
      const d = await (await s2.loadModel(modelDir)).digest;
      assert.equal(watch.jobs() - before, 1, 'only the changed file is hashed');
      assert.notEqual(d.combined, oldDigest.combined);
      const changed = d.files.find((f) => f.name === 'generation_config.json')!;
      assert.notEqual(changed.sha256, oldDigest.files.find((f) => f.name === 'generation_config.json')!.sha256);
    } finally {
      s2.dispose();
    }
  });

  it('a corrupt digest file is ignored (everything is hashed again) and replaced', async () => {
    fs.writeFileSync(path.join(dataDir, DIGEST_CACHE_FILE), '{"format":"adapterlens.digests/1","entries":{"x":');
    const session = new EngineSession('cpu', { digestCache: DigestCache.inDataDir(dataDir) });
    try {
      const before = watch.jobs();
      await (await session.loadModel(modelDir)).digest;
      assert.ok(watch.jobs() - before > 0);
      const rewritten = JSON.parse(fs.readFileSync(path.join(dataDir, DIGEST_CACHE_FILE), 'utf8')) as { format: string };
      assert.equal(rewritten.format, 'adapterlens.digests/1');
      assert.deepEqual(fs.readdirSync(dataDir).filter((n) => n.endsWith('.tmp')), [], 'no temp file left');
    } finally {
      session.dispose();
    }
  });

  it('the load does not wait for the hash: the model is usable while its files are hashed, the digest settles after', async () => {
    const gate = holdHashing();
    const session = new EngineSession('cpu', { digestCache: new DigestCache(null) });
    try {
      const m = await session.loadModel(modelDir);
      let settled = false;
      void m.digest.then(() => (settled = true));
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(settled, false, 'loaded while every hash job is still held');
      assert.ok(gate.held() > 0);
      // The same folder asked for again (the tokenizer's digest) joins that hashing.
      const again = session.digest(modelDir);
      gate.open();
      const [d, d2] = await Promise.all([m.digest, again]);
      assert.equal(d.combined, d2.combined);
      assert.equal(d.files.length, fs.readdirSync(modelDir).filter((n) => /\.(safetensors|json)$/.test(n)).length);
      assert.equal(gate.jobs(), d.files.length, 'each file hashed once for both');
      // Reused: same files, digest done.
      assert.equal(await session.loadModel(modelDir), m);
    } finally {
      gate.restore();
      session.dispose();
    }
  });

  it('a hash that fails after the load fails the digest with its reason, and the next load reads the folder again', async () => {
    const gate = holdHashing(new Error('disk read failed'));
    const session = new EngineSession('cpu', { digestCache: new DigestCache(null) });
    try {
      const m = await session.loadModel(modelDir);
      gate.open();
      await assert.rejects(m.digest, /disk read failed/);
      gate.restore();
      const m2 = await session.loadModel(modelDir);
      assert.notEqual(m2, m, 'not reused: its digest failed');
      assert.ok((await m2.digest).files.length > 0);
    } finally {
      gate.restore();
      session.dispose();
    }
  });

  it('prefetched digests start hashing before any load, and the load joins them (each file hashed once)', async () => {
    const gate = holdHashing();
    const session = new EngineSession('cpu', { digestCache: new DigestCache(null) });
    try {
      const prefetch = session.prefetchDigests([modelDir, modelDir]);
      await new Promise((r) => setTimeout(r, 50));
      const files = fs.readdirSync(modelDir).filter((n) => /\.(safetensors|json)$/.test(n)).length;
      assert.equal(gate.jobs(), files, 'every file is being hashed before the load is asked for (the folder once)');
      const load = session.loadModel(modelDir);
      gate.open();
      const m = await load;
      prefetch.release();
      assert.equal((await m.digest).files.length, files);
      assert.equal(gate.jobs(), files, 'the load hashed nothing again');
    } finally {
      gate.restore();
      session.dispose();
    }
  });

  it('a run stopped before its loads stops the prefetched hashing; once released, a stop leaves it going', async () => {
    const gate = holdHashing();
    const session = new EngineSession('cpu', { digestCache: new DigestCache(null) });
    try {
      const files = fs.readdirSync(modelDir).filter((n) => /\.(safetensors|json)$/.test(n)).length;
      const stopped = new AbortController();
      session.prefetchDigests([modelDir], stopped.signal);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(gate.jobs(), files);
      stopped.abort();
      // The stopped hashing is dropped, not a failure of the folder: the load hashes it afresh and succeeds.
      const load = session.loadModel(modelDir);
      gate.open();
      const m = await load;
      assert.ok((await m.digest).files.length > 0);
      assert.equal(gate.jobs(), 2 * files, 'hashed again after the stop');

      const gate2 = holdHashing();
      try {
        const other = copyModel();
        const run = new AbortController();
        const prefetch = session.prefetchDigests([other], run.signal);
        const m2 = await session.loadModel(other);
        prefetch.release();
        run.abort(); // after the loads: the loaded model's digest is not stopped
        gate2.open();
        assert.ok((await m2.digest).files.length > 0);
        assert.equal(gate2.jobs(), files, 'each file hashed once');
        assert.equal(await session.loadModel(other), m2, 'its digest did not fail: the model is reused');
      } finally {
        gate2.restore();
      }
    } finally {
      gate.restore();
      session.dispose();
    }
  });

  it('a folder\'s largest file goes to the hash workers first, and `dispatched` settles once every file is with them', async () => {
    const gate = holdHashing();
    const session = new EngineSession('cpu', { digestCache: new DigestCache(null) });
    try {
      const prefetch = session.prefetchDigests([modelDir]);
      await prefetch.dispatched;
      const names = relevantFiles(modelDir);
      assert.equal(gate.jobs(), names.length, 'every file dispatched when `dispatched` settles');
      const bySize = [...names].sort((a, b) => fs.statSync(path.join(modelDir, b)).size - fs.statSync(path.join(modelDir, a)).size);
      assert.deepEqual(gate.files().map((f) => path.basename(f)), bySize, 'largest first');
      gate.open();
      prefetch.release();
    } finally {
      gate.restore();
      session.dispose();
    }
  });

  it('loading the model leaves the hashing a run prefetched for its adapters going (each file hashed once)', async () => {
    const adapterDir = copyFolder(path.join(ADAPTERS_DIR, 'qv-r8'), 'adapter');
    const model = copyModel();
    const gate = holdHashing();
    const session = new EngineSession('cpu', { digestCache: new DigestCache(null) });
    try {
      const prefetch = session.prefetchDigests([model, adapterDir]);
      await prefetch.dispatched;
      const files = relevantFiles(model).length + relevantFiles(adapterDir).length;
      assert.equal(gate.jobs(), files);
      const m = await session.loadModel(model);
      const a = await session.loadAdapter(m, adapterDir);
      gate.open();
      prefetch.release();
      assert.equal((await a.digest).files.length, relevantFiles(adapterDir).length);
      assert.equal(gate.jobs(), files, 'the adapter was not hashed a second time');
    } finally {
      gate.restore();
      session.dispose();
    }
  });

  it('a process started for a run (the CLI) has its folders with the hash workers before the engine exists, and its loads join them', async () => {
    const adapterDir = copyFolder(path.join(ADAPTERS_DIR, 'qv-r8'), 'adapter');
    const model = copyModel();
    const runData = tempDir('digest-run-data');
    const gate = holdHashing();
    const request = { device: 'cpu' as const, modelDir: model, adapters: [{ name: 'qv-r8', dir: adapterDir }] };
    const { session, prefetch } = await startSessionForRun(request, { dataDir: runData });
    try {
      const files = relevantFiles(model).length + relevantFiles(adapterDir).length;
      assert.equal(gate.jobs(), files, 'every file is being hashed when the session is handed over');
      assert.equal(session.digests.cache.file, path.join(runData, DIGEST_CACHE_FILE), 'digests kept in the data folder');
      gate.open();
      const m = await session.loadModel(model);
      await session.loadAdapter(m, adapterDir);
      prefetch.release();
      assert.equal((await m.digest).files.length, relevantFiles(model).length);
      assert.equal(gate.jobs(), files, 'the loads hashed nothing again');
    } finally {
      gate.restore();
      session.dispose();
    }
  });

  it('a run over unchanged folders opens nothing again on a worker; a changed file is opened again', async () => {
    const adapterDir = copyFolder(path.join(ADAPTERS_DIR, 'qv-r8'), 'adapter');
    const model = copyModel();
    const session = new EngineSession('cpu', { digestCache: new DigestCache(null) });
    const checkpoints = watchTasks<{ dir: string }>('open-checkpoint');
    const adapters = watchTasks<{ dir: string }>('open-adapter');
    const digests: Promise<unknown>[] = [];  // awaited before the end: no hashing left for the next test
    try {
      const m = await session.loadModel(model);
      const a = await session.loadAdapter(m, adapterDir);
      digests.push(m.digest, a.digest);
      assert.deepEqual([checkpoints.inputs.length, adapters.inputs.length], [1, 1], 'the first loads open each folder');
      assert.equal(await session.openCheckpoint(model), m.checkpoint);
      assert.equal(await session.loadModel(model), m);
      assert.equal(await session.loadAdapter(m, adapterDir), a);
      assert.deepEqual([checkpoints.inputs.length, adapters.inputs.length], [1, 1], 'nothing opened again');
      // New stamps, the same bytes: opened (and loaded) again, since what was read may be stale.
      const later = new Date(Date.now() + 60_000);
      fs.utimesSync(path.join(adapterDir, 'adapter_config.json'), later, later);
      fs.utimesSync(path.join(model, 'config.json'), later, later);
      assert.notEqual(await session.openCheckpoint(model), m.checkpoint);
      assert.equal(checkpoints.inputs.length, 2);
      const m2 = await session.loadModel(model);
      assert.notEqual(m2, m, 'the model is loaded again');
      const a2 = await session.loadAdapter(m2, adapterDir);
      digests.push(m2.digest, a2.digest);
      assert.equal(adapters.inputs.length, 2);
    } finally {
      await Promise.allSettled(digests);
      adapters.restore();
      checkpoints.restore();
      session.dispose();
    }
  });

  it('hashing started ahead is dropped by drop() unless someone asked for the folder since, or before', async () => {
    const gate = holdHashing();
    const jobs = new DigestJobs(new DigestCache(null));
    try {
      const [a, b, c] = [copyModel(), copyModel(), copyModel()];
      const hashedIn = (d: string): number => gate.files().filter((f) => f.startsWith(d + path.sep)).length;
      const dropped = jobs.ahead(a);
      const joined = jobs.ahead(b);
      const cDigest = jobs.start(c).promise; // asked for before its ahead start
      const before = jobs.ahead(c);
      for (let i = 0; i < 100 && gate.jobs() < 3 * relevantFiles(a).length; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(gate.jobs(), 3 * relevantFiles(a).length, 'the three folders are being hashed');
      const bDigest = jobs.digest(b); // a load asks for b after its ahead start
      dropped.drop();
      joined.drop();
      before.drop();
      gate.open();
      assert.ok((await bDigest).files.length > 0 && (await cDigest).files.length > 0, 'b and c are hashed');
      assert.equal(hashedIn(b), relevantFiles(b).length, 'b once');
      assert.equal(hashedIn(c), relevantFiles(c).length, 'c once');
      assert.ok((await jobs.digest(a)).files.length > 0);
      assert.equal(hashedIn(a), 2 * relevantFiles(a).length, 'a was dropped: asked for later, it is hashed afresh');
    } finally {
      gate.restore();
    }
  });

  it('a missing folder is the loader\'s message naming it, not ENOENT from hashing', async () => {
    const session = new EngineSession('cpu', { digestCache: DigestCache.inDataDir(dataDir) });
    try {
      const missing = path.join(dataDir, 'gone');
      await assert.rejects(session.loadModel(missing), (e: unknown) => e instanceof LoadError && e.file === missing && /does not exist; pick a Hugging Face checkpoint folder/.test(e.message));
      await assert.rejects(session.digest(missing), (e: unknown) => e instanceof LoadError && /this folder does not exist/.test(e.message));
    } finally {
      session.dispose();
    }
  });
});
