// AppService through dispatch(), in process: the inspectors, folder browsing, the
// transport-only methods, history and export, and how a run that cannot start ends.
// (A real run with its events is in server.test.ts, over the WebSocket.)
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { dispatch } from '../../main/rpc/dispatch.js';
import { AppService } from '../../main/rpc/service.js';
import { loadTokenizer } from '../../main/model/tokenizer.js';
import { REPORT_SCHEMA, type Report } from '../../shared/report.js';
import type { AdapterInfo, AppInfo, ExportedFile, FolderListing, HistoryEntry, ModelInfo, RpcErrorCode, RpcEventName, RunEstimate, SetupDraft, TokenCount } from '../../shared/rpc.js';
import os from 'node:os';
import { findChromium, renderReport } from '../../main/report/index.js';
import { ADAPTERS_DIR, asJson, MODEL_DIR, OTHER_MODEL_ADAPTER, sampleReport, tempDir, tinyRequest } from './helpers.js';
import { demoStatus } from '../../main/compare/demo.js';
import { holdTasks, watchTasks } from '../unit/worker-spy.js';
import { ALL_STRATEGIES } from '../../shared/strategies.js';

const FIXTURE_REPORT = path.join(import.meta.dirname, '..', 'fixtures', 'reports', 'demo-llama-gqa-bf16.json');
const historyDir = path.join(tempDir('service'), 'history');
const service = new AppService({ transport: 'websocket', historyDir, cacheBudgetBytes: 1 << 30, throttleMs: 10 });
const events: { event: RpcEventName; payload: unknown }[] = [];
service.onEvent((event, payload) => events.push({ event, payload }));
after(() => service.dispose());

async function ok<T>(method: string, params: unknown): Promise<T> {
  const answer = await dispatch(service.handlers, method, params);
  if (!answer.ok) assert.fail(`${method} failed: ${answer.error.code} ${answer.error.message}`);
  return answer.result as T;
}

async function fails(method: string, params: unknown, code: RpcErrorCode, message?: RegExp): Promise<void> {
  const answer = await dispatch(service.handlers, method, params);
  assert.equal(answer.ok, false, `${method} should fail`);
  if (!answer.ok) {
    assert.equal(answer.error.code, code, answer.error.message);
    if (message) assert.match(answer.error.message, message);
  }
}

function waitForEvent(name: RpcEventName): Promise<unknown> {
  return new Promise((resolve) => {
    const off = service.onEvent((event, payload) => {
      if (event === name) {
        off();
        resolve(payload);
      }
    });
  });
}

function fakeReport(): Report {
  return sampleReport();
}

