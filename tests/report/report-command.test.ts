// `adapterlens report` and the validating reader: a saved report renders in every text
// format from the CLI, and a file that is not a valid report is refused with where it
// is wrong, before anything is rendered.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../../main/paths.js';
import { parseReport, ReportFormatError } from '../../main/report/read-report.js';
import { renderCsv } from '../../main/report/render-csv.js';
import { renderHtml } from '../../main/report/render-html.js';
import { renderMarkdown } from '../../main/report/render-markdown.js';
import { ALL_STRATEGIES } from '../../shared/strategies.js';
import { FIXTURE_REPORT, fixtureReport } from './fixture-report.js';

const run = promisify(execFile);
const cli = path.join(projectRoot, 'bin', 'adapterlens.mjs');

function rawFixture(): Record<string, unknown> & { adapters: { strategies: Record<string, unknown>[] }[] } {
  return JSON.parse(fs.readFileSync(FIXTURE_REPORT, 'utf8')) as ReturnType<typeof rawFixture>;
}

describe('reading a report file', () => {
  it('reads the fixture, turning JSON nulls for unmeasured numbers back into NaN', () => {
    const raw = rawFixture();
    const gen = raw.adapters[0]!.strategies[0]!.generation as { probs: (number | null)[] };
    gen.probs[0] = null;
    const r = parseReport(raw);
    assert.ok(Number.isNaN(r.adapters[0]!.strategies[0]!.generation.probs[0]));
  });

  it('refuses what is not a report, saying where', () => {
    assert.throws(() => parseReport({ schema: 'other/1' }), /not an AdapterLens report/);
    const noExact = rawFixture();
    noExact.adapters[0]!.strategies.shift();
    assert.throws(() => parseReport(noExact), (e: unknown) => e instanceof ReportFormatError && /adapters\.0\.strategies.*no "exact"/.test(e.message));
    const shortLayers = rawFixture();
    (shortLayers.adapters[1]!.strategies[2]!.layers as unknown[]).pop();
    assert.throws(() => parseReport(shortLayers), /adapters\.1\.strategies\.2\.layers: expected layers 0…/);
    const badHash = rawFixture();
    (badHash.model as { sha256: Record<string, string> }).sha256['config.json'] = 'not-a-hash';
    assert.throws(() => parseReport(badHash), /model\.sha256\.config\.json/);
    const badStrategy = rawFixture();
    (badStrategy.settings as { strategies: string[] }).strategies.push('magic');
    assert.throws(() => parseReport(badStrategy), /unknown strategy "magic"/);
  });
});

describe('adapterlens compare with report outputs', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'adapterlens-compare-outputs-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const fixtures = path.join(projectRoot, 'tests', 'fixtures');

  it('writes every text format, each identical to rendering the JSON it wrote (the JSON alone suffices)', async () => {
    const f = (ext: string): string => path.join(tmp, `run.${ext}`);
    await run(process.execPath, [
      cli, 'compare',
      '--model', path.join(fixtures, 'models', 'llama-gqa-bf16'),
      '--adapter', path.join(fixtures, 'adapters', 'llama-gqa-bf16', 'qv-r8'),
      '--adapter', path.join(fixtures, 'adapters', 'llama-gqa-bf16', 'all-linear-rslora'),
      '--document', path.join(fixtures, 'documents', 'hku-intro.txt'),
      '--prompt', ' According to the above introduction of HKU,',
      '--strategies', 'all', '--max-new-tokens', '16',
      '--json', f('json'), '--html', f('html'), '--md', f('md'), '--csv', f('csv'),
    ]);
    const report = parseReport(JSON.parse(fs.readFileSync(f('json'), 'utf8')));
    assert.equal(fs.readFileSync(f('html'), 'utf8'), renderHtml(report));
    assert.equal(fs.readFileSync(f('md'), 'utf8'), renderMarkdown(report));
    assert.equal(fs.readFileSync(f('csv'), 'utf8'), renderCsv(report));
    assert.deepEqual(report.settings.strategies, [...ALL_STRATEGIES], '--strategies all is every strategy with its default parameters');
  });
});

describe('adapterlens report', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'adapterlens-report-cli-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('renders a saved report in every text format, the same bytes as the module', async () => {
    const out = (ext: string): string => path.join(tmp, 'nested', `r.${ext}`);
    const { stderr } = await run(process.execPath, [cli, 'report', FIXTURE_REPORT, '--html', out('html'), '--md', out('md'), '--csv', out('csv')]);
    assert.match(stderr, /HTML report written to/);
    const report = await fixtureReport();
    assert.equal(fs.readFileSync(out('html'), 'utf8'), renderHtml(report));
    assert.equal(fs.readFileSync(out('md'), 'utf8'), renderMarkdown(report));
    assert.equal(fs.readFileSync(out('csv'), 'utf8'), renderCsv(report));
  });

  it('refuses a broken file with the reason, and a call without outputs with the usage', async () => {
    const broken = path.join(tmp, 'broken.json');
    fs.writeFileSync(broken, '{ "schema": "adapterlens.report/1", ');
    await assert.rejects(run(process.execPath, [cli, 'report', broken, '--md', path.join(tmp, 'x.md')]), (e: { code: number; stderr: string }) => {
      assert.equal(e.code, 1);
      assert.match(e.stderr, /is not JSON/);
      return true;
    });
    assert.ok(!fs.existsSync(path.join(tmp, 'x.md')));
    await assert.rejects(run(process.execPath, [cli, 'report', FIXTURE_REPORT]), (e: { code: number; stderr: string }) => {
      assert.equal(e.code, 2);
      assert.match(e.stderr, /at least one output/);
      return true;
    });
  });
});
