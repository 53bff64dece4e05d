// `adapterlens verify`: the tolerance rule on its own, then the real CLI on a fresh
// report of the tiny fixture model — passing on an unchanged run, failing (hash
// mismatch and moved numbers) once an adapter's weights change.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../../main/paths.js';
import { DEFAULT_TOLERANCES, diffReports, moved } from '../../main/report/report-diff.js';
import { requestFromReport } from '../../main/report/verify.js';
import { parseTolerances } from '../../main/cli/verify-command.js';
import { cloneReport, fixtureReport } from './fixture-report.js';

const run = promisify(execFile);
const cli = path.join(projectRoot, 'bin', 'adapterlens.mjs');
const fixtures = path.join(projectRoot, 'tests', 'fixtures');

describe('report diff tolerances', () => {
  it('a report does not move against itself', async () => {
    const r = await fixtureReport();
    assert.deepEqual(diffReports(r, cloneReport(r)), []);
  });

  it('fp noise stays within tolerance; a real change is reported where it is', async () => {
    const r = await fixtureReport();
    const noisy = cloneReport(r);
    for (const a of noisy.adapters) for (const s of a.strategies) for (const l of s.layers) l.vRelErr *= 1 + 1e-6;
    assert.deepEqual(diffReports(r, noisy), []);

    const changed = cloneReport(r);
    const a = changed.adapters[1]!;
    const s = a.strategies.find((x) => x.strategy === 'seed-minikv')!;
    s.layers[2]!.vRelErr *= 1.01;
    s.heads.k[1]![0]! += 0.05;
    s.scores.meanKl += 0.1;
    const moves = diffReports(r, changed);
    assert.deepEqual(
      moves.map((m) => [m.adapter, m.strategy, m.layer, m.metric]),
      [
        [a.name, 'seed-minikv', 2, 'vRelErr'],
        [a.name, 'seed-minikv', 1, 'heads.k[head 0]'],
        [a.name, 'seed-minikv', null, 'scores.meanKl'],
      ],
    );
    assert.equal(moves[0]!.old, String(Number(r.adapters[1]!.strategies.find((x) => x.strategy === 'seed-minikv')!.layers[2]!.vRelErr.toPrecision(6))));
  });

  it('discrete results must match exactly: tokens, bytes, divergence', async () => {
    const r = await fixtureReport();
    const c = cloneReport(r);
    const s = c.adapters[0]!.strategies[1]!;
    s.bytes += 1;
    s.generation.tokens[3] = s.generation.tokens[3]! + 1;
    c.documentTokens[5] = c.documentTokens[5]! + 1;
    const metrics = diffReports(r, c).map((m) => m.metric);
    assert.ok(metrics.includes('bytes'));
    assert.ok(metrics.includes('generation.tokens (from index 3)'));
    assert.ok(metrics.includes('documentTokens (from index 5)'));
  });

  it('the rule: relative, with a 0.01 floor near zero', () => {
    assert.equal(moved(0.5, 0.5 + 4e-5, 1e-4), false);
    assert.equal(moved(0.5, 0.5 + 6e-5, 1e-4), true);
    assert.equal(moved(0, 9e-7, 1e-4), false);
    assert.equal(moved(0, 2e-6, 1e-4), true);
    assert.equal(moved(Number.NaN, Number.NaN, 1e-4), false);
    assert.equal(moved(Number.NaN, 0.1, 1e-4), true);
    assert.equal(moved(1, 1.0001, 0), true, 'tolerance 0: bit-exact');
  });

  it('--tolerance sets every family or one', () => {
    assert.deepEqual(parseTolerances([]), DEFAULT_TOLERANCES);
    assert.deepEqual(parseTolerances(['1e-3']), { errors: 1e-3, scores: 1e-3, probs: 1e-3 });
    assert.deepEqual(parseTolerances(['1e-3', 'scores=0.01']), { errors: 1e-3, scores: 0.01, probs: 1e-3 });
    assert.throws(() => parseTolerances(['kl=1']), /unknown metric family "kl"/);
    assert.throws(() => parseTolerances(['-1']), /≥ 0/);
  });

  it('the re-run asks for what the report ran, the tokenizer following an overridden model folder', async () => {
    const r = await fixtureReport();
    const req = requestFromReport(r, { model: '/elsewhere/model', adapters: { [r.adapters[0]!.name]: '/elsewhere/a' } });
    assert.equal(req.modelDir, '/elsewhere/model');
    assert.equal(req.tokenizerDir, '/elsewhere/model');
    assert.deepEqual(req.adapters.map((a) => a.dir), ['/elsewhere/a', r.adapters[1]!.dir]);
    assert.equal(req.documentText, r.document.text);
    assert.equal(req.promptText, r.prompt.text);
    assert.deepEqual(req.strategies, r.settings.strategies);
    assert.equal(req.maxNewTokens, r.settings.maxNewTokens);
  });
});

