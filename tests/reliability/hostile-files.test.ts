// Files a careless user or an attacker could hand AdapterLens (issue 13, rows 2, 3, 7 and
// 9), through the RPC the app uses and through the loaders the CLI uses. Each must be
// refused quickly with a LoadError / INVALID_INPUT naming the file and the field, never
// hang, never exhaust memory, never reach the engine, never end as "Maximum call stack
// size exceeded" or a raw ENOENT. Every variant is a copy of the tiny fixture model or
// adapter with one thing changed. Each block has a time limit: a regression that hangs
// fails here instead of stalling CI.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { CacheManager } from '../../main/cache/cache-manager.js';
import { EngineSession } from '../../main/compare/session.js';
import { runComparison } from '../../main/compare/runner.js';
import { LoadError } from '../../main/model/errors.js';
import { openAdapter } from '../../main/model/adapter.js';
import { openCheckpoint } from '../../main/model/checkpoint.js';
import { loadTokenizer } from '../../main/model/tokenizer.js';
import { countTokensInWorker } from '../../main/model/tokenize-async.js';
import { dispatch } from '../../main/rpc/dispatch.js';
import { AppService } from '../../main/rpc/service.js';
import type { RpcErrorCode } from '../../shared/rpc.js';
import { ADAPTERS_DIR, MODEL_DIR, tempDir, tinyRequest } from '../rpc/helpers.js';

const root = tempDir('hostile-files');
let n = 0;

/** A copy of the fixture model (weights symlinked) with `edit` applied to one JSON file. */
function modelWith(file: string, edit: (json: Record<string, unknown>) => unknown): string {
  const dir = path.join(root, `model${n++}`);
  fs.mkdirSync(dir);
  for (const name of fs.readdirSync(MODEL_DIR)) {
    const src = path.join(MODEL_DIR, name);
    if (name.endsWith('.safetensors')) fs.symlinkSync(src, path.join(dir, name));
    else fs.copyFileSync(src, path.join(dir, name));
  }
  const target = path.join(dir, file);
  const json = JSON.parse(fs.readFileSync(target, 'utf8')) as Record<string, unknown>;
  const out = edit(json);
  fs.writeFileSync(target, typeof out === 'string' ? out : JSON.stringify(out ?? json));
  return dir;
}

