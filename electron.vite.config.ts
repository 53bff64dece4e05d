// Build configuration of the desktop app (electron-vite): the Electron main process
// (main/electron/, the only code that imports `electron`), the contextBridge preload
// (main/preload/) and the React renderer (renderer/, whose own Vite config is reused so
// the browser build and the desktop build cannot differ).
//
// - main → out/main/index.js (ESM, like the package). Dependencies stay external
//   (node_modules ships with the app); the engine addon is loaded at run time from
//   native/build/Release (unpacked from asar when packaged).
// - preload → out/preload/index.cjs. Sandboxed preloads cannot be ES modules, so this one
//   is CommonJS, with shared/ bundled in.
// - renderer → out/renderer, exactly as `npm run build:renderer` builds it.
//
// Building needs no Electron binary (only its package.json, for the Node/Chrome targets).
// The CLI and the tests do not use this file: they run main/ under plain Node.
import { resolve } from 'node:path';
import { defineConfig } from 'electron-vite';
import rendererConfig from './renderer/vite.config';

// The build test (tests/electron) builds into its own folder so as not to replace the
// out/ that `adapterlens serve` and the end-to-end tests use meanwhile.
const out = resolve(__dirname, process.env.ADAPTERLENS_OUT_DIR ?? 'out');

export default defineConfig({
  main: {
    build: {
      outDir: resolve(out, 'main'),
      // Runtime dependencies are externalized by default; playwright-core is a
      // devDependency that main/report/render-pdf.ts imports lazily (the browser-mode PDF
      // printer; the desktop app prints with Electron's printToPDF instead). Bundling it
      // would pull in its optional native requires (kerberos, ...), so it stays external too.
      externalizeDeps: { include: ['playwright-core'] },
      rolldownOptions: {
        // task-worker: the body of the worker threads that hash, tokenize and parse user
        // files (main/worker/pool.ts loads ./task-worker.js beside the bundle).
        input: { index: resolve(__dirname, 'main/electron/index.ts'), 'task-worker': resolve(__dirname, 'main/worker/task-worker.ts') },
        external: [/\.node$/],
        // Chunks beside the entries: code in a chunk finds ./task-worker.js next to itself.
        output: { format: 'es', entryFileNames: '[name].js', chunkFileNames: '[name]-[hash].js' },
      },
    },
  },
  preload: {
    build: {
      outDir: resolve(out, 'preload'),
      rolldownOptions: {
        input: { index: resolve(__dirname, 'main/preload/index.ts') },
        output: { format: 'cjs', entryFileNames: '[name].cjs' },
      },
    },
  },
  renderer: {
    ...rendererConfig,
    build: {
      ...rendererConfig.build,
      outDir: resolve(out, 'renderer'),
      rolldownOptions: { input: { index: resolve(__dirname, 'renderer/index.html') } },
    },
  },
});
