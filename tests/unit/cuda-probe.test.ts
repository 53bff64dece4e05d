// The CUDA probe without holding the main thread (native-loader.ts, probeCudaAsync): the
// child that loads the build is awaited while the event loop goes on, callers share one
// child, and its answer is the one the synchronous probe would give. No CUDA build here:
// the "build" is a script that behaves as one (the probe only requires it and calls info()).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { probeCuda, probeCudaAsync } from '../../main/engine/native-loader.js';

/** A stand-in for adapterlens_cuda.node that takes `ms` to start, then reports `device` or throws `error`. */
function fakeBuild(body: { ms: number; device?: string; error?: string }): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fake-cuda-')), 'fake-build.js');
  const start = `const until = Date.now() + ${body.ms}; while (Date.now() < until) {}\n`;
  const info = body.error ? `throw new Error(${JSON.stringify(body.error)});` : `return { device: ${JSON.stringify(body.device)} };`;
  fs.writeFileSync(file, `${start}exports.info = () => { ${info} };\n`);
  return file;
}

describe('the CUDA probe, awaited', { timeout: 60_000 }, () => {
  it('answers as the synchronous probe does, while the event loop goes on; callers share one child', async () => {
    const build = fakeBuild({ ms: 700, device: 'Fake GPU (1 GiB)' });
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    const [a, b] = await Promise.all([probeCudaAsync(build), probeCudaAsync(build)]);
    delay.disable();
    assert.deepEqual(a, { ok: true, detail: 'Fake GPU (1 GiB)' });
    assert.equal(a, b, 'one probe for both callers');
    assert.ok(delay.max / 1e6 < 300, `the event loop was held ${(delay.max / 1e6).toFixed(0)} ms at most (the child took 700 ms)`);
    assert.equal(probeCuda(build), a, 'the synchronous probe finds the answer without a child');
  });

  it('says why a build cannot start, in the words of the synchronous probe', async () => {
    const failing = { ms: 0, error: 'libcublas.so.13: cannot open shared object file' };
    const viaAsync = await probeCudaAsync(fakeBuild(failing));
    assert.equal(viaAsync.ok, false);
    assert.match(viaAsync.detail, /^no cuBLAS: /);
    assert.deepEqual(probeCuda(fakeBuild(failing)), viaAsync);
    const missing = await probeCudaAsync(path.join(os.tmpdir(), 'no-such-build.node'));
    assert.equal(missing.ok, false);
    assert.match(missing.detail, /the CUDA build failed to start: .*no-such-build/);
  });
});
