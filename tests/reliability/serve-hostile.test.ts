// Requests that must not stop `adapterlens serve` (issue 13, rows 1 and 11), sent as raw
// bytes so nothing in between normalizes them: a WebSocket upgrade whose target makes
// `new URL` throw, with no token (any local process, or another localhost origin's page,
// can send one); `GET //`; two Host headers; malformed HTTP. After each, the server
// still answers a normal request. And fs.browse on a symlink loop is INVALID_INPUT.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { dispatch } from '../../main/rpc/dispatch.js';
import { AppService } from '../../main/rpc/service.js';
import { startServer, type RunningServer } from '../../main/server/server.js';
import { TestRpcClient, tempDir } from '../rpc/helpers.js';

/** Sends raw bytes and resolves with everything the server answered before closing (or 2 s). */
function raw(port: number, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let answer = '';
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(done, 2000);
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (answer += d));
    socket.on('end', done);
    socket.on('error', done);
    socket.on('connect', () => socket.write(bytes));
  });
}

function status(answer: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0);
}

const root = tempDir('hostile');
const rendererDir = path.join(root, 'renderer');
fs.mkdirSync(rendererDir, { recursive: true });
fs.writeFileSync(path.join(rendererDir, 'index.html'), '<!doctype html><title>ok</title>');
const service = new AppService({ transport: 'websocket', historyDir: path.join(root, 'history'), cacheBudgetBytes: 1 << 30 });
let server: RunningServer;

before(async () => {
  server = await startServer({ service, rendererDir, port: 0 });
});
after(async () => {
  await server.close();
  await service.dispose();
});

async function stillServes(): Promise<void> {
  const a = await raw(server.port, `GET /?token=${server.token} HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nConnection: close\r\n\r\n`);
  assert.equal(status(a), 200, 'the server still answers');
  const client = await TestRpcClient.open(`ws://127.0.0.1:${server.port}/rpc?token=${server.token}`);
  try {
    const answer = await client.call('cache.stats', {});
    assert.equal(answer.kind, 'result', 'the RPC still answers');
  } finally {
    await client.close();
  }
}

const upgrade = (target: string, extra = ''): string =>
  `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:PORT\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;

describe('serve: hostile requests', () => {
  for (const target of ['//', 'http://[', '//evil.example/rpc', 'http://127.0.0.1/rpc', '*', '/rpc?%zz']) {
    it(`a WebSocket upgrade to ${JSON.stringify(target)} without a token is refused, and the server lives on`, async () => {
      const a = await raw(server.port, upgrade(target).replace('PORT', String(server.port)));
      const code = status(a);
      assert.ok(code === 400 || code === 401 || code === 404, `answered ${code}: ${a.slice(0, 80)}`);
      if (target === '//' || target === 'http://[') assert.equal(code, 400);
      await stillServes();
    });
  }

  it('GET // is a 400, not a 500', async () => {
    const a = await raw(server.port, `GET // HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nConnection: close\r\n\r\n`);
    assert.equal(status(a), 400, a.slice(0, 120));
    assert.doesNotMatch(a, /Invalid URL/);
    const b = await raw(server.port, `GET http://[ HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nConnection: close\r\n\r\n`);
    assert.ok(status(b) === 400, b.slice(0, 120));
    await stillServes();
  });

  it('two Host headers are a 400, for a page and for a WebSocket', async () => {
    const page = await raw(
      server.port,
      `GET /?token=${server.token} HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nHost: evil.example\r\nConnection: close\r\n\r\n`,
    );
    assert.equal(status(page), 400, page.slice(0, 120));
    const ws = await raw(server.port, upgrade(`/rpc?token=${server.token}`, 'Host: evil.example\r\n').replace('PORT', String(server.port)));
    assert.equal(status(ws), 400, ws.slice(0, 120));
    await stillServes();
  });

  it('malformed HTTP is answered 400 and closed', async () => {
    const a = await raw(server.port, 'GET / HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n');
    assert.equal(status(a), 400);
    const b = await raw(server.port, '\u0000\u0001garbage\r\n\r\n');
    assert.ok(status(b) === 400 || b === '');
    await stillServes();
  });

  it('fs.browse on a symbolic link loop is INVALID_INPUT naming the folder, not INTERNAL', async () => {
    const dir = tempDir('loop');
    fs.symlinkSync(path.join(dir, 'b'), path.join(dir, 'a'));
    fs.symlinkSync(path.join(dir, 'a'), path.join(dir, 'b'));
    const answer = await dispatch(service.handlers, 'fs.browse', { dir: path.join(dir, 'a') });
    assert.equal(answer.ok, false);
    if (!answer.ok) {
      assert.equal(answer.error.code, 'INVALID_INPUT');
      assert.match(answer.error.message, /symbolic link loop/);
    }
    // The folder holding the loop lists fine (the looping links are simply not folders).
    const parent = await dispatch(service.handlers, 'fs.browse', { dir });
    assert.ok(parent.ok);
  });
});
