// Build configuration of the desktop app (electron-vite): the Electron main process
// (main/electron/, the only code that imports `electron`), the contextBridge preload
// (main/preload/) and the React renderer (renderer/). The engine addon stays external:
// it is loaded at run time from native/build/Release (unpacked from asar when packaged).
//
// The three entry points are the desktop-app issue's work; until they exist this file
// only fixes where they go. The CLI and the tests do not use it (they run main/ under
// plain Node through tsc / tsx).
import { resolve } from 'node:path';
import { defineConfig, externalizeDepsPlugin } from 'electron-vite';

export default defineConfig({
  main: {
    plugins: [externalizeDepsPlugin()],
    build: {
      outDir: 'out/main',
      rollupOptions: { input: { index: resolve(__dirname, 'main/electron/index.ts') }, external: [/\.node$/] },
    },
  },
  preload: {
    plugins: [externalizeDepsPlugin()],
    build: { outDir: 'out/preload', rollupOptions: { input: { index: resolve(__dirname, 'main/preload/index.ts') } } },
  },
  renderer: {
    root: resolve(__dirname, 'renderer'),
    build: { outDir: resolve(__dirname, 'out/renderer'), rollupOptions: { input: { index: resolve(__dirname, 'renderer/index.html') } } },
  },
});