describe('AppService', () => {
  it('app.info describes the engine, the transport and the demo', async () => {
    const info = await ok<AppInfo>('app.info', {});
    assert.equal(info.transport, 'websocket');
    assert.equal(info.backend.kind, 'cpu');
    assert.ok(info.backend.device.length > 0);
    // PDF in serve mode exactly when headless Chromium is installed.
    assert.deepEqual(info.capabilities, { nativeDialogs: false, pdf: findChromium() !== null });
    assert.equal(info.historyDir, historyDir);
    assert.equal(info.cacheBudgetBytes, 1 << 30);
    // The demo is offered exactly when models/demo holds its model (trained on a GPU and
    // committed); otherwise app.info says which file is missing.
    if ((await demoStatus()).available) {
      assert.ok(info.demo);
      assert.equal(info.demoUnavailable, null);
      assert.ok(fs.existsSync(path.join(info.demo.modelDir, 'config.json')));
      assert.equal(info.demo.adapterDirs.length, 3);
      assert.deepEqual(info.demo.strategies, [...ALL_STRATEGIES]);
      assert.ok(info.demo.documentText.length > 1000);
    } else {
      assert.equal(info.demo, null);
      assert.match(info.demoUnavailable ?? '', /models\/demo\/base\/.* missing; the demo model is trained on a GPU by models\/demo\/train/);
    }
  });

  it('model.inspect reads the checkpoint without loading it; a non-model folder is INVALID_INPUT', async () => {
    const m = await ok<ModelInfo>('model.inspect', { dir: MODEL_DIR });
    assert.equal(m.name, 'llama-gqa-bf16');
    assert.equal(m.architecture, 'LlamaForCausalLM');
    assert.deepEqual([m.numLayers, m.numHeads, m.numKvHeads, m.headDim, m.hiddenSize, m.vocabSize], [4, 4, 2, 16, 64, 32000]);
    assert.equal(m.format, 'sharded');
    assert.equal(m.storedDtype, 'BF16');
    assert.equal(m.hasTokenizer, true);
    assert.ok(m.weightsBytes > 0 && m.parameters > 0);
    await fails('model.inspect', { dir: ADAPTERS_DIR }, 'INVALID_INPUT', /no config\.json/);
    await fails('model.inspect', { dir: '/no/such/folder' }, 'INVALID_INPUT', /does not exist/);
  });

  it('adapter.inspect validates against the model', async () => {
    const a = await ok<AdapterInfo>('adapter.inspect', { modelDir: MODEL_DIR, dir: path.join(ADAPTERS_DIR, 'qv-r8') });
    assert.equal(a.name, 'qv-r8');
    assert.equal(a.rank, 8);
    assert.deepEqual(a.targetModules, ['q_proj', 'v_proj']);
    assert.deepEqual(a.layers, [0, 1, 2, 3]);
    assert.equal(a.useRslora, false);
    const other = fs.readdirSync(OTHER_MODEL_ADAPTER)[0]!;
    await fails('adapter.inspect', { modelDir: MODEL_DIR, dir: path.join(OTHER_MODEL_ADAPTER, other) }, 'INVALID_INPUT');
  });

  it('text.count counts as the runner tokenizes (document with BOS, prompt without)', async () => {
    const tok = await loadTokenizer(MODEL_DIR);
    const documentText = 'Hello world, this is a document.';
    const c = await ok<TokenCount>('text.count', { modelDir: MODEL_DIR, documentText, promptText: ' Summary:' });
    assert.deepEqual(c, { documentTokens: tok.encodeDocument(documentText).length, promptTokens: tok.encodePrompt(' Summary:').length, contextLimit: 2048, complete: true });
    assert.equal(c.documentTokens, tok.encodePrompt(documentText).length + 1);
  });

  it('text.count with a limit stops counting there and says so; under the limit it is exact', async () => {
    const tok = await loadTokenizer(MODEL_DIR);
    const documentText = fs.readFileSync(path.join(import.meta.dirname, '..', 'fixtures', 'documents', 'hku-intro.txt'), 'utf8');
    const exact = await ok<TokenCount>('text.count', { modelDir: MODEL_DIR, documentText, promptText: ' It is', limit: 100_000 });
    assert.equal(exact.complete, true);
    assert.equal(exact.documentTokens, tok.encodeDocument(documentText).length);
    assert.equal(exact.promptTokens, tok.encodePrompt(' It is').length);
    // A ~4 MB paste against a limit of 2100: a lower bound at or past the limit (from the
    // text's length: the paste is not tokenized), not the whole count.
    const huge = documentText.repeat(Math.ceil(4e6 / documentText.length));
    const limited = await ok<TokenCount>('text.count', { modelDir: MODEL_DIR, documentText: huge, promptText: ' It is', limit: 2100 });
    assert.equal(limited.complete, false);
    assert.ok(limited.documentTokens >= 2100, String(limited.documentTokens));
    // The count reached is a true lower bound (checked on a text small enough to count whole).
    const medium = documentText.repeat(40);
    const mediumLimited = await ok<TokenCount>('text.count', { modelDir: MODEL_DIR, documentText: medium, promptText: '', limit: 2100 });
    // Its length bound is under the limit, so it is tokenized: then the count is exact (and past the limit).
    const mediumTokens = tok.encodeDocument(medium).length;
    if (mediumLimited.complete) assert.equal(mediumLimited.documentTokens, mediumTokens);
    else assert.ok(mediumLimited.documentTokens >= 2100 && mediumLimited.documentTokens <= mediumTokens);
    assert.ok(mediumTokens > 2100);
  });

  it('text.decode turns groups of ids back into text with the tokenizer', async () => {
    const tok = await loadTokenizer(MODEL_DIR);
    const ids = tok.encodePrompt(' Hong Kong University');
    const { texts } = await ok<{ texts: string[] }>('text.decode', { tokenizerDir: MODEL_DIR, groups: [ids, ids.slice(0, 1), []] });
    assert.deepEqual(texts, [tok.decode(ids), tok.decode(ids.slice(0, 1)), '']);
    await fails('text.decode', { tokenizerDir: MODEL_DIR, groups: [Array.from({ length: 70_000 }, () => 1)] }, 'BAD_REQUEST', /at most 65536/);
  });

  it('app.info says what the engine can compute, and relative and ~ paths resolve against the working folder and home', async () => {
    const info = await ok<AppInfo>('app.info', {});
    assert.equal(info.engine.backend, 'cpu');
    assert.deepEqual(info.engine.dtypes.map((d) => [d.id, d.available]), [['fp32', true], ['bf16', false], ['fp16', false]]);
    assert.match(info.engine.dtypes[1]!.reason ?? '', /fp32 only/);
    assert.deepEqual(info.engine.devices.map((d) => [d.id, d.available]), [['auto', true], ['cpu', true], ['cuda', false]]);
    assert.equal(info.workingDir, process.cwd());
    const relative = path.relative(process.cwd(), MODEL_DIR);
    assert.equal((await ok<ModelInfo>('model.inspect', { dir: relative })).dir, MODEL_DIR);
    assert.equal((await ok<FolderListing>('fs.browse', { dir: '~' })).dir, os.homedir());
  });

  it('run.estimate is the estimate run.start checks: the same figure, and the same refusal when it does not fit', async () => {
    const tok = await loadTokenizer(MODEL_DIR);
    const request = tinyRequest({ strategies: ['exact', 'base', 'seed-minikv', 'delta-int8'] });
    const params = {
      modelDir: MODEL_DIR,
      adapterDirs: request.adapters.map((a) => a.dir),
      strategies: request.strategies,
      documentTokens: tok.encodeDocument(request.documentText).length,
      promptTokens: tok.encodePrompt(request.promptText).length,
      maxNewTokens: request.maxNewTokens,
      dtype: 'fp32' as const,
    };
    const roomy = await ok<RunEstimate>('run.estimate', params);
    assert.equal(roomy.fits, true);
    assert.equal(roomy.message, null);
    assert.equal(roomy.budgetBytes, 1 << 30);
    assert.ok(roomy.cacheBytes > 0 && roomy.totalBytes > roomy.cacheBytes);
    assert.equal(roomy.items.filter((i) => i.inCacheBudget).reduce((n, i) => n + i.bytes, 0), roomy.cacheBytes);
    // A budget just under the estimate: the estimate says no, and so does the runner, in the same words.
    const tight = new AppService({ transport: 'websocket', historyDir: path.join(tempDir('tight'), 'history'), cacheBudgetBytes: roomy.cacheBytes - 1, throttleMs: 10 });
    try {
      const answer = await dispatch(tight.handlers, 'run.estimate', params);
      assert.ok(answer.ok);
      const refused = answer.result as RunEstimate;
      assert.equal(refused.fits, false);
      assert.match(refused.message ?? '', /needs about .* but the cache budget is/);
      const failed = new Promise<{ error: { message: string } }>((resolve) => tight.onEvent((e, p) => e === 'run.failed' && resolve(p as { error: { message: string } })));
      const started = await dispatch(tight.handlers, 'run.start', { request });
      assert.ok(started.ok);
      assert.equal((await failed).error.message, refused.message);
    } finally {
      await tight.dispose();
    }
  });

  it('draft.save keeps the setup draft in a file that a restarted service reads back', async () => {
    const dir = tempDir('draft');
    const draft: SetupDraft = {
      modelDir: MODEL_DIR,
      tokenizerDir: '',
      adapters: [{ dir: path.join(ADAPTERS_DIR, 'qv-r8'), name: 'qv' }],
      documentText: 'A document € with Unicode.',
      promptText: ' Summary:',
      strategies: { simple: ['exact', 'base'], lowrank: { on: true, ranks: '8, 16' }, hybrid: { on: false, layers: '2' } },
      settings: { maxNewTokens: null, sampling: 'greedy', temperature: 0.7, topP: 0.95, seed: 0, dtype: 'fp32', device: 'auto', stopAtEos: true },
      openReportId: '20261128T160000123Z-1a2b3c4d',
      browseDirs: { adapter: ADAPTERS_DIR },
    };
    const first = new AppService({ transport: 'websocket', historyDir: path.join(dir, 'history'), cacheBudgetBytes: 1 << 20 });
    try {
      assert.deepEqual(await dispatch(first.handlers, 'draft.get', {}), { ok: true, result: null });
      // Saves in quick succession: the last one wins and the file is always one whole draft.
      await Promise.all([1, 2, 3].map((n) => dispatch(first.handlers, 'draft.save', { draft: { ...draft, promptText: `#${n}` } })));
      assert.deepEqual(await dispatch(first.handlers, 'draft.save', { draft }), { ok: true, result: { saved: true } });
    } finally {
      await first.dispose();
    }
    assert.ok(fs.existsSync(path.join(dir, 'draft.json')));
    const restarted = new AppService({ transport: 'websocket', historyDir: path.join(dir, 'history'), cacheBudgetBytes: 1 << 20 });
    try {
      assert.deepEqual(await dispatch(restarted.handlers, 'draft.get', {}), { ok: true, result: draft });
      const bad = await dispatch(restarted.handlers, 'draft.save', { draft: { ...draft, openReportId: '../../etc/passwd' } });
      assert.ok(!bad.ok && bad.error.code === 'BAD_REQUEST');
      fs.writeFileSync(path.join(dir, 'draft.json'), '{ torn');
      assert.deepEqual(await dispatch(restarted.handlers, 'draft.get', {}), { ok: true, result: null }, 'a torn file is no draft, not an error');
    } finally {
      await restarted.dispose();
    }
  });

  it('an inspected model or adapter folder starts hashing in the background; its digests land in the data folder', async () => {
    const dir = tempDir('inspect-hash');
    const copy = (from: string, name: string): string => {
      const to = path.join(dir, name);
      fs.mkdirSync(to);
      for (const f of fs.readdirSync(from)) fs.copyFileSync(path.join(from, f), path.join(to, f));
      return to;
    };
    const model = copy(MODEL_DIR, 'model');
    const adapter = copy(path.join(ADAPTERS_DIR, 'qv-r8'), 'adapter');
    const dataDir = path.join(dir, 'data');
    const watch = watchTasks<{ file: string }>('hash-file');
    const svc = new AppService({ transport: 'websocket', historyDir: path.join(dir, 'history'), cacheBudgetBytes: 1 << 30, dataDir });
    try {
      await dispatch(svc.handlers, 'model.inspect', { dir: model });
      await dispatch(svc.handlers, 'adapter.inspect', { modelDir: model, dir: adapter });
      const weights = [model, adapter].flatMap((d) => fs.readdirSync(d).filter((n) => n.endsWith('.safetensors')).map((n) => path.join(d, n)));
      // No run asked for them: the digests settle on their own and are kept for the run (and the next start).
      const file = path.join(dataDir, 'digests.json');
      for (let i = 0; i < 200 && !(fs.existsSync(file) && weights.every((f) => fs.readFileSync(file, 'utf8').includes(JSON.stringify(f)))); i++) await new Promise((r) => setTimeout(r, 50));
      for (const f of weights) assert.ok(watch.inputs.some((i) => i.file === f), `${path.basename(f)} was hashed`);
      const kept = JSON.parse(fs.readFileSync(file, 'utf8')) as { entries: Record<string, unknown> };
      for (const f of weights) assert.ok(kept.entries[f], `${path.basename(f)}'s digest kept`);
      const failed = await dispatch(svc.handlers, 'model.inspect', { dir: path.join(dir, 'nothing') });
      assert.equal(failed.ok, false, 'a folder that does not inspect is not hashed');
      assert.ok(!watch.inputs.some((i) => i.file.startsWith(path.join(dir, 'nothing'))));
    } finally {
      watch.restore();
      await svc.dispose();
    }
  });

  it('a model folder replaced by another before any run stops being hashed; the one in use goes on', async () => {
    const dir = tempDir('inspect-replace');
    const copy = (name: string): string => {
      const to = path.join(dir, name);
      fs.mkdirSync(to);
      for (const f of fs.readdirSync(MODEL_DIR)) fs.copyFileSync(path.join(MODEL_DIR, f), path.join(to, f));
      return to;
    };
    const [first, second] = [copy('first'), copy('second')];
    const dataDir = path.join(dir, 'data');
    const gate = holdTasks<{ file: string }>('hash-file');
    const svc = new AppService({ transport: 'websocket', historyDir: path.join(dir, 'history'), cacheBudgetBytes: 1 << 30, dataDir });
    try {
      await dispatch(svc.handlers, 'model.inspect', { dir: first });
      await dispatch(svc.handlers, 'model.inspect', { dir: second });
      gate.open();
      const file = path.join(dataDir, 'digests.json');
      const kept = (): string => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '');
      const weights = (d: string): string[] => fs.readdirSync(d).filter((n) => n.endsWith('.safetensors')).map((n) => path.join(d, n));
      for (let i = 0; i < 200 && !weights(second).every((f) => kept().includes(JSON.stringify(f))); i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(weights(second).every((f) => kept().includes(JSON.stringify(f))), 'the model in use is hashed');
      assert.ok(weights(first).every((f) => !kept().includes(JSON.stringify(f))), 'the replaced one was stopped');
      assert.ok(gate.inputs.some((i) => i.file.startsWith(first + path.sep)), 'it had been started');
    } finally {
      gate.restore();
      await svc.dispose();
    }
  });

  it('fs.browse lists sub-folders marked model / adapter / folder', async () => {
    const models = await ok<FolderListing>('fs.browse', { dir: path.dirname(MODEL_DIR) });
    assert.equal(models.parent, path.dirname(path.dirname(MODEL_DIR)));
    assert.deepEqual(models.entries.find((e) => e.name === 'llama-gqa-bf16'), { name: 'llama-gqa-bf16', path: MODEL_DIR, kind: 'model' });
    const adapters = await ok<FolderListing>('fs.browse', { dir: ADAPTERS_DIR });
    assert.ok(adapters.entries.length >= 3 && adapters.entries.every((e) => e.kind === 'adapter'));
    const root = await ok<FolderListing>('fs.browse', { dir: '/' });
    assert.equal(root.parent, null);
    await fails('fs.browse', { dir: '/no/such/folder' }, 'NOT_FOUND');
  });

  it('native dialogs and save-as are NOT_SUPPORTED without platform hooks, and used with them', async () => {
    await fails('dialog.pickFolders', { purpose: 'model', multiple: false }, 'NOT_SUPPORTED');
    const { id } = await service.history.save(fakeReport());
    await fails('report.saveAs', { id, format: 'json' }, 'NOT_SUPPORTED');
    const saved: ExportedFile[] = [];
    const withHooks = new AppService({
      transport: 'electron',
      historyDir,
      cacheBudgetBytes: 1 << 20,
      platform: {
        pickFolders: async (purpose, multiple) => [`/picked/${purpose}/${multiple}`],
        saveFile: async (file) => {
          saved.push(file);
          return `/saved/${file.fileName}`;
        },
      },
    });
    try {
      const picked = await dispatch(withHooks.handlers, 'dialog.pickFolders', { purpose: 'adapter', multiple: true });
      assert.deepEqual(picked, { ok: true, result: { paths: ['/picked/adapter/true'] } });
      const answer = await dispatch(withHooks.handlers, 'report.saveAs', { id, format: 'json' });
      assert.deepEqual(answer, { ok: true, result: { path: '/saved/adapterlens-2026-02-03T04-05-06.json' } });
      assert.deepEqual(JSON.parse(saved[0]!.content), asJson(fakeReport()));
    } finally {
      await withHooks.dispose();
    }
  });

  it('history: list, get, export as JSON, delete (with history.changed)', async () => {
    const { id } = await service.history.save(fakeReport());
    const list = await ok<HistoryEntry[]>('history.list', {});
    assert.ok(list.some((e) => e.id === id));
    assert.deepEqual(await ok<Report>('history.get', { id }), fakeReport());
    const file = await ok<ExportedFile>('report.export', { id, format: 'json' });
    assert.equal(file.mimeType, 'application/json');
    assert.equal(file.encoding, 'utf8');
    assert.deepEqual(JSON.parse(file.content), asJson(fakeReport()));
    const changed = waitForEvent('history.changed');
    assert.deepEqual(await ok('history.delete', { id }), { deleted: true });
    const payload = (await changed) as { entries: HistoryEntry[] };
    assert.ok(!payload.entries.some((e) => e.id === id));
    await fails('history.get', { id }, 'NOT_FOUND');
    assert.deepEqual(await ok('history.delete', { id }), { deleted: false });
  });

  it('exports a real saved run as HTML, Markdown, CSV and PDF through the report module', async () => {
    const fixture = JSON.parse(fs.readFileSync(FIXTURE_REPORT, 'utf8')) as Report;
    const { id } = await service.history.save(fixture);
    const html = await ok<ExportedFile>('report.export', { id, format: 'html' });
    assert.equal(html.encoding, 'utf8');
    assert.match(html.mimeType, /^text\/html/);
    assert.match(html.fileName, /\.html$/);
    // Byte-identical to what the CLI's `adapterlens report --html` renders from the same JSON.
    assert.equal(html.content, await renderReport(fixture, 'html'));
    assert.ok((html.content.match(/<svg/g) ?? []).length > 0, 'the HTML has its charts');
    const md = await ok<ExportedFile>('report.export', { id, format: 'md' });
    assert.equal(md.content, await renderReport(fixture, 'md'));
    const csv = await ok<ExportedFile>('report.export', { id, format: 'csv' });
    assert.equal(csv.content.trim().split('\n').length - 1, fixture.adapters.reduce((n, a) => n + a.strategies.length * fixture.model.numLayers, 0));
    // PDF through an injected printer (what Electron's printToPDF plugs into).
    const printed: string[] = [];
    const withPrinter = new AppService({
      transport: 'electron',
      historyDir,
      cacheBudgetBytes: 1 << 20,
      platform: { printPdf: async (h) => (printed.push(h), new TextEncoder().encode('%PDF-1.7 test')) },
    });
    try {
      const info = await dispatch(withPrinter.handlers, 'app.info', {});
      assert.ok(info.ok && (info.result as AppInfo).capabilities.pdf);
      const pdf = await dispatch(withPrinter.handlers, 'report.export', { id, format: 'pdf' });
      assert.ok(pdf.ok);
      const file = pdf.result as ExportedFile;
      assert.equal(file.encoding, 'base64');
      assert.equal(Buffer.from(file.content, 'base64').toString(), '%PDF-1.7 test');
      assert.equal(printed[0], html.content);
    } finally {
      await withPrinter.dispose();
    }
  });

  it('a run whose input is unusable ends with run.failed INVALID_INPUT and frees the slot', async () => {
    const failed = waitForEvent('run.failed');
    const { runId } = await ok<{ runId: string }>('run.start', { request: tinyRequest({ adapters: [{ dir: '/no/such/adapter' }] }) });
    const payload = (await failed) as { runId: string; error: { code: string; message: string } };
    assert.equal(payload.runId, runId);
    assert.equal(payload.error.code, 'INVALID_INPUT');
    assert.match(payload.error.message, /\/no\/such\/adapter/);
    assert.equal(await ok('run.active', {}), null);
    assert.deepEqual(await ok('run.cancel', { runId }), { cancelled: false });
  });

  it('a request for a device this engine does not have is refused at once', async () => {
    await fails('run.start', { request: tinyRequest({ device: 'cuda' }) }, 'INVALID_INPUT', /CPU/);
    assert.equal(await ok('run.active', {}), null);
  });

  it('refuses at once, in plain words, what the form checks too: model folder, dtype, strategy parameters, names', async () => {
    await fails('run.start', { request: tinyRequest({ modelDir: '/no/such/model' }) }, 'INVALID_INPUT', /\/no\/such\/model: this folder does not exist/);
    await fails('run.start', { request: tinyRequest({ dtype: 'bf16' }) }, 'INVALID_INPUT', /^compute dtype bf16: the CPU engine computes in fp32 only; bf16 and fp16 need the CUDA engine on a GPU$/);
    await fails('run.start', { request: tinyRequest({ strategies: ['exact', 'hybrid:99'] }) }, 'INVALID_INPUT', /^hybrid:99 keeps 99 layers exact, but the model has only 4 layers: use at most hybrid:4\.$/);
    await fails('run.start', { request: tinyRequest({ strategies: ['exact', 'lowrank:1000'] }) }, 'INVALID_INPUT', /^lowrank:1000 asks for rank 1000, but a layer's K and V are 32 wide \(2 KV heads × 16\), so the rank can be at most 32/);
    // Past the schema's own bound: still words, not a path.
    await fails('run.start', { request: tinyRequest({ strategies: ['exact', 'lowrank:100000'] }) }, 'BAD_REQUEST', /^Strategy 2: strategy "lowrank:100000": the rank can be at most 65536$/);
    const twice = tinyRequest({ adapters: [{ dir: path.join(ADAPTERS_DIR, 'qv-r8') }, { dir: path.join(ADAPTERS_DIR, 'all-linear-rslora'), name: 'qv-r8' }] });
    await fails('run.start', { request: twice }, 'INVALID_INPUT', /two adapters are named "qv-r8": rename one of them in the adapter list/);
    for (const bad of [tinyRequest({ dtype: 'bf16' }), twice]) {
      const answer = await dispatch(service.handlers, 'run.start', { request: bad });
      assert.ok(!answer.ok && !/--|request\./.test(answer.error.message), 'no CLI flag, no schema path');
    }
    assert.equal(await ok('run.active', {}), null);
  });
});
