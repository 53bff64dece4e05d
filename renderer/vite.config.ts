// Vite build of the React renderer. Used alone (`npm run build:renderer`, served by
// `adapterlens serve`) and reused by electron.vite.config.ts for the desktop app.
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

const here = dirname(fileURLToPath(import.meta.url));

export default defineConfig({
  root: here,
  // Relative asset URLs: the same build loads from file:// (Electron) and http:// (serve).
  base: './',
  plugins: [react()],
  build: {
    outDir: resolve(here, '..', 'out', 'renderer'),
    emptyOutDir: true,
    target: 'es2022',
    chunkSizeWarningLimit: 1200,
    // No inline module-preload polyfill: the CSP forbids inline scripts.
    modulePreload: { polyfill: false },
  },
});
