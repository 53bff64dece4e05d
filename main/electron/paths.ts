// Where the built pieces of the desktop app are, relative to the bundled main process
// (out/main/index.mjs): the preload at out/preload, the renderer at out/renderer. In
// development (`electron-vite dev`) the renderer comes from the Vite dev server instead.
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const outDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export const preloadFile = path.join(outDir, 'preload', 'index.cjs');
export const rendererIndexFile = path.join(outDir, 'renderer', 'index.html');

/**
 * The URL the window loads: the Vite dev server under `electron-vite dev` (never in a
 * packaged app, whatever the environment says), else the built index.html.
 */
export function rendererUrl(isPackaged: boolean): URL {
  const dev = process.env.ELECTRON_RENDERER_URL;
  if (dev && !isPackaged) return new URL(dev);
  return pathToFileURL(rendererIndexFile);
}
