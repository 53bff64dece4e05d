// The CLI as a user (or a script) runs it, in a child process of the built CLI (issue 13,
// rows 4, 10 and 12): Ctrl-C during the load exits 130 saying nothing was written; a
// 10 MB document for a 2048-token model is refused at once from its length; numbers are
// parsed strictly; adapter names with ESC / CR reach the terminal escaped. Each run gets
// its own data folder (XDG_DATA_HOME), where the file-digest cache lives.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../../main/paths.js';
import { ADAPTERS_DIR, MODEL_DIR, tempDir } from '../rpc/helpers.js';

const cli = path.join(projectRoot, 'bin', 'adapterlens.mjs');
const execFileP = promisify(execFile);

function env(): NodeJS.ProcessEnv {
  return { ...process.env, XDG_DATA_HOME: tempDir('cli-data') };
}

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [cli, ...args], { env: env(), maxBuffer: 1 << 24, timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : -1, stdout: x.stdout ?? '', stderr: x.stderr ?? '' };
  }
}

const tmp = tempDir('cli');
const doc = path.join(tmp, 'doc.txt');
fs.writeFileSync(doc, 'The University of Hong Kong is the oldest university in Hong Kong.');
const base = ['compare', '--model', MODEL_DIR, '--document', doc, '--strategies', 'exact,base', '--max-new-tokens', '2'];
const qv = path.join(ADAPTERS_DIR, 'qv-r8');

describe('adapterlens CLI: cancel, long documents, strict numbers, terminal-safe names', { timeout: 300_000 }, () => {
  it('Ctrl-C during the load exits 130: "cancelled; nothing was written"', async () => {
    // A model folder whose files take seconds to hash: a 4 GiB sparse extra file (no disk
    // space used) beside the fixture's. SIGINT goes out when the load stage starts.
    const dir = path.join(tmp, 'slow-model');
    fs.mkdirSync(dir);
    for (const name of fs.readdirSync(MODEL_DIR)) fs.symlinkSync(path.join(MODEL_DIR, name), path.join(dir, name));
    const fd = fs.openSync(path.join(dir, 'padding.safetensors'), 'w');
    fs.ftruncateSync(fd, 4 * 1024 ** 3);
    fs.closeSync(fd);
    const out = path.join(tmp, 'never.json');
    const child = spawn(process.execPath, [cli, 'compare', '--model', dir, '--adapter', qv, '--document', doc, '--max-new-tokens', '2', '--json', out], {
      env: env(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let signalled = false;
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (!signalled && /Loading model and adapters/.test(stderr)) {
        signalled = true;
        child.kill('SIGINT');
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    assert.ok(signalled, `the load started (stderr: ${stderr})`);
    assert.doesNotMatch(stderr, /Base prefill/, 'cancelled during the load, before any prefill');
    assert.equal(code, 130, stderr);
    assert.match(stderr, /adapterlens: cancelled; nothing was written\./);
    assert.doesNotMatch(stderr, /operation was aborted/i);
    assert.ok(!fs.existsSync(out));
  });

  it('a 10 MB document for a 2048-token model is refused from its length, before any tokenizing or loading', async () => {
    const big = path.join(tmp, 'big.txt');
    fs.writeFileSync(big, 'The University of Hong Kong is the oldest university in Hong Kong. '.repeat(160_000));
    const r = await run(['compare', '--model', MODEL_DIR, '--adapter', qv, '--document', big, '--max-new-tokens', '2']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /needs at least \d+ positions .* at most 2048/);
    assert.doesNotMatch(r.stderr, /Loading model|Tokenizing/);
  });

  for (const bad of ['', '0x3', '3.5', '1e2', ' 3', '-1']) {
    it(`--max-new-tokens ${JSON.stringify(bad)} is a usage error, not ${bad === '' ? '0' : 'a number'}`, async () => {
      const r = await run([...base, '--adapter', qv, `--max-new-tokens=${bad}`]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /--max-new-tokens .*expected a whole number/);
    });
  }

  it('--seed and --temperature are parsed strictly too', async () => {
    assert.equal((await run([...base, '--adapter', qv, '--seed', '0x10'])).code, 2);
    assert.equal((await run([...base, '--adapter', qv, '--temperature', ''])).code, 2);
    assert.equal((await run([...base, '--adapter', qv, '--top-p', '0b1'])).code, 2);
  });

  it('a --plan file that is not JSON, or not a plan, is a usage error naming the file', async () => {
    const broken = path.join(tmp, 'broken-plan.json');
    fs.writeFileSync(broken, '{"format": "adapterlens.plan/1", ');
    const r = await run([...base, '--adapter', qv, '--strategies', 'exact,fit', '--plan', broken]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--plan .*broken-plan\.json: not JSON/);
    const wrong = path.join(tmp, 'wrong-plan.json');
    fs.writeFileSync(wrong, '[1, 2]');
    const w = await run([...base, '--adapter', qv, '--strategies', 'exact,fit', '--plan', wrong]);
    assert.equal(w.code, 2, w.stderr);
    assert.match(w.stderr, /not an adapterlens\.plan\/1 file/);
  });

  it('an adapter name with ESC, CR and a bidi override reaches the terminal escaped', async () => {
    const name = 'ev\u001b[2J\u001b]0;owned\u0007il\rX\u202egnp.exe\u0085';
    const r = await run([...base, '--adapter', `${name}=${qv}`]);
    assert.equal(r.code, 0, r.stderr);
    for (const [where, text] of [['stdout', r.stdout], ['stderr', r.stderr]] as const) {
      assert.doesNotMatch(text, /[\u001b\u0007\r\u202e\u0085]/, `${where} carries no raw control character`);
    }
    assert.match(r.stdout, /ev\\x1b\[2J\\x1b\]0;owned\\x07il\\rX\\u202egnp\.exe\\x85/, 'the name is shown, escaped, in the table');
  });
});
