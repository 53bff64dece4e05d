// The longest the main thread's event loop is held during a first comparison run in a fresh
// process (the embedded demo, CPU engine): what `serve` and the app's main process would not
// answer for. Loading, preflight and tokenizing are meant to be on workers; native calls that
// hold the thread are not (the CPU engine computes on it), so each run also reports the time
// it spent inside native calls, to tell the two apart.
//
//   node --import tsx bench/research/event-loop-probe.ts
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { CacheManager } from '../../main/cache/cache-manager.js';
import { demoRequest } from '../../main/compare/demo.js';
import { runComparison } from '../../main/compare/runner.js';
import { EngineSession } from '../../main/compare/session.js';
import { DigestCache } from '../../main/model/digest-cache.js';

const request = { ...(await demoRequest()), device: 'cpu' as const, strategies: ['exact' as const], maxNewTokens: 4 };
const session = new EngineSession('cpu', { digestCache: new DigestCache(null) });
const manager = new CacheManager({ budgetBytes: 2 ** 31 });
const h = monitorEventLoopDelay({ resolution: 5 });
// Until the first native call: loading folders, checking the tokenizer, tokenizing the document.
let firstNative = 0;
const t0 = performance.now();
h.enable();
await runComparison(session, manager, request, {
  onProgress: (p) => {
    if (!firstNative && p.stage === 'base-prefill') {
      firstNative = performance.now() - t0;
      h.disable();
      console.log(`until the first prefill: ${firstNative.toFixed(0)} ms, longest event-loop hold ${(h.max / 1e6).toFixed(0)} ms (p99 ${(h.percentile(99) / 1e6).toFixed(0)} ms)`);
    }
  },
});
manager.dispose();
session.dispose();
