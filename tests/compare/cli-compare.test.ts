// `adapterlens compare` end to end, as a user runs it: the real CLI in a child process on
// the HF fixtures, its report checked against what transformers + PEFT computed.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../../main/paths.js';
import type { Report } from '../../shared/report.js';
import { adapterDir, modelDir, readManifest } from '../parity/hf-fixtures.js';

const run = promisify(execFile);
const cli = path.join(projectRoot, 'bin', 'adapterlens.mjs');
const manifest = readManifest();
const MODEL = 'llama-gqa-bf16';
const ADAPTERS = ['qv-r8', 'all-linear-rslora', 'patterns'];

describe('adapterlens compare on the fixtures', () => {
  let report: Report;
  let stderr: string;
  let stdout: string;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'adapterlens-cli-'));

  before(async () => {
    const doc = path.join(tmp, 'document.txt');
    fs.writeFileSync(doc, manifest.documentText);
    const out = path.join(tmp, 'report.json');
    const args = [
      cli, 'compare',
      '--model', modelDir(manifest, MODEL),
      ...ADAPTERS.flatMap((a) => ['--adapter', `${a}=${adapterDir(manifest, MODEL, a)}`]),
      '--document', doc,
      '--prompt', manifest.promptText,
      '--strategies', 'exact,base,seed-minikv,lragent,delta-int8,delta-int4,lowrank:4,hybrid:1',
      '--max-new-tokens', '12',
      '--no-stop-at-eos',
      '--json', out,
    ];
    ({ stdout, stderr } = await run(process.execPath, args, { maxBuffer: 1 << 24 }));
    report = JSON.parse(fs.readFileSync(out, 'utf8')) as Report;
  });

  it('shows progress on stderr and a table on stdout', () => {
    assert.match(stderr, /Base prefill/);
    assert.match(stderr, /Generating/);
    assert.match(stdout, /seed-minikv/);
  });

  it('tokenizes the document and prompt as transformers does', () => {
    const ref = manifest.cases.find((c) => c.model === MODEL)!;
    assert.deepEqual(report.documentTokens, ref.documentTokens);
    assert.deepEqual(report.promptTokens, ref.promptTokens);
  });

  it('reproduces HF per-layer errors and greedy tokens for every adapter', () => {
    for (const name of ADAPTERS) {
      const ref = manifest.cases.find((c) => c.model === MODEL && c.adapter === name)!;
      const a = report.adapters.find((x) => x.name === name)!;
      assert.ok(a, `adapter ${name} in report`);
      const exact = a.strategies.find((s) => s.strategy === 'exact')!;
      assert.deepEqual(exact.generation.tokens, ref.greedy.newTokens, `${name}: exact generation = HF greedy`);
      assert.equal(exact.generation.firstDivergence, null);
      for (const sid of ['base', 'seed-minikv', 'lragent'] as const) {
        const ours = a.strategies.find((s) => s.strategy === sid)!;
        for (const [l, r] of ref.strategies![sid].layers.entries()) {
          assert.ok(Math.abs(ours.layers[l]!.kRelErr - r.kRelErr) < 1e-3, `${name} ${sid} layer ${l} K`);
          assert.ok(Math.abs(ours.layers[l]!.vRelErr - r.vRelErr) < 1e-3, `${name} ${sid} layer ${l} V`);
        }
      }
    }
  });

  it('reports every field the issue names, consistently', () => {
    assert.equal(report.schema, 'adapterlens.report/1');
    assert.ok(Object.keys(report.model.sha256).some((f) => f.endsWith('.safetensors')));
    assert.ok(report.tokenizer.sha256['tokenizer.json']);
    assert.ok(report.timings.length >= 5);
    const cfg = report.model;
    const exactBytes = cfg.numLayers * 2 * cfg.numKvHeads * cfg.headDim * report.documentTokens.length * 4;
    for (const a of report.adapters) {
      assert.ok(a.sha256['adapter_model.safetensors']);
      assert.deepEqual(a.strategies.map((s) => s.strategy), ['exact', 'base', 'seed-minikv', 'lragent', 'delta-int8', 'delta-int4', 'lowrank:4', 'hybrid:1']);
      const by = Object.fromEntries(a.strategies.map((s) => [s.strategy, s]));
      assert.equal(by.exact!.bytes, exactBytes);
      assert.equal(by.base!.bytes, 0);
      assert.ok(by['delta-int4']!.bytes < by['delta-int8']!.bytes && by['delta-int8']!.bytes < exactBytes);
      assert.ok(by['hybrid:1']!.bytes > by['seed-minikv']!.bytes);
      for (const s of a.strategies) {
        assert.equal(s.layers.length, cfg.numLayers);
        assert.equal(s.heads.v.length, cfg.numLayers);
        assert.equal(s.heads.v[0]!.length, cfg.numKvHeads);
        assert.equal(s.generation.tokens.length, 12);
        assert.equal(s.scores.kl.length, 12);
        assert.equal(s.generation.pieces.length, 12);
      }
      // exact scored against itself: zero KL, full agreement.
      assert.ok(by.exact!.scores.meanKl < 1e-9);
      assert.equal(by.exact!.scores.top1Agreement, 1);
      // hybrid keeps its exact layers exactly.
      for (const l of by['hybrid:1']!.exactLayers!) assert.ok(by['hybrid:1']!.layers[l]!.vRelErr < 1e-6);
    }
  });
});

describe('adapterlens compare refuses bad input with a clear message', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'adapterlens-cli-bad-'));
  const doc = path.join(tmp, 'doc.txt');
  fs.writeFileSync(doc, 'A short document.');
  const base = ['compare', '--model', modelDir(manifest, MODEL), '--adapter', adapterDir(manifest, MODEL, 'qv-r8'), '--document', doc];

  async function fails(args: string[], pattern: RegExp, code = 1): Promise<void> {
    await assert.rejects(run(process.execPath, [cli, ...args]), (e: { code?: number; stderr?: string }) => {
      assert.equal(e.code, code, e.stderr);
      assert.match(e.stderr ?? '', pattern);
      return true;
    });
  }

  it('unknown strategy', () => fails([...base, '--strategies', 'exact,magic'], /unknown strategy "magic"/, 2));
  it('missing document file', () => fails(['compare', '--model', modelDir(manifest, MODEL), '--adapter', 'x', '--document', path.join(tmp, 'nope.txt')], /cannot read it/, 2));
  it('adapter folder that is not an adapter', () => fails([...base.slice(0, 3), '--adapter', tmp, '--document', doc], /adapter_config\.json/));
  it('a model that is not a checkpoint', () => fails(['compare', '--model', tmp, '--adapter', 'x', '--document', doc], /config\.json/));
  it('bf16 on the CPU engine', () => fails([...base, '--dtype', 'bf16'], /fp32 only/));
  it('--device cuda without a CUDA build', () => fails([...base, '--device', 'cuda'], /no CUDA build/));
  it('a document longer than the context', async () => {
    const long = path.join(tmp, 'long.txt');
    fs.writeFileSync(long, 'word '.repeat(3000));
    await fails([...base.slice(0, -1), long], /2048/);
  });
  it('a budget too small for the run', () => fails([...base, '--budget-gib', '0.000001'], /budget/));
});
