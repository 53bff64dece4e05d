// App-wide state: the backend's AppInfo, the connection, the visible tab.
import { create } from 'zustand';
import type { AppInfo } from '../../../shared/rpc.js';
import { errorMessage, rpc } from '../rpc/instance.js';
import type { ConnectionState } from '../rpc/types.js';

export type Tab = 'setup' | 'results' | 'history' | 'cache';

interface AppState {
  info: AppInfo | null;
  infoError: string | null;
  connection: ConnectionState;
  tab: Tab;
  setTab(tab: Tab): void;
  setConnection(state: ConnectionState): void;
  loadInfo(): Promise<void>;
}

export const useApp = create<AppState>((set) => ({
  info: null,
  infoError: null,
  connection: 'connecting',
  tab: 'setup',
  setTab: (tab) => set({ tab }),
  setConnection: (connection) => set({ connection }),
  loadInfo: async () => {
    try {
      const info = await rpc().call('app.info', {});
      set({ info, infoError: null });
    } catch (e) {
      set({ infoError: errorMessage(e) });
    }
  },
}));
