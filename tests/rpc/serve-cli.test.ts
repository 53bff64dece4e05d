// `adapterlens serve` as a process: its argument parsing, the one stdout line that
// scripts parse, the warning for a non-loopback bind, and a clean exit on SIGTERM.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { defaultDataDir } from '../../main/cli/data-dir.js';
import { isLoopback, parseServeArgs } from '../../main/cli/serve.js';
import { projectRoot } from '../../main/paths.js';
import { tempDir } from './helpers.js';

describe('serve arguments', () => {
  it('defaults to loopback, port 8765, 8 GiB, the XDG data folder', () => {
    const c = parseServeArgs([])!;
    assert.deepEqual(c, { port: 8765, host: '127.0.0.1', dataDir: defaultDataDir(), budgetBytes: 8 * 2 ** 30, device: 'auto' });
    assert.deepEqual(parseServeArgs(['--port', '0', '--host', '::1', '--data-dir', '/tmp/x', '--budget-gib', '0.5', '--device', 'cpu']), {
      port: 0,
      host: '::1',
      dataDir: '/tmp/x',
      budgetBytes: 2 ** 29,
      device: 'cpu',
    });
    assert.equal(parseServeArgs(['--help']), null);
  });

  it('refuses bad values with a message naming the option', () => {
    assert.throws(() => parseServeArgs(['--port', '70000']), /--port 70000/);
    assert.throws(() => parseServeArgs(['--port', 'abc']), /--port abc/);
    assert.throws(() => parseServeArgs(['--budget-gib', '0']), /--budget-gib 0/);
    assert.throws(() => parseServeArgs(['--device', 'tpu']), /--device tpu/);
    assert.throws(() => parseServeArgs(['--model', 'x']), /--model/);
  });

  it('keeps data in $XDG_DATA_HOME/adapterlens, else ~/.local/share/adapterlens', () => {
    assert.equal(defaultDataDir({ XDG_DATA_HOME: '/xdg' }), '/xdg/adapterlens');
    assert.equal(defaultDataDir({ XDG_DATA_HOME: 'relative' }), path.join(os.homedir(), '.local', 'share', 'adapterlens'));
    assert.equal(defaultDataDir({}), path.join(os.homedir(), '.local', 'share', 'adapterlens'));
  });

  it('knows loopback addresses', () => {
    assert.ok(isLoopback('127.0.0.1') && isLoopback('127.1.2.3') && isLoopback('::1') && isLoopback('localhost'));
    assert.ok(!isLoopback('0.0.0.0') && !isLoopback('192.168.1.2') && !isLoopback('::'));
  });
});

/** Starts `adapterlens serve ARGS` from the TypeScript sources; resolves with its first stdout line. */
function startServe(args: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', "import { main } from './main/cli/main.ts'; process.exitCode = await main(process.argv.slice(1));", 'serve', ...args], {
    cwd: projectRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const firstLine = new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (stdout.includes('\n')) resolve(stdout.split('\n')[0]!);
    });
    child.once('exit', (code) => reject(new Error(`serve exited (${code}) before printing: ${stderr}`)));
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, firstLine, exited, output: () => ({ stdout, stderr }) };
}

function get(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
}

describe('adapterlens serve (process)', () => {
  it('prints exactly one line with the URL, serves, and exits 0 on SIGTERM', async () => {
    const dataDir = tempDir('serve-cli');
    const s = startServe(['--port', '0', '--data-dir', dataDir, '--device', 'cpu']);
    const line = await s.firstLine;
    const m = /^AdapterLens serving at (http:\/\/127\.0\.0\.1:(\d+)\/\?token=([A-Za-z0-9_-]+))$/.exec(line);
    assert.ok(m, line);
    const [, url, port] = m;
    assert.equal(await get(`http://127.0.0.1:${port}/`), 401);
    assert.notEqual(await get(url!), 401);
    s.child.kill('SIGTERM');
    assert.equal(await s.exited, 0);
    const { stdout, stderr } = s.output();
    assert.equal(stdout, `${line}\n`, 'nothing else on stdout');
    assert.match(stderr, /engine: cpu, /, 'the engine is loaded at start and named on stderr');
    assert.match(stderr, /stopping/);
    assert.ok(!fs.existsSync(path.join(dataDir, 'history')) || fs.readdirSync(path.join(dataDir, 'history')).length === 0);
  });

  it('warns when bound to a non-loopback address', async () => {
    const s = startServe(['--port', '0', '--host', '0.0.0.0', '--data-dir', tempDir('serve-cli')]);
    const line = await s.firstLine;
    assert.match(line, /^AdapterLens serving at http:\/\/127\.0\.0\.1:\d+\/\?token=/);
    s.child.kill('SIGINT');
    assert.equal(await s.exited, 0);
    assert.match(s.output().stderr, /WARNING: binding 0\.0\.0\.0 makes AdapterLens reachable from the network/);
  });

  it('exits 2 with the usage on a bad argument', async () => {
    const s = startServe(['--port', 'x']);
    s.firstLine.catch(() => undefined);
    assert.equal(await s.exited, 2);
    assert.match(s.output().stderr, /--port x: expected a whole number/);
  });
});
