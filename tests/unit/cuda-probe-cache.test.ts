// The kept CUDA probe (main/engine/cuda-probe-cache.ts): valid for one build of the engine, one
// driver and one set of visible devices; only successes kept; a damaged file reads as none.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { forgetProbe, keepProbe, probeCacheIn, probeKey, readKeptProbe } from '../../main/engine/cuda-probe-cache.js';

function scratch(): { dir: string; build: string; driver: string; file: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'probe-cache-'));
  const build = path.join(dir, 'adapterlens_cuda.node');
  const driver = path.join(dir, 'version');
  fs.writeFileSync(build, 'build 1');
  fs.writeFileSync(driver, 'NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.65.06\n');
  return { dir, build, driver, file: probeCacheIn(path.join(dir, 'data')) };
}

describe('kept CUDA probe', () => {
  it('a success is read back under its key only; a failure is never kept', () => {
    const s = scratch();
    const key = probeKey(s.build, {}, s.driver)!;
    assert.ok(key);
    assert.equal(readKeptProbe(s.file, key), null, 'nothing kept yet');
    keepProbe(s.file, key, { ok: false, detail: 'no CUDA device' });
    assert.equal(readKeptProbe(s.file, key), null, 'a failure is not kept');
    keepProbe(s.file, key, { ok: true, detail: 'NVIDIA H200' });
    assert.deepEqual(readKeptProbe(s.file, key), { ok: true, detail: 'NVIDIA H200' });
    forgetProbe(s.file);
    assert.equal(readKeptProbe(s.file, key), null, 'forgotten');
  });

  it('another build, driver or set of visible devices is another key', () => {
    const s = scratch();
    const key = probeKey(s.build, {}, s.driver)!;
    assert.notEqual(probeKey(s.build, { CUDA_VISIBLE_DEVICES: '1' }, s.driver), key);
    fs.writeFileSync(s.driver, 'NVRM version: NVIDIA UNIX x86_64 Kernel Module  590.10.01\n');
    const newDriver = probeKey(s.build, {}, s.driver)!;
    assert.notEqual(newDriver, key);
    fs.writeFileSync(s.build, 'build 2, rebuilt');
    assert.notEqual(probeKey(s.build, {}, s.driver), newDriver);
    keepProbe(s.file, key, { ok: true, detail: 'NVIDIA H200' });
    assert.equal(readKeptProbe(s.file, probeKey(s.build, {}, s.driver)!), null, 'kept for the old build and driver only');
  });

  it('no driver version to read (no NVIDIA driver, not Linux) or no build: nothing is kept or read', () => {
    const s = scratch();
    assert.equal(probeKey(s.build, {}, path.join(s.dir, 'no-such-file')), null);
    assert.equal(probeKey(path.join(s.dir, 'no-build.node'), {}, s.driver), null);
    fs.writeFileSync(s.driver, '');
    assert.equal(probeKey(s.build, {}, s.driver), null, 'an empty version says nothing');
  });

  it('a damaged or foreign file reads as nothing kept', () => {
    const s = scratch();
    const key = probeKey(s.build, {}, s.driver)!;
    fs.mkdirSync(path.dirname(s.file), { recursive: true });
    for (const text of ['{', 'null', '[]', JSON.stringify({ key, detail: 7 }), JSON.stringify({ key: 'other', detail: 'x' })]) {
      fs.writeFileSync(s.file, text);
      assert.equal(readKeptProbe(s.file, key), null, text);
    }
  });

  it('a data folder that cannot be written: keeping is skipped without an error', () => {
    const s = scratch();
    const blocker = path.join(s.dir, 'data');
    fs.writeFileSync(blocker, 'a file where the folder should be');
    assert.doesNotThrow(() => keepProbe(s.file, 'k', { ok: true, detail: 'GPU' }));
    assert.equal(readKeptProbe(s.file, 'k'), null);
  });
});
