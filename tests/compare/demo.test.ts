// The embedded demo (models/demo): `--strategies all`, what the demo asks for and when it is
// offered, that its bundled documents really are held out from everything the demo model was
// trained on, and `adapterlens demo` as a user runs it (the real demo when the trained model
// is in the checkout, else the message saying what is missing).
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../../main/paths.js';
import { DEMO_ADAPTERS, DEMO_MAX_NEW_TOKENS, DemoUnavailableError, demoRequest, demoStatus } from '../../main/compare/demo.js';
import { demoDocumentsDir, readDemoDocuments } from '../../main/compare/demo-documents.js';
import { defaultTokenizerDir, loadTokenizer } from '../../main/model/tokenizer.js';
import { ALL_STRATEGIES, parseStrategy, parseStrategyList } from '../../shared/strategies.js';
import type { Report } from '../../shared/report.js';
import { GENRES, SPLITS, documentsOf, loadCorpus, splitOf } from '../../models/demo/train/corpus.js';

const run = promisify(execFile);
const cli = path.join(projectRoot, 'bin', 'adapterlens.mjs');
const fixtures = path.join(projectRoot, 'tests', 'fixtures');

describe('--strategies all', () => {
  it('is every strategy once, parameterised ones with their defaults, exact first', () => {
    assert.deepEqual(parseStrategyList('all'), [...ALL_STRATEGIES]);
    assert.deepEqual(ALL_STRATEGIES, ['exact', 'base', 'seed-minikv', 'lragent', 'delta-int8', 'delta-int4', 'lowrank:8', 'hybrid:2', 'pca:2']);
    const kinds = new Set(ALL_STRATEGIES.map((s) => parseStrategy(s).kind));
    assert.equal(kinds.size, ALL_STRATEGIES.length, 'one of each kind');
  });

  it('combines with other ids without duplicates', () => {
    assert.deepEqual(parseStrategyList('lowrank:16, all'), ['exact', 'lowrank:16', ...ALL_STRATEGIES.slice(1)]);
    assert.deepEqual(parseStrategyList('all,seed-minikv,lowrank:8'), [...ALL_STRATEGIES]);
  });

  it('is a word of a list, not a strategy id', () => {
    assert.throws(() => parseStrategy('all'), /"all" is a word of a strategy list/);
  });
});

describe('the demo request and when it is offered', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'adapterlens-demo-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  /** A models/demo layout built from the fixture model and adapters and the shipped documents. */
  function fakeDemo(root: string): void {
    fs.cpSync(path.join(fixtures, 'models', 'llama-gqa-bf16'), path.join(root, 'base'), { recursive: true });
    const fixtureAdapters = ['all-linear-rslora', 'patterns', 'qv-r8'];
    DEMO_ADAPTERS.forEach((name, i) => {
      fs.cpSync(path.join(fixtures, 'adapters', 'llama-gqa-bf16', fixtureAdapters[i]!), path.join(root, 'adapters', name), { recursive: true });
    });
    fs.cpSync(demoDocumentsDir, path.join(root, 'documents'), { recursive: true });
  }

  it('asks for the three adapters, the first bundled document with its prompt, every strategy', async () => {
    const root = path.join(tmp, 'complete');
    fakeDemo(root);
    assert.deepEqual(await demoStatus(root), { available: true });
    const r = await demoRequest(root);
    const doc = (await readDemoDocuments())[0]!;
    assert.equal(r.modelDir, path.join(root, 'base'));
    assert.deepEqual(r.adapters, DEMO_ADAPTERS.map((name) => ({ name, dir: path.join(root, 'adapters', name) })));
    assert.deepEqual(r.strategies, [...ALL_STRATEGIES]);
    assert.equal(r.maxNewTokens, DEMO_MAX_NEW_TOKENS);
    assert.equal(r.documentText, fs.readFileSync(path.join(demoDocumentsDir, doc.file), 'utf8'));
    assert.equal(r.promptText, doc.prompt);
  });

  it('is unavailable, naming the missing file, when a weight file is absent', async () => {
    const root = path.join(tmp, 'no-weights');
    fakeDemo(root);
    fs.rmSync(path.join(root, 'adapters', DEMO_ADAPTERS[1], 'adapter_model.safetensors'));
    const s = await demoStatus(root);
    assert.equal(s.available, false);
    assert.ok(!s.available && s.reason.includes(path.join(root, 'adapters', DEMO_ADAPTERS[1], 'adapter_model.safetensors')), JSON.stringify(s));
    await assert.rejects(demoRequest(root), (e: unknown) => e instanceof DemoUnavailableError && /is missing; the demo model is trained/.test(e.message));
    fs.rmSync(path.join(root, 'base'), { recursive: true });
    const none = await demoStatus(root);
    assert.ok(!none.available && /model\.safetensors, .* and \d+ more are missing/.test(none.reason), JSON.stringify(none));
  });

  it('names the adapters train.py saves, each trained on its own genre', () => {
    const script = fs.readFileSync(path.join(projectRoot, 'models', 'demo', 'train', 'train.py'), 'utf8');
    const trained = [...script.matchAll(/dict\(name="([^"]+)", genre="([^"]+)"/g)].map((m) => ({ name: m[1]!, genre: m[2]! }));
    assert.deepEqual(trained.map((t) => t.name).sort(), [...DEMO_ADAPTERS].sort());
    assert.equal(new Set(trained.map((t) => t.genre)).size, 3);
    assert.ok(trained.every((t) => (GENRES as readonly string[]).includes(t.genre)));
  });
});

