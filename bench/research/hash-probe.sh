#!/bin/bash
# SHA-256 rates on the GPU host: one file alone, then three at once, the way hash-file.ts reads
# (synchronous reads into one reused buffer), with 4 MiB reads (hash-file.ts) and 256 KiB reads.
# Through the device tool, carrying .device-kit: bash bench/research/hash-probe.sh
tar xJf .device-kit/node.tar.xz -C /tmp && export PATH=/tmp/node/bin:$PATH
for i in 1 2 3; do dd if=/dev/zero of=/tmp/z$i bs=64M count=64 status=none; done   # 4 GiB each, in the page cache
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) | sha_ni: $(grep -o -m1 sha_ni /proc/cpuinfo || echo none) | cores: $(nproc)"
openssl speed -seconds 2 -evp sha256 2>/dev/null | tail -1
cat > /tmp/h.mjs <<'JS'
import { Worker, isMainThread, workerData, parentPort } from 'node:worker_threads';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
const hashOne = ([f, chunk]) => { const fd = fs.openSync(f, 'r'); const b = Buffer.allocUnsafe(chunk); const h = createHash('sha256'); let at = 0, n;
  while ((n = fs.readSync(fd, b, 0, b.length, at)) > 0) { h.update(b.subarray(0, n)); at += n; } fs.closeSync(fd); return at; };
if (!isMainThread) { parentPort.postMessage(hashOne(workerData)); }
else {
  const run = async (files, chunk) => { const t = performance.now(); const bytes = await Promise.all(files.map((f) => new Promise((res) => new Worker(new URL(import.meta.url), { workerData: [f, chunk] }).on('message', res))));
    const s = (performance.now() - t) / 1000; console.log(`${files.length} file(s) at once, ${chunk >> 10} KiB reads: ${s.toFixed(2)} s, ${(bytes[0] / s / 1e9).toFixed(2)} GB/s per file`); };
  for (const chunk of [4 << 20, 256 << 10]) { await run(['/tmp/z1'], chunk); await run(['/tmp/z1', '/tmp/z2', '/tmp/z3'], chunk); }
}
JS
node /tmp/h.mjs
