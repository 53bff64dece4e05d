// The desktop app as a whole: its packaging configuration, its electron-vite build
// (which must work without the Electron binary), and the app itself driven by
// Playwright's _electron, which runs only where an Electron binary exists and skips,
// saying why, where it does not.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../../main/paths.js';
import type { RpcBridge } from '../../shared/rpc.js';
import { tempDir, tinyRequest } from '../rpc/helpers.js';

const run = promisify(execFile);
const require = createRequire(import.meta.url);

/** Where this test builds the app: under out/ (ignored) but not out/ itself, which serve and the e2e tests use. */
const OUT_REL = path.join('out', 'test-electron');
const OUT = path.join(projectRoot, OUT_REL);

/** The Electron binary, or why there is none here. */
function electronBinary(): { path: string } | { reason: string } {
  const pkgDir = path.join(projectRoot, 'node_modules', 'electron');
  if (!fs.existsSync(path.join(pkgDir, 'package.json'))) return { reason: 'the electron package is not installed' };
  const pathTxt = path.join(pkgDir, 'path.txt');
  if (!fs.existsSync(pathTxt)) {
    return { reason: 'the electron package is installed but its binary was not downloaded (node_modules/electron/path.txt is missing; run `node node_modules/electron/install.js` with network access)' };
  }
  const bin = path.join(pkgDir, 'dist', fs.readFileSync(pathTxt, 'utf8').trim());
  if (!fs.existsSync(bin)) return { reason: `the Electron binary ${bin} is missing` };
  if (process.platform === 'linux' && !process.env.DISPLAY && !process.env.WAYLAND_DISPLAY) {
    return { reason: 'there is no display (set DISPLAY, or run the tests under xvfb-run)' };
  }
  return { path: bin };
}

