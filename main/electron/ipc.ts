// The RPC over Electron ipc: one invoke channel for calls (each checked to come from the
// app's own page, then run through the same dispatch as the WebSocket), one send
// channel for events to every window.
import { BrowserWindow, ipcMain } from 'electron';
import { IPC_EVENT_CHANNEL, IPC_RPC_CHANNEL } from '../../shared/ipc.js';
import { dispatch, type DispatchResult } from '../rpc/dispatch.js';
import type { AppService } from '../rpc/service.js';
import { isAppUrl } from './app-url.js';

export function registerRpc(service: AppService, appUrl: URL): () => void {
  ipcMain.handle(IPC_RPC_CHANNEL, async (event, method: unknown, params: unknown): Promise<DispatchResult> => {
    const frameUrl = event.senderFrame?.url ?? '';
    if (!isAppUrl(frameUrl, appUrl)) {
      return { ok: false, error: { code: 'UNAUTHORIZED', message: 'only the AdapterLens window may call AdapterLens' } };
    }
    return dispatch(service.handlers, method, params);
  });
  const unsubscribe = service.onEvent((event, payload) => {
    for (const win of BrowserWindow.getAllWindows()) {
      if (!win.isDestroyed() && isAppUrl(win.webContents.getURL(), appUrl)) win.webContents.send(IPC_EVENT_CHANNEL, event, payload);
    }
  });
  return () => {
    ipcMain.removeHandler(IPC_RPC_CHANNEL);
    unsubscribe();
  };
}
