// `serve` never blocks its event loop (issue 13): while a 10 MB text.count (tokenized in
// full, no limit) and hostile adapter.inspect calls (a catastrophic regex; a 40 MB
// safetensors header) are in flight, another client's RPC answers within 200 ms, again
// and again, and the event loop's own delay stays below that. With a `limit`, the same
// 10 MB document is answered at once from a length bound (complete: false).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { projectRoot } from '../../main/paths.js';
import { AppService } from '../../main/rpc/service.js';
import { startServer, type RunningServer } from '../../main/server/server.js';
import type { TokenCount } from '../../shared/rpc.js';
import { ADAPTERS_DIR, MODEL_DIR, TestRpcClient, tempDir } from '../rpc/helpers.js';

const root = tempDir('event-loop');
const rendererDir = path.join(root, 'renderer');
fs.mkdirSync(rendererDir, { recursive: true });
fs.writeFileSync(path.join(rendererDir, 'index.html'), '<!doctype html>');
const service = new AppService({ transport: 'websocket', historyDir: path.join(root, 'history'), cacheBudgetBytes: 1 << 30 });
let server: RunningServer;

const TEN_MB = 'The University of Hong Kong is the oldest university in Hong Kong. '.repeat(Math.ceil((10 << 20) / 68)).slice(0, 10 << 20);

