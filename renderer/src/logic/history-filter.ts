// Searching and filtering the saved runs: every word of the query must appear in the
// run's model, adapters, strategies, backend, document start or prompt.
import type { HistoryEntry } from '../../../shared/rpc.js';

export interface HistoryFilter {
  query: string;
  /** '' for any model. */
  model: string;
  backend: '' | 'cpu' | 'cuda';
}

export function searchText(e: HistoryEntry): string {
  return [e.modelName, ...e.adapterNames, ...e.strategies, e.backend, e.documentStart, e.promptStart].join(' ').toLowerCase();
}

export function filterHistory(entries: readonly HistoryEntry[], f: HistoryFilter): HistoryEntry[] {
  const words = f.query.toLowerCase().split(/\s+/).filter(Boolean);
  return entries.filter((e) => {
    if (f.model && e.modelName !== f.model) return false;
    if (f.backend && e.backend !== f.backend) return false;
    const text = searchText(e);
    return words.every((w) => text.includes(w));
  });
}

/** The models the history holds, for the filter's choices. */
export function historyModels(entries: readonly HistoryEntry[]): string[] {
  return [...new Set(entries.map((e) => e.modelName))].sort((a, b) => a.localeCompare(b));
}