function adapterWith(edit: (json: Record<string, unknown>) => unknown, base = 'qv-r8'): string {
  const dir = path.join(root, `adapter${n++}`);
  fs.mkdirSync(dir);
  fs.copyFileSync(path.join(ADAPTERS_DIR, base, 'adapter_model.safetensors'), path.join(dir, 'adapter_model.safetensors'));
  const json = JSON.parse(fs.readFileSync(path.join(ADAPTERS_DIR, base, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  const out = edit(json);
  fs.writeFileSync(path.join(dir, 'adapter_config.json'), typeof out === 'string' ? out : JSON.stringify(out ?? json));
  return dir;
}

const deep = (depth: number): string => `${'['.repeat(depth)}1${']'.repeat(depth)}`;

const service = new AppService({ transport: 'websocket', historyDir: path.join(root, 'history'), cacheBudgetBytes: 1 << 30 });
after(() => service.dispose());

async function refused(method: string, params: unknown, file: RegExp, message: RegExp, code: RpcErrorCode = 'INVALID_INPUT'): Promise<void> {
  const answer = await dispatch(service.handlers, method, params);
  assert.equal(answer.ok, false, `${method} should be refused`);
  if (answer.ok) return;
  assert.equal(answer.error.code, code, answer.error.message);
  assert.match(answer.error.message, file, 'names the file');
  assert.match(answer.error.message, message);
  assert.doesNotMatch(answer.error.message, /Maximum call stack|ENOENT|Invalid array length|heap/);
}

describe('hostile adapter_config.json regexes (row 2): matched in linear time', { timeout: 120_000 }, () => {
  const hostile = '([a-z._0-9]+)*X';
  it('target_modules', async () => {
    await refused('adapter.inspect', { modelDir: MODEL_DIR, dir: adapterWith((c) => ({ ...c, target_modules: hostile })) }, /adapter_config\.json/, /target_modules/);
  });
  it('exclude_modules (the adapter still loads: nothing is excluded)', async () => {
    const answer = await dispatch(service.handlers, 'adapter.inspect', { modelDir: MODEL_DIR, dir: adapterWith((c) => ({ ...c, exclude_modules: hostile })) });
    assert.ok(answer.ok, answer.ok ? '' : answer.error.message);
  });
  it('a rank_pattern and an alpha_pattern key (no key matches: the default rank and alpha apply)', async () => {
    const answer = await dispatch(service.handlers, 'adapter.inspect', {
      modelDir: MODEL_DIR,
      dir: adapterWith((c) => ({ ...c, rank_pattern: { [hostile]: 4 }, alpha_pattern: { [`${hostile}|(x+x+)+y`]: 3 } })),
    });
    assert.ok(answer.ok, answer.ok ? '' : answer.error.message);
    if (answer.ok) assert.equal((answer.result as { maxRank: number }).maxRank, 8);
  });
  it('what RE2 cannot run is refused with the file and field', async () => {
    await refused('adapter.inspect', { modelDir: MODEL_DIR, dir: adapterWith((c) => ({ ...c, rank_pattern: { '(q)\\1_proj': 4 } })) }, /adapter_config\.json/, /rank_pattern.*back-reference/);
    await refused('adapter.inspect', { modelDir: MODEL_DIR, dir: adapterWith((c) => ({ ...c, target_modules: '.*(?=v_proj)v_proj' })) }, /adapter_config\.json/, /target_modules.*lookahead/);
  });
  it('the loader itself (the CLI path) answers at once', async () => {
    const cfg = (await openCheckpoint(MODEL_DIR)).config.native;
    await assert.rejects(openAdapter(adapterWith((c) => ({ ...c, target_modules: hostile })), cfg), (e: unknown) => e instanceof LoadError && e.field === 'target_modules');
  });
});

describe('hostile tokenizer.json (rows 2 and 7)', { timeout: 120_000 }, () => {
  const asFast = (edit: (t: Record<string, unknown>) => void) => {
    const dir = modelWith('tokenizer.json', (t) => {
      edit(t);
      return t;
    });
    const cfgFile = path.join(dir, 'tokenizer_config.json');
    const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
    // Not a Llama tokenizer class: the file's own pre-tokenizer is used (and so checked).
    cfg.tokenizer_class = 'PreTrainedTokenizerFast';
    fs.writeFileSync(cfgFile, JSON.stringify(cfg));
    return dir;
  };

  it('a catastrophic Split pattern is refused at load, naming the field', async () => {
    const dir = asFast((t) => {
      t.pre_tokenizer = { type: 'Split', pattern: { Regex: '([a-z._0-9]+)*X' }, behavior: 'Isolated', invert: false };
    });
    await refused('text.count', { modelDir: dir, documentText: `${'a'.repeat(5000)}!`, promptText: '' }, /tokenizer\.json/, /pre_tokenizer\.pattern\.Regex.*exponential/);
    await assert.rejects(loadTokenizer(dir), (e: unknown) => e instanceof LoadError && e.field === 'pre_tokenizer.pattern.Regex');
  });

  it('a slow pattern the check cannot see is stopped by the worker\'s time limit', async () => {
    const dir = asFast((t) => {
      // Exponential by overlapping alternatives, not by nested repetition: not refused at load.
      t.pre_tokenizer = { type: 'Split', pattern: { Regex: '(?:a|a)*!' }, behavior: 'Isolated', invert: false };
    });
    const started = Date.now();
    await assert.rejects(countTokensInWorker(dir, `${'a'.repeat(64)}`, '', { timeoutMs: 1500 }), (e: unknown) => e instanceof LoadError && /took longer than 1\.5 s/.test(e.message));
    assert.ok(Date.now() - started < 60_000);
  });

  it('an added token id of 1e9 is refused at once, naming the file and field', async () => {
    const dir = modelWith('tokenizer.json', (t) => {
      (t.added_tokens as { id: number }[]).push({ id: 1e9, content: '<huge>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true } as never);
    });
    await refused('text.count', { modelDir: dir, documentText: 'hello', promptText: '' }, /tokenizer\.json/, /added_tokens\[3\]\.id.*1000000000/);
  });

  it('a tokenizer with more ids than the model\'s vocabulary is refused before any prefill', async () => {
    const dir = modelWith('tokenizer.json', (t) => {
      (t.added_tokens as unknown[]).push({ id: 32000, content: '<extra>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
    });
    await refused('text.count', { modelDir: dir, documentText: 'hello', promptText: '' }, /tokenizer\.json/, /32001 token ids.*vocabulary of 32000/);
    const session = new EngineSession('cpu');
    const cache = new CacheManager({ budgetBytes: 1 << 30 });
    try {
      await assert.rejects(runComparison(session, cache, tinyRequest({ modelDir: dir })), (e: unknown) => e instanceof LoadError && /32001 token ids/.test(e.message));
    } finally {
      cache.dispose();
      session.dispose();
    }
  });
});

describe('config.json sizes and values (rows 3 and 9)', { timeout: 120_000 }, () => {
  for (const layers of [1e6, 1e8, 2 ** 31]) {
    it(`num_hidden_layers ${layers} is refused at once from the config, naming the field`, async () => {
      await refused('model.inspect', { dir: modelWith('config.json', (c) => ({ ...c, num_hidden_layers: layers })) }, /config\.json/, /num_hidden_layers/);
    });
  }
  it('a layer count within bounds but beyond the weights is checked against the headers first', async () => {
    const dir = modelWith('config.json', (c) => ({ ...c, num_hidden_layers: 900 }));
    await refused('model.inspect', { dir }, /config\.json/, /"num_hidden_layers" is 900, but the weights hold layers 0 to 3 only/);
    await assert.rejects(openCheckpoint(dir), (e: unknown) => e instanceof LoadError && e.field === 'num_hidden_layers');
  });
  const values: [string, unknown][] = [
    ['max_position_embeddings', 2 ** 40],
    ['rms_norm_eps', 1e39],
    ['vocab_size', 2 ** 40],
    ['hidden_size', 1e9],
    ['num_attention_heads', 1e7],
  ];
  for (const [field, value] of values) {
    it(`${field} ${value} is refused naming the field`, async () => {
      await refused('model.inspect', { dir: modelWith('config.json', (c) => ({ ...c, [field]: value })) }, /config\.json/, new RegExp(field));
    });
  }
  it('rope_theta 1e300 in rope_parameters is refused naming the field', async () => {
    await refused('model.inspect', { dir: modelWith('config.json', (c) => ({ ...c, rope_parameters: { rope_type: 'default', rope_theta: 1e300 } })) }, /config\.json/, /rope_parameters\.rope_theta/);
  });
});

describe('adapter_config.json values (row 9)', { timeout: 120_000 }, () => {
  it('lora_alpha 1e308 is refused naming the field', async () => {
    await refused('adapter.inspect', { modelDir: MODEL_DIR, dir: adapterWith((c) => ({ ...c, lora_alpha: 1e308 })) }, /adapter_config\.json/, /lora_alpha/);
  });
  it('an alpha_pattern value of 1e308 and an r of 2^31 are refused naming the field', async () => {
    await refused('adapter.inspect', { modelDir: MODEL_DIR, dir: adapterWith((c) => ({ ...c, alpha_pattern: { v_proj: 1e308 } })) }, /adapter_config\.json/, /alpha_pattern/);
    await refused('adapter.inspect', { modelDir: MODEL_DIR, dir: adapterWith((c) => ({ ...c, r: 2 ** 31 })) }, /adapter_config\.json/, /"r"/);
  });
});

describe('deeply nested JSON in any file (row 9)', { timeout: 120_000 }, () => {
  const depth = 200_000;
  it('config.json', async () => {
    await refused('model.inspect', { dir: modelWith('config.json', (c) => JSON.stringify({ ...c, extra: 0 }).replace('"extra":0', `"extra":${deep(depth)}`)) }, /config\.json/, /nests arrays\/objects more than 64 levels/);
  });
  it('model.safetensors.index.json', async () => {
    await refused('model.inspect', { dir: modelWith('model.safetensors.index.json', (c) => JSON.stringify(c).replace('"metadata":', `"x":${deep(depth)},"metadata":`)) }, /index\.json/, /nests/);
  });
  it('adapter_config.json', async () => {
    await refused('adapter.inspect', { modelDir: MODEL_DIR, dir: adapterWith((c) => JSON.stringify(c).replace('"r":', `"deep":${deep(depth)},"r":`)) }, /adapter_config\.json/, /nests/);
  });
  it('tokenizer.json and tokenizer_config.json', async () => {
    await refused('text.count', { modelDir: modelWith('tokenizer.json', (t) => JSON.stringify(t).replace('"version":', `"deep":${deep(depth)},"version":`)), documentText: 'x', promptText: '' }, /tokenizer\.json/, /nests/);
    await refused('text.count', { modelDir: modelWith('tokenizer_config.json', (t) => JSON.stringify(t).replace('"add_bos_token":', `"deep":${deep(depth)},"add_bos_token":`)), documentText: 'x', promptText: '' }, /tokenizer_config\.json/, /nests/);
  });
  it('a safetensors header', async () => {
    const dir = path.join(root, `st${n++}`);
    fs.mkdirSync(dir);
    for (const name of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(MODEL_DIR, name), path.join(dir, name));
    const header = Buffer.from(`{"deep":${deep(depth)}}`);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    fs.writeFileSync(path.join(dir, 'model.safetensors'), Buffer.concat([len, header]));
    await refused('model.inspect', { dir }, /model\.safetensors/, /nests/);
  });
});

describe('missing and special files (row 9)', { timeout: 120_000 }, () => {
  it('a missing model folder is reported by the loader, naming the folder, not a raw ENOENT from hashing', async () => {
    const missing = path.join(root, 'no-such-model');
    const session = new EngineSession('cpu');
    try {
      await assert.rejects(session.loadModel(missing), (e: unknown) => e instanceof LoadError && e.file === missing && /this folder does not exist/.test(e.message));
      const m = await session.loadModel(MODEL_DIR);
      await assert.rejects(session.loadAdapter(m, path.join(root, 'no-such-adapter')), (e: unknown) => e instanceof LoadError && /this folder does not exist; pick a PEFT adapter folder/.test(e.message));
    } finally {
      session.dispose();
    }
    await refused('model.inspect', { dir: missing }, /no-such-model/, /does not exist/);
  });
  it('config.json that is a FIFO or a link to /dev/zero is refused without blocking or reading forever', async () => {
    const fifo = modelWith('generation_config.json', () => undefined);
    fs.rmSync(path.join(fifo, 'config.json'));
    fs.symlinkSync('/dev/zero', path.join(fifo, 'config.json'));
    await refused('model.inspect', { dir: fifo }, /config\.json/, /this folder has no config\.json|not a regular file/);
  });
});