/** Doubles every v_proj lora_B weight of an F32 PEFT adapter file, in place. */
function doubleVProjB(file: string): number {
  const buf = fs.readFileSync(file);
  const headerLen = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8')) as Record<string, { dtype: string; data_offsets: [number, number] }>;
  let changed = 0;
  for (const [name, t] of Object.entries(header)) {
    if (!/v_proj\.lora_B\.weight$/.test(name)) continue;
    assert.equal(t.dtype, 'F32', name);
    for (let o = 8 + headerLen + t.data_offsets[0]; o < 8 + headerLen + t.data_offsets[1]; o += 4) buf.writeFloatLE(2 * buf.readFloatLE(o), o);
    changed++;
  }
  fs.writeFileSync(file, buf);
  return changed;
}

describe('adapterlens verify on a fresh fixture run', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'adapterlens-verify-'));
  const original = path.join(fixtures, 'adapters', 'llama-gqa-bf16', 'qv-r8');
  const copy = path.join(tmp, 'qv-copy');
  const reportFile = path.join(tmp, 'report.json');

  before(async () => {
    fs.cpSync(original, copy, { recursive: true });
    const doc = path.join(tmp, 'doc.txt');
    fs.writeFileSync(doc, fs.readFileSync(path.join(projectRoot, 'tests', 'fixtures', 'documents', 'hku-intro.txt'), 'utf8').slice(0, 600));
    await run(process.execPath, [
      cli, 'compare',
      '--model', path.join(fixtures, 'models', 'llama-gqa-bf16'),
      '--adapter', `qv=${copy}`,
      '--adapter', path.join(fixtures, 'adapters', 'llama-gqa-bf16', 'patterns'),
      '--document', doc,
      '--prompt', ' In short,',
      '--strategies', 'exact,base,seed-minikv,delta-int8,hybrid:1',
      '--max-new-tokens', '6',
      '--no-stop-at-eos',
      '--json', reportFile,
    ]);
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  async function verify(...extra: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await run(process.execPath, [cli, 'verify', reportFile, ...extra]);
      return { code: 0, stdout, stderr };
    } catch (e) {
      const err = e as { code: number; stdout: string; stderr: string };
      return { code: err.code, stdout: err.stdout, stderr: err.stderr };
    }
  }

  it('passes on an unchanged run', async () => {
    const r = await verify();
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /verify: OK/);
    assert.match(r.stderr, /re-run: Generating/);
  });

  it('fails on a changed adapter, naming the file and the numbers that moved', async () => {
    assert.ok(doubleVProjB(path.join(copy, 'adapter_model.safetensors')) > 0);
    const r = await verify();
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /verify: FAILED/);
    assert.match(r.stdout, /adapter qv: .*adapter_model\.safetensors changed: sha256 [0-9a-f]{64} → [0-9a-f]{64}/);
    assert.match(r.stdout, /Numbers that moved beyond tolerance/);
    assert.match(r.stdout, /adapter qv · seed-minikv · layer \d+ · vRelErr: [\d.e-]+ → [\d.e-]+/);
    // The other adapter did not change: nothing of it is listed as moved or mismatched.
    assert.doesNotMatch(r.stdout, /adapter patterns/);
  });

  it('checks another copy of the files with --adapter NAME=DIR (here: the unchanged original)', async () => {
    const r = await verify('--adapter', `qv=${original}`);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  it('refuses bad usage and a file that is not a report', async () => {
    const bad = await verify('--tolerance', 'nope=1');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown metric family/);
    const notReport = path.join(tmp, 'not-a-report.json');
    fs.writeFileSync(notReport, JSON.stringify({ schema: 'something/else' }));
    const r = await run(process.execPath, [cli, 'verify', notReport]).catch((e: { code: number; stderr: string }) => e);
    assert.equal((r as { code: number }).code, 1);
    assert.match((r as { stderr: string }).stderr, /not an AdapterLens report/);
  });
});
