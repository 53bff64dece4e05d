// Property-based fuzzing of the RPC (issue 13): the params schemas of every method, the
// service behind them with well-shaped but hostile arguments (device files, /proc,
// folders that are not models, broken files, random documents and limits), and the
// WebSocket wire with random frames. Property: a call is answered with its result or
// with an RpcError code the contract defines for bad input (BAD_REQUEST, INVALID_INPUT,
// NOT_FOUND, NOT_SUPPORTED); never INTERNAL, never an exception, and the server keeps
// answering.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import WebSocket from 'ws';
import { dispatch } from '../../main/rpc/dispatch.js';
import { PARAM_SCHEMAS } from '../../main/rpc/schemas.js';
import { AppService, type Handlers } from '../../main/rpc/service.js';
import { startServer, type RunningServer } from '../../main/server/server.js';
import { RPC_METHOD_NAMES, type RpcErrorCode, type RpcMethodName } from '../../shared/rpc.js';
import { ADAPTERS_DIR, MODEL_DIR, TestRpcClient, tempDir } from '../rpc/helpers.js';
import { FUZZ_MS, fuzz, hostileJson, regexish } from './settings.js';

const INPUT_ERRORS: ReadonlySet<RpcErrorCode> = new Set(['BAD_REQUEST', 'INVALID_INPUT', 'NOT_FOUND', 'NOT_SUPPORTED']);

const root = tempDir('fuzz-rpc');
// Folders a user could point at: device files, /proc, broken model and adapter folders.
const broken = path.join(root, 'broken');
fs.mkdirSync(broken);
fs.writeFileSync(path.join(broken, 'config.json'), '{"architectures":["LlamaForCausalLM"],"vocab_size":1e9');
fs.writeFileSync(path.join(broken, 'adapter_config.json'), '{"peft_type":"LORA","target_modules":"(a+)+$"}');
fs.writeFileSync(path.join(broken, 'model.safetensors'), Buffer.from([255, 255, 255, 255, 255, 255, 255, 255, 123]));
fs.writeFileSync(path.join(broken, 'tokenizer.json'), '[[[[[[[[');
fs.symlinkSync('/dev/zero', path.join(broken, 'tokenizer_config.json'));
const PATHS = ['/', '/dev', '/dev/zero', '/dev/null', '/proc', '/proc/self', '/proc/self/mem', '/etc/passwd', '/nonexistent/x', broken, MODEL_DIR, ADAPTERS_DIR, path.join(ADAPTERS_DIR, 'qv-r8'), root, `/${'a'.repeat(5000)}`];

const anyPath = fc.oneof(fc.constantFrom(...PATHS), fc.string({ maxLength: 30 }).map((s) => `/${s}`), fc.string({ maxLength: 10 }));
const text = fc.oneof(fc.string({ maxLength: 200 }), fc.constantFrom('', '\u0000', '<s></s>', '\ud800', 'a'.repeat(20_000)));
const historyId = fc.oneof(fc.constantFrom('20260101T000000000Z-00000001', '../../etc/passwd', ''), fc.string({ maxLength: 30 }));

/** Well-shaped params for each method the service answers at once (run.start is fuzzed by its schema). */
const SHAPED: Partial<Record<RpcMethodName, fc.Arbitrary<unknown>>> = {
  'app.info': fc.constant({}),
  'model.inspect': fc.record({ dir: anyPath }),
  'adapter.inspect': fc.record({ modelDir: anyPath, dir: anyPath }),
  'text.count': fc.record(
    { modelDir: anyPath, tokenizerDir: anyPath, documentText: text, promptText: text, limit: fc.oneof(fc.integer(), fc.double(), fc.constant(1 << 26)) },
    { requiredKeys: ['modelDir', 'documentText', 'promptText'] },
  ),
  'fs.browse': fc.record({ dir: anyPath }, { requiredKeys: [] }),
  'dialog.pickFolders': fc.record({ purpose: fc.constantFrom('model', 'adapter', 'tokenizer', 'x'), multiple: fc.boolean() }),
  'run.cancel': fc.record({ runId: fc.string({ maxLength: 70 }) }),
  'run.active': fc.constant({}),
  'cache.stats': fc.constant(undefined),
  'cache.clear': fc.constant(null),
  'history.list': fc.constant({}),
  'history.skipped': fc.constant({}),
  'history.get': fc.record({ id: historyId }),
  'history.delete': fc.record({ id: historyId }),
  'report.export': fc.record({ id: historyId, format: fc.constantFrom('json', 'html', 'md', 'csv', 'pdf', 'exe') }),
  'report.saveAs': fc.record({ id: historyId, format: fc.constantFrom('json', 'md') }),
};

