// The desktop app's main process: one window over the same AppService the browser mode
// uses. This folder is the only code that imports 'electron'; everything it drives
// (engine, cache manager, history, RPC dispatch) is plain Node code in main/.
import os from 'node:os';
import path from 'node:path';
import { app, BrowserWindow } from 'electron';
import { AppService } from '../rpc/service.js';
import { electronPlatform } from './dialogs.js';
import { registerRpc } from './ipc.js';
import { installMenu } from './menu.js';
import { rendererUrl } from './paths.js';
import { hardenContents, installCsp } from './security.js';
import { createMainWindow } from './window.js';

/** Cache budget: 8 GiB, or half the machine's memory when that is less. */
const CACHE_BUDGET = Math.min(8 * 2 ** 30, Math.floor(os.totalmem() / 2));

// One instance: a second launch focuses the first window (two engines would double the memory).
if (!app.requestSingleInstanceLock()) {
  app.quit();
} else {
  let win: BrowserWindow | null = null;
  const appUrl = rendererUrl(app.isPackaged);

  app.on('second-instance', () => {
    if (win && !win.isDestroyed()) {
      if (win.isMinimized()) win.restore();
      win.focus();
    }
  });
  app.on('web-contents-created', (_e, contents) => hardenContents(contents, appUrl));

  void app.whenReady().then(() => {
    const historyDir = path.join(app.getPath('userData'), 'history');
    const service = new AppService({
      transport: 'electron',
      historyDir,
      // The file-digest cache lives beside history: a second start on the same checkpoint hashes nothing.
      dataDir: app.getPath('userData'),
      cacheBudgetBytes: CACHE_BUDGET,
      platform: electronPlatform(() => win),
    });
    installCsp(appUrl);
    const unregister = registerRpc(service, appUrl);
    installMenu({ historyDir, isPackaged: app.isPackaged });
    app.setAboutPanelOptions({ applicationName: 'AdapterLens', applicationVersion: app.getVersion() });
    win = createMainWindow(appUrl);
    win.on('closed', () => {
      win = null;
    });

    // Quit waits for the run in progress to be cancelled and the engine freed.
    let disposed = false;
    app.on('before-quit', (event) => {
      if (disposed) return;
      event.preventDefault();
      disposed = true;
      unregister();
      void service.dispose().finally(() => app.quit());
    });
  });

  app.on('window-all-closed', () => app.quit());
}
