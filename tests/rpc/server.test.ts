// `adapterlens serve`'s server, over real sockets: the token and cookie, the Host and
// Origin checks, static files (MIME types, no path traversal), and the RPC over the
// WebSocket with a real run on the tiny fixture model (progress, per-step tokens,
// finished and saved), BUSY, cancel mid-run, and malformed messages.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { AppService } from '../../main/rpc/service.js';
import { startServer, type RunningServer } from '../../main/server/server.js';
import type { CompareProgress, TokenEvent } from '../../shared/compare.js';
import type { Report } from '../../shared/report.js';
import type { ActiveRun, HistoryEntry, RpcErrorPayload } from '../../shared/rpc.js';
import type { CacheUsage } from '../../shared/cache-stats.js';
import { TestRpcClient, tempDir, tinyRequest } from './helpers.js';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(port: number, pathName: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: pathName, method, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const root = tempDir('server');
const rendererDir = path.join(root, 'renderer');
fs.mkdirSync(path.join(rendererDir, 'assets'), { recursive: true });
fs.writeFileSync(path.join(rendererDir, 'index.html'), '<!doctype html><title>AdapterLens test page</title>');
fs.writeFileSync(path.join(rendererDir, 'assets', 'app.js'), 'console.log("app")');
fs.writeFileSync(path.join(rendererDir, 'assets', 'style.css'), 'body{}');
fs.writeFileSync(path.join(root, 'secret.txt'), 'SECRET');
fs.symlinkSync(path.join(root, 'secret.txt'), path.join(rendererDir, 'link.txt'));

const service = new AppService({ transport: 'websocket', historyDir: path.join(root, 'history'), cacheBudgetBytes: 1 << 30, throttleMs: 20 });
let server: RunningServer;
let wsUrl: string;
let cookie: string;

before(async () => {
  server = await startServer({ service, rendererDir, port: 0 });
  wsUrl = `ws://127.0.0.1:${server.port}/rpc`;
  cookie = `adapterlens_${server.port}=${server.token}`;
});
after(async () => {
  await server.close();
  await service.dispose();
});

describe('serve: HTTP', () => {
  it('prints a loopback URL with a random token', () => {
    assert.match(server.url, new RegExp(`^http://127\\.0\\.0\\.1:${server.port}/\\?token=[A-Za-z0-9_-]{32}$`));
    assert.equal(server.host, '127.0.0.1');
  });

  it('refuses the page without the token (401) or with a wrong one (403)', async () => {
    const none = await request(server.port, '/');
    assert.equal(none.status, 401);
    assert.match(none.body, /open the URL that `adapterlens serve` printed/);
    assert.ok(!none.body.includes('AdapterLens test page'));
    assert.equal((await request(server.port, '/?token=wrong')).status, 403);
    assert.equal((await request(server.port, `/?token=${server.token}x`)).status, 403);
  });

  it('serves the page for the token, with a strict CSP and an HttpOnly SameSite=Strict cookie', async () => {
    const page = await request(server.port, `/?token=${server.token}`);
    assert.equal(page.status, 200);
    assert.equal(page.body, '<!doctype html><title>AdapterLens test page</title>');
    assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
    const csp = String(page.headers['content-security-policy']);
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, new RegExp(`connect-src 'self' ws://127\\.0\\.0\\.1:${server.port}(;|$)`));
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(page.headers['referrer-policy'], 'no-referrer');
    assert.equal(page.headers['x-content-type-options'], 'nosniff');
    assert.deepEqual(page.headers['set-cookie'], [`${cookie}; HttpOnly; SameSite=Strict; Path=/`]);
  });

  it('serves assets to the cookie, with their MIME types', async () => {
    const js = await request(server.port, '/assets/app.js', { Cookie: `other=1; ${cookie}` });
    assert.equal(js.status, 200);
    assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
    assert.equal(js.body, 'console.log("app")');
    const css = await request(server.port, '/assets/style.css', { Cookie: cookie });
    assert.equal(css.headers['content-type'], 'text/css; charset=utf-8');
    assert.equal((await request(server.port, '/assets/app.js')).status, 401);
    assert.equal((await request(server.port, '/assets/app.js', { Cookie: `adapterlens_${server.port}=nope` })).status, 401);
    const head = await request(server.port, '/assets/app.js', { Cookie: cookie }, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String('console.log("app")'.length));
    assert.equal((await request(server.port, '/assets/app.js', { Cookie: cookie }, 'POST')).status, 405);
  });

  it('serves nothing outside the renderer folder', async () => {
    for (const p of ['/../secret.txt', '/%2e%2e/secret.txt', '/assets/..%2f..%2fsecret.txt', '/assets/%2e%2e/%2e%2e/secret.txt', '/link.txt', '/..%5csecret.txt', '/%00']) {
      const a = await request(server.port, p, { Cookie: cookie });
      assert.equal(a.status, 404, p);
      assert.ok(!a.body.includes('SECRET'), p);
    }
    assert.equal((await request(server.port, '/missing.js', { Cookie: cookie })).status, 404);
    const route = await request(server.port, '/some/client/route', { Cookie: cookie });
    assert.equal(route.status, 200, 'extension-less paths get the page (client-side routes)');
    assert.match(route.body, /AdapterLens test page/);
  });

  it('refuses a Host header that is not this server (DNS rebinding), even with the token', async () => {
    for (const host of ['evil.example', `evil.example:${server.port}`, `127.0.0.1:${server.port + 1}`, `localhost.evil.example:${server.port}`]) {
      const a = await request(server.port, `/?token=${server.token}`, { Host: host });
      assert.equal(a.status, 403, host);
      assert.ok(!a.headers['set-cookie'], host);
    }
    assert.equal((await request(server.port, `/?token=${server.token}`, { Host: `localhost:${server.port}` })).status, 200);
    // No Host header at all (HTTP/1.0): refused too.
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(server.port, '127.0.0.1', () => socket.end(`GET /?token=${server.token} HTTP/1.0\r\n\r\n`));
      let data = '';
      socket.on('data', (d) => (data += d.toString()));
      socket.on('end', () => resolve(data));
      socket.on('error', reject);
    });
    assert.match(raw, /^HTTP\/1\.[01] 403 /);
  });

  it('answers with a build hint when the renderer is not built, still guarded by the token', async () => {
    const bare = await startServer({ service, rendererDir: path.join(root, 'not-built'), port: 0 });
    try {
      assert.equal((await request(bare.port, '/')).status, 401);
      const a = await request(bare.port, `/?token=${bare.token}`);
      assert.equal(a.status, 503);
      assert.match(a.body, /npm run build/);
      assert.notEqual(bare.token, server.token, 'each server has its own token');
    } finally {
      await bare.close();
    }
  });
});