function checkAnswer(answer: Awaited<ReturnType<typeof dispatch>>, what: string): void {
  if (answer.ok) return;
  assert.ok(INPUT_ERRORS.has(answer.error.code), `${what}: ${answer.error.code} ${answer.error.message}`);
  assert.equal(typeof answer.error.message, 'string');
}

describe('fuzz: the RPC answers bad input with typed errors only', { timeout: 300_000 }, () => {
  const service = new AppService({ transport: 'websocket', historyDir: path.join(root, 'history'), cacheBudgetBytes: 1 << 30 });
  let server: RunningServer;
  before(async () => {
    fs.mkdirSync(path.join(root, 'renderer'));
    fs.writeFileSync(path.join(root, 'renderer', 'index.html'), '<!doctype html>');
    server = await startServer({ service, rendererDir: path.join(root, 'renderer'), port: 0 });
  });
  after(async () => {
    await server.close();
    await service.dispose();
  });

  it('every params schema: any value is accepted or refused as BAD_REQUEST (handlers stubbed)', async (t) => {
    const stub = Object.fromEntries(RPC_METHOD_NAMES.map((m) => [m, async () => null])) as unknown as Handlers;
    const value = fc.oneof(fc.anything(), hostileJson, ...Object.values(SHAPED), fc.record({ request: hostileJson }), fc.record({ request: fc.record({ modelDir: anyPath, adapters: fc.array(fc.record({ dir: anyPath, name: fc.string() }), { maxLength: 20 }), documentText: text, promptText: text, strategies: fc.array(fc.oneof(regexish, fc.constantFrom('exact', 'lowrank:8', 'hybrid:99999', 'lowrank:1e9')), { maxLength: 4 }), maxNewTokens: fc.integer(), temperature: fc.double(), topP: fc.double(), seed: fc.double(), dtype: fc.string(), device: fc.string(), stopAtEos: fc.anything() }) }));
    await fuzz(
      t,
      fc.asyncProperty(fc.oneof(fc.constantFrom(...RPC_METHOD_NAMES), fc.string(), fc.anything()), value, async (method, params) => {
        for (const schema of Object.values(PARAM_SCHEMAS)) schema.safeParse(params); // never throws
        const answer = await dispatch(stub, method, params);
        if (!answer.ok) assert.equal(answer.error.code, 'BAD_REQUEST', answer.error.message);
      }),
    );
  });

  it('the service with well-shaped hostile arguments: results or input errors, never INTERNAL', async (t) => {
    const call = fc.oneof(...Object.entries(SHAPED).map(([m, arb]) => arb.map((p) => [m, p] as const)));
    await fuzz(
      t,
      fc.asyncProperty(call, async ([method, params]) => {
        checkAnswer(await dispatch(service.handlers, method, params), `${method} ${JSON.stringify(params)?.slice(0, 200)}`);
      }),
      2 * FUZZ_MS,
    );
  });

  it('the WebSocket wire: random frames are answered, the socket and the server live on', async (t) => {
    const client = await TestRpcClient.open(`ws://127.0.0.1:${server.port}/rpc?token=${server.token}`);
    try {
      const frame = fc.oneof(
        fc.string(),
        fc.json(),
        hostileJson.map((j) => JSON.stringify(j) ?? 'null'),
        fc.record({ kind: fc.oneof(fc.constant('call'), fc.string()), id: fc.oneof(fc.integer(), fc.double(), fc.string()), method: fc.oneof(fc.constantFrom(...RPC_METHOD_NAMES), fc.string()), params: hostileJson }).map((m) => JSON.stringify(m)),
        fc.uint8Array({ maxLength: 64 }),
      );
      await fuzz(
        t,
        fc.asyncProperty(frame, async (f) => {
          const before = client.orphanErrors.length;
          if (typeof f === 'string') client.send(f);
          else client.ws.send(f, { binary: true });
          // Every frame gets an answer; wait for it through a call that must come back after it.
          const answer = await client.call('run.active', {});
          assert.equal(answer.kind, 'result');
          assert.ok(client.orphanErrors.length >= before);
          assert.equal(client.ws.readyState, WebSocket.OPEN);
        }),
      );
      assert.ok(client.orphanErrors.every((e) => e.code === 'BAD_REQUEST'), 'answers without an id are BAD_REQUEST');
    } finally {
      await client.close();
    }
    const again = await TestRpcClient.open(`ws://127.0.0.1:${server.port}/rpc?token=${server.token}`);
    assert.equal((await again.call('cache.stats', {})).kind, 'result');
    await again.close();
  });
});
