// The session of a process started for one comparison (`adapterlens compare` and `demo`, and
// the benchmark's fresh process, which times this same path).
//
// The run's folders start hashing before the engine starts up. On a first run the SHA-256
// of the largest weight shard (about 1 GB/s on one core, 4–5 s for a 5 GB shard) is the
// longest job of the run, and the engine's start-up (the CUDA probe, a child process, then
// the CUDA context in this one) would otherwise come before it. The hash workers go on
// while the engine starts, so the wait comes off the end of the run. The runner's own
// prefetch and the loads then join these jobs.
import type { CompareRequest } from '../../shared/compare.js';
import { probeCacheIn } from '../engine/cuda-probe-cache.js';
import { prepareAddon } from '../engine/native-loader.js';
import { DigestCache } from '../model/digest-cache.js';
import { DigestJobs, type DigestPrefetch } from '../model/digest-jobs.js';
import { EngineSession } from './session.js';

export interface RunSession {
  session: EngineSession;
  /** The run's folders, hashing since before the engine started; release() once the run's loads are done. */
  prefetch: DigestPrefetch;
}

export async function startSessionForRun(
  request: Pick<CompareRequest, 'device' | 'modelDir' | 'adapters'>,
  options: { dataDir: string; signal?: AbortSignal },
): Promise<RunSession> {
  const digestJobs = new DigestJobs(DigestCache.inDataDir(options.dataDir));
  const prefetch = digestJobs.prefetch([request.modelDir, ...request.adapters.map((a) => a.dir)], options.signal);
  // Every file with a hash worker first: loading the engine's build below holds this thread a moment.
  await prefetch.dispatched;
  try {
    const probeCacheFile = probeCacheIn(options.dataDir);
    await prepareAddon(request.device, { probeCacheFile });
    const session = new EngineSession(request.device, { digestJobs, probeCacheFile });
    return { session, prefetch };
  } catch (e) {
    prefetch.release();
    digestJobs.abortAll();
    throw e;
  }
}
