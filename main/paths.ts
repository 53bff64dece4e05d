// Where the project's own files are, whether this code runs from TypeScript sources
// (tests, tsx) or from the compiled dist/ folder (CLI, app): walk up to package.json.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findProjectRoot(start: string): { dir: string; version: string } {
  let dir = start;
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg)) {
      const { name, version } = JSON.parse(fs.readFileSync(pkg, 'utf8')) as { name?: unknown; version?: unknown };
      if (name === 'adapterlens') return { dir, version: String(version) };
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`AdapterLens: no package.json named "adapterlens" above ${start}`);
    dir = parent;
  }
}

const project = findProjectRoot(path.dirname(fileURLToPath(import.meta.url)));
export const projectRoot: string = project.dir;
/** package.json's version (reports, app.info). */
export const appVersion: string = project.version;

/** The folder cmake-js writes the addons to. */
export const nativeBuildDir: string = path.join(projectRoot, 'native', 'build', 'Release');
