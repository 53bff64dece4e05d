// dispatch(): the name check, the schema, and how every kind of failure becomes an
// RpcErrorPayload instead of an exception.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cancelledError } from '../../main/cache/cache-manager.js';
import { CompareInputError } from '../../main/compare/runner.js';
import { LoadError } from '../../main/model/errors.js';
import { dispatch } from '../../main/rpc/dispatch.js';
import { appWords, rpcError } from '../../main/rpc/errors.js';
import { tinyRequest } from './helpers.js';
import type { Handlers } from '../../main/rpc/service.js';

/** Handlers where only history.get does anything: it throws what the test gives it. */
function throwing(err: unknown): Handlers {
  const calls: unknown[] = [];
  return new Proxy({} as Handlers, {
    get: (_t, name) => async (params: unknown) => {
      calls.push(params);
      if (name === 'history.get') throw err;
      return { name, params };
    },
  });
}

const ID = { id: '20261128T160000123Z-1a2b3c4d' };

describe('dispatch', () => {
  it('passes parsed params to the handler and returns its result', async () => {
    const answer = await dispatch(throwing(null), 'run.cancel', { runId: 'r1' });
    assert.deepEqual(answer, { ok: true, result: { name: 'run.cancel', params: { runId: 'r1' } } });
  });

  it('refuses unknown method names without calling anything', async () => {
    for (const name of ['no.such', '__proto__', 'constructor', 42, null]) {
      const answer = await dispatch(throwing(null), name, {});
      assert.equal(answer.ok, false);
      if (!answer.ok) assert.equal(answer.error.code, 'BAD_REQUEST', String(name));
    }
  });

  it('maps malformed params to BAD_REQUEST with the field in the message', async () => {
    const answer = await dispatch(throwing(null), 'history.get', { id: '../../x' });
    assert.deepEqual(answer, { ok: false, error: { code: 'BAD_REQUEST', message: 'The run id: not a history id' } });
  });

  it('maps every thrown value to a code and a readable message', async () => {
    const cases: [unknown, string, RegExp][] = [
      [rpcError('NOT_FOUND', 'no saved run'), 'NOT_FOUND', /^no saved run$/],
      [new LoadError({ file: '/m', message: 'this folder has no config.json' }), 'INVALID_INPUT', /^\/m: this folder has no config\.json$/],
      [new CompareInputError('the document is empty'), 'INVALID_INPUT', /^the document is empty$/],
      [cancelledError(), 'CANCELLED', /cancelled/],
      [Object.assign(new Error("ENOENT: no such file or directory, scandir '/gone'"), { code: 'ENOENT', path: '/gone' }), 'INVALID_INPUT', /^\/gone: no such file or folder$/],
      [new Error('disk full'), 'INTERNAL', /^disk full$/],
      ['a string', 'INTERNAL', /^a string$/],
      [undefined, 'INTERNAL', /undefined/],
    ];
    for (const [err, code, message] of cases) {
      const answer = await dispatch(throwing(err), 'history.get', ID);
      assert.equal(answer.ok, false);
      if (!answer.ok) {
        assert.equal(answer.error.code, code);
        assert.match(answer.error.message, message);
      }
    }
  });
  it('says what is wrong in the app\'s words: no schema path, no CLI flag', async () => {
    const request = tinyRequest();
    const cases: [unknown, RegExp][] = [
      [{ request: { ...request, maxNewTokens: 5000 } }, /^Max new tokens: must be at most 4096$/],
      [{ request: { ...request, maxNewTokens: -5 } }, /^Max new tokens: must be at least 0$/],
      [{ request: { ...request, maxNewTokens: 1.5 } }, /^Max new tokens: must be a whole number$/],
      [{ request: { ...request, adapters: [{ dir: '' }] } }, /^The folder of adapter 1: must not be empty$/],
      [{ request: { ...request, strategies: ['exact', 'hybrid:5000'] } }, /^Strategy 2: strategy "hybrid:5000": at most 1024 layers can be kept exact$/],
      [{ request: { ...request, dtype: 'int8' } }, /^Compute dtype: must be one of fp32, bf16, fp16$/],
      [{ request: { ...request, extra: 1 } }, /^The request: has unexpected field extra$|^A value in the request: has unexpected field extra$/],
    ];
    for (const [params, message] of cases) {
      const answer = await dispatch(throwing(null), 'run.start', params);
      assert.ok(!answer.ok);
      if (!answer.ok) {
        assert.equal(answer.error.code, 'BAD_REQUEST');
        assert.match(answer.error.message, message);
        assert.doesNotMatch(answer.error.message, /request\.|Too big|Too small/);
      }
    }
    // The runner's hints name CLI flags; on the RPC path they become the app's words.
    assert.equal(appWords('the CPU engine computes in fp32 only; bf16 needs the CUDA build (use --dtype fp32)'), 'the CPU engine computes in fp32 only; bf16 needs the CUDA build: choose fp32 under Compute dtype');
    assert.equal(appWords('two adapters are named "qv": give them distinct names (--adapter NAME=DIR)'), 'two adapters are named "qv": rename one of them in the adapter list');
    assert.equal(appWords('too big (see --budget-gib)'), 'too big');
    const answer = await dispatch(throwing(new CompareInputError('two adapters are named "qv": give them distinct names (--adapter NAME=DIR)')), 'history.get', ID);
    assert.ok(!answer.ok && !answer.error.message.includes('--'));
  });
});
