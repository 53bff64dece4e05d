// What the end-to-end tests share: the built app, `adapterlens serve` started on a free
// port with its own data folder (and started again on the same folder, as a restart),
// headless Chromium, screenshots under test-results/e2e/ (git-ignored).
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { projectRoot } from '../../main/paths.js';
import type { Report } from '../../shared/report.js';

export const CHROMIUM = '/usr/bin/chromium';
export const shots = path.join(projectRoot, 'test-results', 'e2e');
export const skip = fs.existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (apt-get install chromium)`;

/** The newest modification time of the files under these folders (0 where none). */
function newestUnder(folders: readonly string[]): number {
  let newest = 0;
  const walk = (dir: string): void => {
    if (!fs.existsSync(dir)) return;
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) newest = Math.max(newest, fs.statSync(full).mtimeMs);
    }
  };
  folders.forEach((f) => walk(path.join(projectRoot, f)));
  return newest;
}

/** Missing, or older than a source it is built from: an e2e run on a stale build tests old code. */
function stale(output: string, sources: readonly string[]): boolean {
  const file = path.join(projectRoot, output);
  return !fs.existsSync(file) || fs.statSync(file).mtimeMs < newestUnder(sources);
}

/** The built pieces serve needs: dist/ (tsc) and out/renderer (vite), rebuilt when stale. */
export function ensureBuilt(): void {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  if (stale('dist/main/cli/main.js', ['main', 'shared'])) execFileSync(npm, ['run', 'build:ts'], { cwd: projectRoot, stdio: 'inherit' });
  if (stale('out/renderer/index.html', ['renderer/src', 'shared'])) execFileSync(npm, ['run', 'build:renderer'], { cwd: projectRoot, stdio: 'inherit' });
}

export interface Serve {
  proc: ChildProcess;
  url: string;
}

export function startServe(dataDir: string): Promise<Serve> {
  const proc = spawn(process.execPath, [path.join(projectRoot, 'bin', 'adapterlens.mjs'), 'serve', '--port', '0', '--data-dir', dataDir], {
    cwd: projectRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`serve did not print its URL in 60 s; stderr:\n${stderr}`)), 60_000);
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /AdapterLens serving at (http:\/\/\S+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve({ proc, url: m[1] });
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code}; stderr:\n${stderr}`));
    });
  });
}

export async function stopServe(serve: Serve | undefined): Promise<void> {
  if (!serve || serve.proc.exitCode !== null) return;
  const exited = new Promise((r) => serve.proc.once('exit', r));
  serve.proc.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
  if (serve.proc.exitCode === null) serve.proc.kill('SIGKILL');
}

/**
 * Headless Chromium on the served app, connected; every console error or warning and
 * every page error goes into `problems` (the suites end by asserting it is empty).
 */
export async function openApp(serve: Serve, problems: string[]): Promise<{ browser: Browser; page: Page }> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  await page.goto(serve.url);
  await page.getByText('connected', { exact: true }).waitFor({ timeout: 30_000 });
  return { browser, page };
}

export function savedReports(dataDir: string): { id: string; report: Report }[] {
  const dir = path.join(dataDir, 'history');
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => ({ id: f.replace(/\.json$/, ''), report: JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as Report }));
}

export async function shot(page: Page, name: string): Promise<void> {
  fs.mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: path.join(shots, `${name}.png`) });
}

export function visible(piece: string): string {
  return piece.replace(/\n/g, '⏎').replace(/\t/g, '⇥');
}
