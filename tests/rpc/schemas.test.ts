// The params schemas: what a valid call looks like after parsing, and that malformed or
// oversized params are refused with a message naming the field.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { LIMITS, PARAM_SCHEMAS, expandUserPath, parseParams } from '../../main/rpc/schemas.js';
import { RPC_METHOD_NAMES } from '../../shared/rpc.js';
import type { StrategyId } from '../../shared/strategies.js';
import { tinyRequest } from './helpers.js';

function refusal(method: Parameters<typeof parseParams>[0], params: unknown): string {
  try {
    parseParams(method, params);
  } catch (e) {
    assert.ok(e instanceof z.ZodError, `expected a ZodError, got ${String(e)}`);
    return e.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
  }
  assert.fail(`${method} accepted ${JSON.stringify(params).slice(0, 200)}`);
}

describe('RPC param schemas', () => {
  it('has exactly one schema per contract method', () => {
    assert.deepEqual(Object.keys(PARAM_SCHEMAS).sort(), [...RPC_METHOD_NAMES].sort());
  });

  it('accepts a valid compare request and canonicalizes its strategy ids', () => {
    // A caller may send ids with stray spaces: the schema canonicalizes them.
    const sloppy = ['exact', ' lowrank:8 ', 'hybrid:2', 'delta-int4'] as unknown as StrategyId[];
    const parsed = parseParams('run.start', { request: tinyRequest({ strategies: sloppy }) });
    assert.deepEqual(parsed.request.strategies, ['exact', 'lowrank:8', 'hybrid:2', 'delta-int4']);
    assert.equal(parsed.request.adapters.length, 2);
  });

  it('refuses requests outside the limits, naming the field', () => {
    const base = tinyRequest();
    assert.match(refusal('run.start', { request: { ...base, adapters: [] } }), /request\.adapters: choose at least one adapter/);
    const many = Array.from({ length: LIMITS.adapters + 1 }, (_, i) => ({ dir: `/a/${i}` }));
    assert.match(refusal('run.start', { request: { ...base, adapters: many } }), /request\.adapters: at most 16 adapters/);
    assert.match(refusal('run.start', { request: { ...base, strategies: ['exact', 'minikv'] } }), /request\.strategies\.1: unknown strategy "minikv"/);
    assert.match(refusal('run.start', { request: { ...base, strategies: ['lowrank:0'] } }), /rank must be at least 1/);
    assert.match(refusal('run.start', { request: { ...base, maxNewTokens: LIMITS.maxNewTokens + 1 } }), /request\.maxNewTokens/);
    assert.match(refusal('run.start', { request: { ...base, maxNewTokens: 1.5 } }), /request\.maxNewTokens/);
    assert.match(refusal('run.start', { request: { ...base, topP: 0 } }), /request\.topP/);
    assert.match(refusal('run.start', { request: { ...base, dtype: 'int8' } }), /request\.dtype/);
    assert.match(refusal('run.start', { request: { ...base, modelDir: '' } }), /request\.modelDir: must not be empty/);
    assert.match(refusal('run.start', { request: { ...base, modelDir: '/a\0b' } }), /request\.modelDir: must not contain NUL/);
    assert.match(refusal('run.start', { request: { ...base, extra: 1 } }), /extra/);
    const { stopAtEos: _omitted, ...missing } = base;
    assert.match(refusal('run.start', { request: missing }), /request\.stopAtEos/);
    assert.match(refusal('run.start', { request: 'compare everything' }), /request/);
    assert.match(refusal('run.start', null), /expected object/);
  });

  it('refuses a document over the size limit (measured in UTF-8 bytes)', () => {
    // 3-byte characters: under the limit in UTF-16 units, over it in bytes.
    const big = '€'.repeat(Math.floor(LIMITS.documentBytes / 3) + 1);
    assert.match(refusal('run.start', { request: tinyRequest({ documentText: big }) }), /the document is larger than 50 MiB/);
    assert.match(refusal('text.count', { modelDir: '/m', documentText: big, promptText: '' }), /documentText/);
  });

  it('accepts a missing params object for methods without params, and nothing else there', () => {
    assert.deepEqual(parseParams('app.info', undefined), {});
    assert.deepEqual(parseParams('history.list', null), {});
    assert.deepEqual(parseParams('fs.browse', undefined), {});
    assert.match(refusal('cache.stats', { anything: true }), /anything/);
  });

  it('refuses history ids that are not generated ids (no path traversal)', () => {
    assert.deepEqual(parseParams('history.get', { id: '20261128T160000123Z-1a2b3c4d' }), { id: '20261128T160000123Z-1a2b3c4d' });
    for (const id of ['../etc/passwd', '20261128T160000123Z-1a2b3c4d/../x', '20261128T160000123Z-1a2b3c4d.json', '', 'a'.repeat(10_000)]) {
      assert.match(refusal('history.get', { id }), /id: not a history id/, id.slice(0, 40));
    }
    assert.match(refusal('report.export', { id: '20261128T160000123Z-1a2b3c4d', format: 'docx' }), /format/);
  });

  it('checks the other methods\' params', () => {
    assert.match(refusal('dialog.pickFolders', { purpose: 'weights', multiple: false }), /purpose/);
    assert.match(refusal('adapter.inspect', { dir: '/x' }), /modelDir/);
    assert.match(refusal('run.cancel', { runId: 7 }), /runId/);
  });
  it('makes typed paths absolute: ~ is the home folder, a relative path is relative to the working folder', () => {
    assert.equal(expandUserPath('~', '/work', '/home/ann'), '/home/ann');
    assert.equal(expandUserPath('~/models/x', '/work', '/home/ann'), '/home/ann/models/x');
    assert.equal(expandUserPath('models/demo', '/work', '/home/ann'), '/work/models/demo');
    assert.equal(expandUserPath('../m', '/work/a', '/home/ann'), '/work/m');
    assert.equal(expandUserPath('/abs/path', '/work', '/home/ann'), '/abs/path');
    assert.equal(expandUserPath('~ann/x', '/work', '/home/ann'), '/work/~ann/x', 'only ~ and ~/ are the home folder');
    const parsed = parseParams('model.inspect', { dir: 'tests/fixtures' });
    assert.equal(parsed.dir, `${process.cwd()}/tests/fixtures`);
  });
});