describe('desktop app packaging', () => {
  it('electron-builder config: AppImage and deb for Linux x64, both engine builds shipped and unpacked from asar', async () => {
    const { getConfig, validateConfiguration } = require('app-builder-lib/out/util/config/config.js') as {
      getConfig(dir: string, file: string | null, options: null): Promise<Record<string, unknown>>;
      validateConfiguration(config: Record<string, unknown>, logger: { add(): void; isEnabled: boolean }): Promise<void>;
    };
    const config = (await getConfig(projectRoot, null, null)) as {
      files: { filter: string[] }[];
      asarUnpack: string[];
      linux: { target: { target: string; arch: string[] }[] };
      npmRebuild: boolean;
    };
    await validateConfiguration(config, { add() {}, isEnabled: false }); // throws on a schema error
    const files = config.files.flatMap((f) => f.filter);
    for (const f of ['out/main/**', 'out/preload/**', 'out/renderer/**', 'native/build/Release/adapterlens_cpu.node', 'native/build/Release/adapterlens_cuda.node']) {
      assert.ok(files.includes(f), `ships ${f}`);
    }
    assert.deepEqual(config.asarUnpack, ['native/build/Release/*.node']);
    assert.deepEqual(config.linux.target, [
      { target: 'AppImage', arch: ['x64'] },
      { target: 'deb', arch: ['x64'] },
    ]);
    assert.equal(config.npmRebuild, false, 'the N-API addons need no rebuild for Electron');
    const pkg = JSON.parse(fs.readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { main: string };
    assert.equal(pkg.main, 'out/main/index.js', 'package.json main is the built main process');
  });
});

describe('desktop app build (electron-vite)', () => {
  before(async () => {
    fs.rmSync(OUT, { recursive: true, force: true });
    await run(process.execPath, [path.join(projectRoot, 'node_modules', 'electron-vite', 'bin', 'electron-vite.js'), 'build', '--logLevel', 'error'], {
      cwd: projectRoot,
      env: { ...process.env, ADAPTERLENS_OUT_DIR: OUT_REL },
      maxBuffer: 16 * 1024 * 1024,
    });
  });

  it('builds main (ESM), a CommonJS preload and the renderer, without an Electron binary', () => {
    const main = fs.readFileSync(path.join(OUT, 'main', 'index.js'), 'utf8');
    assert.match(main, /^import .* from "electron";$/m, 'main imports electron, which stays external');
    assert.ok(!/\bfrom "ws"/.test(main), 'the serve transport is not part of the desktop app');
    const preload = fs.readFileSync(path.join(OUT, 'preload', 'index.cjs'), 'utf8');
    assert.ok(!/^\s*(import|export)\s/m.test(preload), 'a sandboxed preload cannot be an ES module');
    const required = [...preload.matchAll(/require\("([^"]+)"\)/g)].map((m) => m[1]);
    assert.deepEqual([...new Set(required)], ['electron'], 'the preload requires nothing but electron (shared/ is bundled in)');
    assert.match(preload, /exposeInMainWorld\("adapterlens"/);
    assert.ok(!/exposeInMainWorld\([^)]*ipcRenderer\)/.test(preload), 'ipcRenderer itself is never exposed');
    const index = fs.readFileSync(path.join(OUT, 'renderer', 'index.html'), 'utf8');
    assert.match(index, /Content-Security-Policy/);
    assert.match(index, /<script type="module" crossorigin src="\.\/assets\/[^"]+\.js">/, 'relative asset URLs (file://)');
  });

  const bin = electronBinary();
  it('launches: one sandboxed window, the bridge only, RPC and events, navigation and popups blocked', { skip: 'reason' in bin ? bin.reason : false }, async () => {
    if ('reason' in bin) return;
    const { _electron } = await import('playwright-core');
    const isRoot = process.getuid?.() === 0;
    const app = await _electron.launch({
      executablePath: bin.path,
      // Chromium refuses to run as root with its sandbox (CI containers); a user's machine keeps it.
      args: [...(isRoot ? ['--no-sandbox'] : []), path.join(OUT, 'main', 'index.js')],
      cwd: projectRoot,
      env: { ...process.env, XDG_CONFIG_HOME: tempDir('electron-config') },
      timeout: 60_000,
    });
    try {
      const win = await app.firstWindow();
      await win.waitForLoadState('domcontentloaded');
      assert.equal(await win.title(), 'AdapterLens');
      assert.equal(app.windows().length, 1);
      const surface = await win.evaluate(() => {
        const w = window as unknown as Record<string, unknown>;
        return { bridge: Object.keys(w.adapterlens as object).sort(), require: typeof w.require, process: typeof w.process, ipcRenderer: typeof w.ipcRenderer };
      });
      assert.deepEqual(surface, { bridge: ['call', 'on'], require: 'undefined', process: 'undefined', ipcRenderer: 'undefined' });

      const info = await win.evaluate(() => (window as unknown as { adapterlens: RpcBridge }).adapterlens.call('app.info', {}));
      assert.equal(info.ok, true);
      if (info.ok) {
        const result = info.result as { transport: string; capabilities: { nativeDialogs: boolean } };
        assert.equal(result.transport, 'electron');
        assert.equal(result.capabilities.nativeDialogs, true);
      }
      const unknown = await win.evaluate(() => (window as unknown as { adapterlens: RpcBridge }).adapterlens.call('no.such' as 'app.info', {}));
      assert.equal(!unknown.ok && unknown.error.code, 'BAD_REQUEST');
      const malformed = await win.evaluate(() => (window as unknown as { adapterlens: RpcBridge }).adapterlens.call('history.get', { id: '../../etc/passwd' }));
      assert.equal(!malformed.ok && malformed.error.code, 'BAD_REQUEST');

      const runResult = await win.evaluate(async (request) => {
        const bridge = (window as unknown as { adapterlens: RpcBridge }).adapterlens;
        let steps = 0;
        const offTokens = bridge.on('run.tokens', () => steps++);
        const ended = new Promise<string>((resolve) => {
          bridge.on('run.finished', () => resolve('finished'));
          bridge.on('run.failed', () => resolve('failed'));
        });
        const started = await bridge.call('run.start', { request });
        const end = await ended;
        offTokens();
        return { started: started.ok, end, steps };
      }, tinyRequest({ maxNewTokens: 3, stopAtEos: false }));
      assert.deepEqual(runResult, { started: true, end: 'finished', steps: 3 });

      const pageUrl = win.url();
      assert.ok(pageUrl.startsWith('file://'));
      const popup = await win.evaluate(() => window.open('https://example.com/') === null);
      assert.ok(popup, 'window.open is denied');
      await win.evaluate(() => {
        window.location.href = 'https://example.com/';
      });
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(win.url(), pageUrl, 'navigation away is blocked');
      const inlineRan = await win.evaluate(() => {
        const s = document.createElement('script');
        s.textContent = 'window.__inline = 1';
        document.head.appendChild(s);
        return (window as unknown as { __inline?: number }).__inline === 1;
      });
      assert.equal(inlineRan, false, 'the CSP blocks inline scripts');
    } finally {
      await app.close();
    }
  });
});
