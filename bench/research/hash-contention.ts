// The SHA-256 of a checkpoint's shards as the product hashes them (sha256File: the 'hash'
// worker pool), first alone, then while a CUDA session starts and loads the same checkpoint,
// as a fresh process's first run does: when each shard's digest is done, and its rate.
// On the GPU machine: node --import tsx bench/research/hash-contention.ts WORK [--alone]
// (--alone: only the first part; ADAPTERLENS_HASH_READ_KIB / _BUFFERS / _READER_MIN_MIB pick the reads, hash-file.ts).
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { sha256File } from '../../main/model/sha256.js';
import { EngineSession } from '../../main/compare/session.js';
import { openCheckpointInWorker } from '../../main/model/open-async.js';

const dir = path.join(process.argv[2]!, 'llama2-7b-shape');
const shards = fs.readdirSync(dir).filter((n) => n.endsWith('.safetensors')).map((n) => path.join(dir, n));

async function hashAll(label: string, beside?: () => Promise<void>): Promise<void> {
  const t0 = performance.now();
  const besideDone = beside?.().then(() => console.log(`  ${label}: load done at ${((performance.now() - t0) / 1e3).toFixed(2)} s`));
  await Promise.all(shards.map(async (f) => {
    await sha256File(f);
    const s = (performance.now() - t0) / 1e3;
    const gb = fs.statSync(f).size / 1e9;
    console.log(`  ${label}: ${path.basename(f)} ${gb.toFixed(2)} GB done at ${s.toFixed(2)} s (${(gb / s).toFixed(2)} GB/s)`);
  }));
  await besideDone;
}

const plan = `${process.env.ADAPTERLENS_HASH_READ_KIB ?? 'default'} KiB reads, ${process.env.ADAPTERLENS_HASH_BUFFERS ?? 'default'} buffers, a reader thread from ${process.env.ADAPTERLENS_HASH_READER_MIN_MIB ?? 'default'} MiB`;
await hashAll(`alone (${plan})`);
if (process.argv.includes('--alone')) process.exit(0);
let session: EngineSession | null = null;
await hashAll('beside a CUDA start and load', async () => {
  // The engine's own load (not session.loadModel, which would hash the same files again).
  session = new EngineSession('cuda');
  const ck = await openCheckpointInWorker(dir);
  const model = await session.engine.addon.loadModel({ ...ck.config.native, dtype: 'bf16' }, ck.tensors, null, null);
  model.dispose();
});
(session as EngineSession | null)?.dispose();
process.exit(0);