function hostileRegexAdapter(): string {
  const dir = path.join(root, 'regex-adapter');
  fs.mkdirSync(dir);
  fs.copyFileSync(path.join(ADAPTERS_DIR, 'qv-r8', 'adapter_model.safetensors'), path.join(dir, 'adapter_model.safetensors'));
  const cfg = JSON.parse(fs.readFileSync(path.join(ADAPTERS_DIR, 'qv-r8', 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify({ ...cfg, target_modules: '([a-z._0-9]+)*X', rank_pattern: { '(a+)+b': 2 } }));
  return dir;
}

/** An adapter whose safetensors header is ~40 MB of tensor entries: seconds of parsing. */
function hugeHeaderAdapter(): string {
  const dir = path.join(root, 'huge-header');
  fs.mkdirSync(dir);
  fs.copyFileSync(path.join(ADAPTERS_DIR, 'qv-r8', 'adapter_config.json'), path.join(dir, 'adapter_config.json'));
  const entries: string[] = [];
  for (let i = 0; i < 400_000; i++) entries.push(`"t${i}.${'x'.repeat(40)}":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`);
  const header = Buffer.from(`{${entries.join(',')}}`);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  fs.writeFileSync(path.join(dir, 'adapter_model.safetensors'), Buffer.concat([len, header]));
  return dir;
}

/**
 * The hostile client runs in a child process, so that building and masking its 10 MB frame
 * is not counted against the server's event loop. It prints one line per answer.
 */
const HOSTILE_CLIENT = `
import WebSocket from 'ws';
const [url, modelDir, headerAdapter, regexAdapter] = process.argv.slice(1);
const doc = 'The University of Hong Kong is the oldest university in Hong Kong. '.repeat(Math.ceil((10 << 20) / 68)).slice(0, 10 << 20);
const ws = new WebSocket(url);
ws.on('message', (d) => { const m = JSON.parse(d.toString()); if (m.kind !== 'event') process.stdout.write(JSON.stringify({ id: m.id, kind: m.kind, message: m.error?.message ?? '' }) + '\\n'); });
ws.on('open', () => {
  ws.send(JSON.stringify({ kind: 'call', id: 1, method: 'text.count', params: { modelDir, documentText: doc, promptText: '' } }));
  ws.send(JSON.stringify({ kind: 'call', id: 2, method: 'adapter.inspect', params: { modelDir, dir: headerAdapter } }));
  ws.send(JSON.stringify({ kind: 'call', id: 3, method: 'adapter.inspect', params: { modelDir, dir: regexAdapter } }));
  process.stdout.write('sent\\n');
});
ws.on('close', () => process.exit(0));
`;

before(async () => {
  server = await startServer({ service, rendererDir, port: 0 });
});
after(async () => {
  await server.close();
  await service.dispose();
});

describe('serve: the event loop never blocks', { timeout: 180_000 }, () => {
  it('an RPC answers within 200 ms while a 10 MB text.count and hostile adapter.inspect calls are in flight', async () => {
    const url = `ws://127.0.0.1:${server.port}/rpc?token=${server.token}`;
    const probe = await TestRpcClient.open(url);
    const regexAdapter = hostileRegexAdapter();
    const headerAdapter = hugeHeaderAdapter();
    // Warm the workers (the first one starts in a second or more under tsx) so the probes measure work, not start-up.
    assert.equal((await probe.call('text.count', { modelDir: MODEL_DIR, documentText: 'warm', promptText: '' })).kind, 'result');
    const child = spawn(process.execPath, ['--input-type=module', '-e', HOSTILE_CLIENT, url, MODEL_DIR, headerAdapter, regexAdapter], { cwd: projectRoot, stdio: ['ignore', 'pipe', 'inherit'] });
    const answers: { id: number; kind: string; message: string }[] = [];
    let out = '';
    const sent = new Promise<void>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const lines = out.split('\n');
        out = lines.pop()!;
        for (const line of lines) {
          if (line === 'sent') resolve();
          else answers.push(JSON.parse(line) as { id: number; kind: string; message: string });
        }
      });
    });
    const delay = monitorEventLoopDelay({ resolution: 10 });
    try {
      await sent;
      // Let the server receive and hand off the 10 MB frame, then measure.
      await new Promise((r) => setTimeout(r, 300));
      delay.enable();
      const times: number[] = [];
      for (let i = 0; i < 20; i++) {
        const t0 = performance.now();
        const answer = await probe.call('cache.stats', {});
        times.push(performance.now() - t0);
        assert.equal(answer.kind, 'result');
        await new Promise((r) => setTimeout(r, 50));
      }
      delay.disable();
      assert.ok(!answers.some((a) => a.id === 1), 'the 10 MB count was still in flight while probing');
      const worst = Math.max(...times);
      assert.ok(worst < 200, `every probe answered within 200 ms (worst ${worst.toFixed(0)} ms: ${times.map((t) => t.toFixed(0)).join(', ')})`);
      assert.ok(delay.max / 1e6 < 200, `event-loop delay stayed below 200 ms (max ${(delay.max / 1e6).toFixed(0)} ms)`);
      // The hostile inspections end as refusals, not as hangs.
      for (let i = 0; i < 600 && answers.filter((a) => a.id !== 1).length < 2; i++) await new Promise((r) => setTimeout(r, 100));
      const regex = answers.find((a) => a.id === 3);
      assert.equal(regex?.kind, 'error');
      assert.match(regex!.message, /target_modules/);
      assert.equal(answers.find((a) => a.id === 2)?.kind, 'error');
    } finally {
      delay.disable();
      child.kill();
      await probe.close();
    }
  });

  it('with a limit, a 10 MB document is answered from a length bound without tokenizing it', async () => {
    const client = await TestRpcClient.open(`ws://127.0.0.1:${server.port}/rpc?token=${server.token}`);
    try {
      const c = await client.result<TokenCount>('text.count', { modelDir: MODEL_DIR, documentText: TEN_MB, promptText: ' Summary:', limit: 2048 + 32 });
      assert.equal(c.complete, false);
      assert.ok(c.documentTokens + c.promptTokens >= 2048 + 32, `a lower bound that reaches the limit (${c.documentTokens})`);
      assert.equal(c.contextLimit, 2048);
      // A short text under the limit is counted exactly.
      const short = await client.result<TokenCount>('text.count', { modelDir: MODEL_DIR, documentText: 'Hello world', promptText: '', limit: 2080 });
      assert.deepEqual(short, { documentTokens: 3, promptTokens: 0, contextLimit: 2048, complete: true });
    } finally {
      await client.close();
    }
  });
});
