import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RpcError, type ClientMessage } from '../../shared/rpc.js';
import { serveRpcUrl } from '../src/rpc/client.js';
import { WsRpcClient, type SocketLike } from '../src/rpc/ws-client.js';

class FakeSocket implements SocketLike {
  readyState = 0;
  sent: ClientMessage[] = [];
  onopen: ((ev: Event) => void) | null = null;
  onclose: ((ev: CloseEvent) => void) | null = null;
  onerror: ((ev: Event) => void) | null = null;
  onmessage: ((ev: MessageEvent) => void) | null = null;
  constructor(readonly url: string) {}
  send(data: string): void {
    this.sent.push(JSON.parse(data) as ClientMessage);
  }
  close(): void {
    this.drop(1000);
  }
  open(): void {
    this.readyState = 1;
    this.onopen?.(new Event('open'));
  }
  drop(code = 1006): void {
    this.readyState = 3;
    this.onclose?.({ code } as CloseEvent);
  }
  reply(data: unknown): void {
    this.onmessage?.({ data: JSON.stringify(data) } as MessageEvent);
  }
}

function setup(): { client: WsRpcClient; sockets: FakeSocket[] } {
  const sockets: FakeSocket[] = [];
  const client = new WsRpcClient({
    url: 'ws://h/rpc?token=t',
    createSocket: (url) => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    connectTimeoutMs: 200,
    maxBackoffMs: 10,
  });
  return { client, sockets };
}

describe('WebSocket RPC client', () => {
  it('queues calls until open, then matches answers by id', async () => {
    const { client, sockets } = setup();
    const states: string[] = [];
    client.onState((s) => states.push(s));
    const info = client.call('history.list', {});
    const count = client.call('cache.stats', {});
    assert.equal(sockets[0]!.sent.length, 0);
    sockets[0]!.open();
    assert.deepEqual(sockets[0]!.sent.map((m) => m.method), ['history.list', 'cache.stats']);
    const [a, b] = sockets[0]!.sent;
    sockets[0]!.reply({ kind: 'result', id: b!.id, result: { usedBytes: 1 } });
    sockets[0]!.reply({ kind: 'error', id: a!.id, error: { code: 'INTERNAL', message: 'disk full' } });
    assert.deepEqual(await count, { usedBytes: 1 });
    await assert.rejects(info, (e: unknown) => e instanceof RpcError && e.code === 'INTERNAL' && e.message === 'disk full');
    assert.deepEqual(states, ['open']);
    client.close();
  });

  it('delivers events to subscribers until they unsubscribe', () => {
    const { client, sockets } = setup();
    sockets[0]!.open();
    const got: string[] = [];
    const off = client.on('run.cancelled', (p) => got.push(p.runId));
    sockets[0]!.reply({ kind: 'event', event: 'run.cancelled', payload: { runId: 'r1' } });
    sockets[0]!.reply({ kind: 'event', event: 'not.an.event', payload: {} });
    sockets[0]!.reply('garbage');
    off();
    sockets[0]!.reply({ kind: 'event', event: 'run.cancelled', payload: { runId: 'r2' } });
    assert.deepEqual(got, ['r1']);
    client.close();
  });

  it('fails calls in flight when the socket drops, then reconnects and keeps listeners', async () => {
    const { client, sockets } = setup();
    sockets[0]!.open();
    const got: string[] = [];
    client.on('run.cancelled', (p) => got.push(p.runId));
    const pending = client.call('app.info', {});
    sockets[0]!.drop();
    await assert.rejects(pending, /connection to AdapterLens was lost/);
    assert.equal(client.state, 'connecting');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(sockets.length, 2, 'reconnected');
    sockets[1]!.open();
    assert.equal(client.state, 'open');
    sockets[1]!.reply({ kind: 'event', event: 'run.cancelled', payload: { runId: 'again' } });
    assert.deepEqual(got, ['again']);
    client.close();
    assert.equal(client.state, 'closed');
  });

  it('fails a call that waits too long for a connection', async () => {
    const { client } = setup();
    await assert.rejects(client.call('app.info', {}), /Cannot reach AdapterLens/);
    client.close();
  });

  it('builds the serve URL from the page location and token', () => {
    assert.equal(serveRpcUrl({ protocol: 'http:', host: '127.0.0.1:8765', search: '?token=a+b' }, null), 'ws://127.0.0.1:8765/rpc?token=a%20b');
    assert.equal(serveRpcUrl({ protocol: 'https:', host: 'x', search: '' }, 'kept'), 'wss://x/rpc?token=kept');
  });
});