describe('serve: WebSocket', () => {
  it('refuses a socket without the token, from another origin, to another host or path', async () => {
    await assert.rejects(TestRpcClient.open(wsUrl), /HTTP 401/);
    await assert.rejects(TestRpcClient.open(`${wsUrl}?token=wrong`), /HTTP 401/);
    await assert.rejects(TestRpcClient.open(`${wsUrl}?token=${server.token}`, { origin: 'http://evil.example' }), /HTTP 403/);
    await assert.rejects(TestRpcClient.open(`${wsUrl}?token=${server.token}`, { origin: `http://localhost:${server.port + 1}` }), /HTTP 403/);
    await assert.rejects(TestRpcClient.open(`${wsUrl}?token=${server.token}`, { headers: { Host: `evil.example:${server.port}` } }), /HTTP 403/);
    await assert.rejects(TestRpcClient.open(`ws://127.0.0.1:${server.port}/other?token=${server.token}`), /HTTP 404/);
  });

  it('accepts the token in the query or the cookie, from the page\'s own origin', async () => {
    const byQuery = await TestRpcClient.open(`${wsUrl}?token=${server.token}`);
    const byCookie = await TestRpcClient.open(wsUrl, { headers: { Cookie: cookie }, origin: `http://127.0.0.1:${server.port}` });
    try {
      const info = await byCookie.result<{ transport: string }>('app.info', {});
      assert.equal(info.transport, 'websocket');
      assert.deepEqual(await byQuery.result('run.active', undefined), null);
    } finally {
      await byQuery.close();
      await byCookie.close();
    }
  });

  it('answers malformed messages and params with BAD_REQUEST', async () => {
    const c = await TestRpcClient.open(`${wsUrl}?token=${server.token}`);
    try {
      const bad = await c.call('run.start', { request: tinyRequest({ adapters: [] }) });
      assert.equal(bad.kind, 'error');
      if (bad.kind === 'error') {
        assert.equal(bad.error.code, 'BAD_REQUEST');
        assert.match(bad.error.message, /^Adapters: choose at least one adapter$/);
      }
      const unknown = await c.call('engine.format', {});
      assert.equal(unknown.kind === 'error' && unknown.error.code, 'BAD_REQUEST');
      c.send('{not json');
      c.send(JSON.stringify({ kind: 'call', method: 'app.info' }));
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(c.orphanErrors.map((e: RpcErrorPayload) => e.code), ['BAD_REQUEST', 'BAD_REQUEST']);
      assert.equal(await c.result('run.active', {}), null, 'the socket still works');
    } finally {
      await c.close();
    }
  });

  it('runs a comparison: progress, tokens per decode step, finished after saving to history; BUSY meanwhile', async () => {
    const c = await TestRpcClient.open(`${wsUrl}?token=${server.token}`);
    try {
      const request = tinyRequest({ maxNewTokens: 5, stopAtEos: false });
      const { runId } = await c.result<{ runId: string }>('run.start', { request });
      await assert.rejects(c.result('run.start', { request }), (e: Error & { code?: string }) => e.code === 'BUSY');
      const active = await c.result<ActiveRun>('run.active', {});
      assert.equal(active.runId, runId);
      const finished = await c.waitForEvent((e) => e.event === 'run.finished');
      const payload = finished.payload as { runId: string; reportId: string; report: Report };
      assert.equal(payload.runId, runId);

      const progress = c.events.filter((e) => e.event === 'run.progress').map((e) => (e.payload as { progress: CompareProgress }).progress);
      const stages = [...new Set(progress.map((p) => p.stage))];
      assert.deepEqual(stages, ['load', 'tokenize', 'base-prefill', 'adapter-prefill', 'encode', 'measure', 'generate', 'score']);
      assert.ok(progress.at(-1)!.stage === 'score' && progress.at(-1)!.done === progress.at(-1)!.total);

      // One run.tokens per decode step, each with one token per sequence (2 adapters × 3 strategies).
      const steps = c.events.filter((e) => e.event === 'run.tokens').map((e) => (e.payload as { runId: string; tokens: TokenEvent[] }).tokens);
      assert.equal(steps.length, 5);
      for (const [i, tokens] of steps.entries()) {
        assert.equal(tokens.length, 6);
        assert.ok(tokens.every((t) => t.step === i));
      }
      for (const a of payload.report.adapters) {
        for (const s of a.strategies) {
          const ai = payload.report.adapters.indexOf(a);
          const streamed = steps.map((tokens) => tokens.find((t) => t.adapter === ai && t.strategy === s.strategy)!.token);
          assert.deepEqual(streamed, s.generation.tokens, `${a.name} · ${s.strategy}`);
        }
      }

      // Saved before run.finished: the report is in history and history.changed followed.
      const history = await c.result<HistoryEntry[]>('history.list', {});
      assert.equal(history[0]!.id, payload.reportId);
      assert.deepEqual(history[0]!.adapterNames, ['qv-r8', 'all-linear-rslora']);
      const saved = await c.result<Report>('history.get', { id: payload.reportId });
      assert.deepEqual(saved.adapters.map((a) => a.strategies.map((s) => s.generation.tokens)), payload.report.adapters.map((a) => a.strategies.map((s) => s.generation.tokens)));
      await c.waitForEvent((e) => e.event === 'history.changed');
      const cacheEvent = await c.waitForEvent((e) => e.event === 'cache.changed');
      assert.ok((cacheEvent.payload as CacheUsage).budgetBytes === 1 << 30);
      assert.equal(await c.result('run.active', {}), null);
    } finally {
      await c.close();
    }
  });

  it('cancels a run mid-generation: run.cancelled, nothing saved, nothing left pinned', async () => {
    const c = await TestRpcClient.open(`${wsUrl}?token=${server.token}`);
    try {
      const before = (await c.result<HistoryEntry[]>('history.list', {})).length;
      const { runId } = await c.result<{ runId: string }>('run.start', { request: tinyRequest({ maxNewTokens: 400, stopAtEos: false }) });
      await c.waitForEvent((e) => e.event === 'run.tokens');
      // A tab that reconnects now gets the run's true elapsed time, every stage so far and the tokens.
      const active = await c.result<ActiveRun>('run.active', {});
      assert.equal(active.runId, runId);
      assert.ok(active.elapsedMs > 0);
      assert.deepEqual(Object.keys(active.stages).slice(0, 4), ['load', 'tokenize', 'base-prefill', 'adapter-prefill']);
      assert.equal(active.stages.tokenize?.done, 1);
      assert.ok(active.stages.generate, 'generating');
      assert.ok(active.tokens.length >= 6 && active.tokens.every((t, i) => i === 0 || t.step >= active.tokens[i - 1]!.step));
      const streamedSoFar = c.events.filter((e) => e.event === 'run.tokens').flatMap((e) => (e.payload as { tokens: TokenEvent[] }).tokens);
      assert.deepEqual(active.tokens.slice(0, streamedSoFar.length), streamedSoFar, 'the same tokens the events carried');
      assert.deepEqual(await c.result('run.cancel', { runId: 'not-this-one' }), { cancelled: false });
      assert.deepEqual(await c.result('run.cancel', { runId }), { cancelled: true });
      const ended = await c.waitForEvent((e) => ['run.cancelled', 'run.finished', 'run.failed'].includes(e.event));
      assert.equal(ended.event, 'run.cancelled');
      assert.deepEqual(ended.payload, { runId });
      const steps = c.events.filter((e) => e.event === 'run.tokens').length;
      assert.ok(steps < 400, `stopped early (${steps} steps)`);
      assert.equal(await c.result('run.active', {}), null);
      const usage = await c.result<CacheUsage>('cache.stats', {});
      assert.equal(usage.pinnedBytes, 0);
      assert.equal(usage.transientBytes, 0);
      assert.equal((await c.result<HistoryEntry[]>('history.list', {})).length, before);
      // The slot is free again: cache.clear, then a new run can start (and is cancelled at once).
      assert.equal((await c.result<CacheUsage>('cache.clear', {})).entries.length, 0);
    } finally {
      await c.close();
    }
  });
});
