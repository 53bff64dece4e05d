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
import type { Report } from '../../shared/report.js';
import type { AdapterInfo, AppInfo, ExportedFile, FolderListing, HistoryEntry, ModelInfo, RpcErrorCode, RpcEventName, TokenCount } from '../../shared/rpc.js';
import { findChromium, renderReport } from '../../main/report/index.js';
import { ADAPTERS_DIR, asJson, MODEL_DIR, OTHER_MODEL_ADAPTER, sampleReport, tempDir, tinyRequest } from './helpers.js';

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
    assert.ok(info.demo, 'the fixtures are here, so the demo is offered');
    assert.ok(fs.existsSync(path.join(info.demo.modelDir, 'config.json')));
    assert.equal(info.demo.adapterDirs.length, 2);
    assert.ok(info.demo.documentText.length > 100);
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
    const { runId } = await ok<{ runId: string }>('run.start', { request: tinyRequest({ modelDir: '/no/such/model' }) });
    const payload = (await failed) as { runId: string; error: { code: string; message: string } };
    assert.equal(payload.runId, runId);
    assert.equal(payload.error.code, 'INVALID_INPUT');
    assert.match(payload.error.message, /\/no\/such\/model/);
    assert.equal(await ok('run.active', {}), null);
    assert.deepEqual(await ok('run.cancel', { runId }), { cancelled: false });
  });

  it('a request for a device this engine does not have is refused at once', async () => {
    await fails('run.start', { request: tinyRequest({ device: 'cuda' }) }, 'INVALID_INPUT', /CPU/);
    assert.equal(await ok('run.active', {}), null);
  });
});