describe('the bundled documents', () => {
  it('are passages of held-out (test) documents that no train or validation document contains, with the counts stated', async () => {
    const corpus = loadCorpus();
    const tok = await loadTokenizer(defaultTokenizerDir());
    const entries = await readDemoDocuments();
    assert.ok(entries.length >= 3);
    const seen = new Set<string>();
    for (const e of entries) {
      const text = fs.readFileSync(path.join(demoDocumentsDir, e.file), 'utf8');
      const genre = e.genre as (typeof GENRES)[number];
      const index = corpus[genre].findIndex((d) => d.id === e.corpusDocument);
      assert.ok(index >= 0, `${e.corpusDocument} is a ${genre} document`);
      assert.equal(splitOf(index), 'test', `${e.file} comes from the test split`);
      const source = corpus[genre][index]!;
      assert.ok(source.text.startsWith(text), `${e.file} is the start of ${e.corpusDocument}`);
      assert.ok(source.text.slice(text.length).trimStart().startsWith(e.prompt.trim()), 'the prompt continues the passage');
      for (const g of GENRES) {
        for (const split of SPLITS.filter((s) => s !== 'test')) {
          for (const d of documentsOf(corpus, g, split)) assert.ok(!d.text.includes(text.slice(0, 400)), `${e.file} appears in ${d.id} (${split})`);
        }
      }
      assert.equal(tok.encodeDocument(text).length, e.tokens);
      assert.equal(tok.encodePrompt(e.prompt).length, e.promptTokens);
      assert.ok(e.tokens + e.promptTokens + DEMO_MAX_NEW_TOKENS <= 2048, 'fits the demo model context');
      seen.add(e.genre);
    }
    const demo = entries[0]!;
    assert.ok(demo.tokens >= 400 && demo.tokens <= 800, `the demo document has ${demo.tokens} tokens`);
    assert.equal(seen.size, 3, 'one document per adapter genre');
  });
});

describe('adapterlens demo', () => {
  it('compares the three demo adapters with every strategy, or says which file is missing', async () => {
    const status = await demoStatus();
    if (!status.available) {
      await assert.rejects(run(process.execPath, [cli, 'demo']), (e: { code: number; stderr: string }) => {
        assert.equal(e.code, 1);
        assert.match(e.stderr, /adapterlens: the demo model is not in this copy of AdapterLens: models\/demo\/base\/model\.safetensors/);
        assert.match(e.stderr, /trained on a GPU by models\/demo\/train/);
        return true;
      });
      return;
    }
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'adapterlens-demo-run-')), 'demo.json');
    const { stdout } = await run(process.execPath, [cli, 'demo', '--device', 'cpu', '--json', out], { maxBuffer: 1 << 24 });
    const report = JSON.parse(fs.readFileSync(out, 'utf8')) as Report;
    assert.deepEqual(report.adapters.map((a) => a.name), [...DEMO_ADAPTERS]);
    assert.deepEqual(report.settings.strategies, [...ALL_STRATEGIES]);
    // Readable English: the words of every adapter's exact continuation (the last one may be
    // cut) are words of the corpus, and it does not repeat one token. A random-weight model
    // fails both ("alignmentLOG skull VAR Century strings…", "forget forget forget…").
    const vocabulary = new Set<string>();
    for (const docs of Object.values(loadCorpus())) for (const d of docs) for (const w of d.text.toLowerCase().match(/[a-z]+/g) ?? []) vocabulary.add(w);
    for (const a of report.adapters) {
      const text = a.strategies.find((s) => s.strategy === 'exact')!.generation.text;
      const words = (text.match(/[A-Za-z]+/g) ?? []).slice(0, -1);
      const known = words.filter((w) => vocabulary.has(w.toLowerCase())).length;
      assert.ok(words.length >= 5 && known >= 0.85 * words.length, `${a.name}: ${known}/${words.length} corpus words in ${JSON.stringify(text)}`);
      assert.ok(new Set(words).size >= 0.5 * words.length, `${a.name} repeats itself: ${JSON.stringify(text)}`);
    }
    for (const s of ALL_STRATEGIES) assert.ok(stdout.includes(s), `summary table lists ${s}`);
  });
});
