// The one application window: sandboxed renderer, context isolation, no Node, the
// preload bridge as its only door to main.
import { BrowserWindow } from 'electron';
import { preloadFile } from './paths.js';

export function createMainWindow(appUrl: URL): BrowserWindow {
  const win = new BrowserWindow({
    width: 1440,
    height: 900,
    minWidth: 900,
    minHeight: 600,
    title: 'AdapterLens',
    show: false,
    backgroundColor: '#ffffff',
    webPreferences: {
      preload: preloadFile,
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
      spellcheck: false,
    },
  });
  win.once('ready-to-show', () => win.show());
  void win.loadURL(appUrl.href);
  return win;
}
