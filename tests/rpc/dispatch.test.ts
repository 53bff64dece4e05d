// dispatch(): the name check, the schema, and how every kind of failure becomes an
// RpcErrorPayload instead of an exception.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cancelledError } from '../../main/cache/cache-manager.js';
import { CompareInputError } from '../../main/compare/runner.js';
import { LoadError } from '../../main/model/errors.js';
import { dispatch } from '../../main/rpc/dispatch.js';
import { rpcError } from '../../main/rpc/errors.js';
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
    assert.deepEqual(answer, { ok: false, error: { code: 'BAD_REQUEST', message: 'invalid arguments: id: not a history id' } });
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
});
