// Live cache-manager usage.
import { create } from 'zustand';
import type { CacheUsage } from '../../../shared/cache-stats.js';
import { errorMessage, rpc } from '../rpc/instance.js';

interface CacheState {
  usage: CacheUsage | null;
  error: string | null;
  clearing: boolean;
  refresh(): Promise<void>;
  setUsage(usage: CacheUsage): void;
  clear(): Promise<void>;
}

export const useCache = create<CacheState>((set) => ({
  usage: null,
  error: null,
  clearing: false,
  refresh: async () => {
    try {
      set({ usage: await rpc().call('cache.stats', {}), error: null });
    } catch (e) {
      set({ error: errorMessage(e) });
    }
  },
  setUsage: (usage) => set({ usage, error: null }),
  clear: async () => {
    set({ clearing: true });
    try {
      set({ usage: await rpc().call('cache.clear', {}), error: null });
    } catch (e) {
      set({ error: errorMessage(e) });
    } finally {
      set({ clearing: false });
    }
  },
}));
