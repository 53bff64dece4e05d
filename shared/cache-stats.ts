// What the cache manager reports about itself (live usage for the UI and the RPC
// contract). main/cache/cache-manager.ts produces it; shared/ only describes it.

/** 'adapter': an adapter's weights loaded in the engine (EngineSession), held while a run uses them. */
export type CacheEntryKind = 'base-cache' | 'exact-cache' | 'store' | 'adapter';

export interface CacheUsageEntry {
  key: string;
  kind: CacheEntryKind;
  label: string;
  bytes: number;
  pinned: boolean;
  /** Live leases on the entry. */
  leases: number;
  /** Date.now() of the last acquire or release. */
  lastUsed: number;
  /** Acquires served without running create (after the one that created it). */
  hits: number;
  /** Evicted or cleared while pinned: disposed when its last lease is released. */
  retired: boolean;
}

export interface CacheUsage {
  budgetBytes: number;
  /** Entries (cached and retired) plus transients owned by open run scopes. */
  usedBytes: number;
  /** Bytes that cannot be evicted now: pinned and retired entries, and transients. */
  pinnedBytes: number;
  /** Bytes of transients owned by open run scopes (included in usedBytes and pinnedBytes). */
  transientBytes: number;
  /** Least recently used first. Retired entries follow the cached ones. */
  entries: CacheUsageEntry[];
  /** Acquires that started no creation (cache hits, and joins of a creation in flight). */
  hits: number;
  /** Acquires that started a creation. */
  misses: number;
  /** Entries removed by the budget or by evict(); clear() and dispose() do not count. */
  evictions: number;
  /** usedBytes > budgetBytes: what is in use alone exceeds the budget. */
  overBudget: boolean;
}
