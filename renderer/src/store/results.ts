// The report on screen (a finished run, or one reopened from history) and how it is
// viewed. The view (section, search, filters, sort, scales) is mirrored in the URL's
// hash (persist.ts), so a reload keeps it and a copied link opens the same view.
import { create } from 'zustand';
import type { Report } from '../../../shared/report.js';
import type { StrategyId } from '../../../shared/strategies.js';
import type { GridKind, KvKind } from '../logic/heatmap.js';
import type { OutputSort } from '../logic/output-view.js';
import type { QualityMetric } from '../logic/scatter.js';

export type ResultsSection = 'outputs' | 'errors' | 'memory' | 'quality';

/** A heatmap cell the user clicked: shown with its numbers. */
export interface SelectedCell {
  chart: string;
  adapter: string;
  row: string;
  column: string;
  value: number;
  extra?: { label: string; value: string }[];
}

/** What the hash carries: everything about how a report is looked at. */
export interface ResultsView {
  section: ResultsSection;
  onlyDiffs: boolean;
  /** Text search in the outputs (case-insensitive). */
  query: string;
  /** Adapters (columns) and strategies (rows) hidden from the outputs. */
  hiddenAdapters: string[];
  hiddenStrategies: StrategyId[];
  sort: OutputSort;
  kv: KvKind;
  gridKind: GridKind;
  /** Strategy of the detailed heatmaps; null: the first non-exact one. */
  heatmapStrategy: StrategyId | null;
  /** One colour scale over every strategy (else over the adapters of the shown strategy). */
  oneScale: boolean;
  logScale: boolean;
  metric: QualityMetric;
}

export const DEFAULT_VIEW: ResultsView = {
  section: 'outputs',
  onlyDiffs: false,
  query: '',
  hiddenAdapters: [],
  hiddenStrategies: [],
  sort: 'run',
  kv: 'v',
  gridKind: 'tokens',
  heatmapStrategy: null,
  oneScale: true,
  logScale: false,
  metric: 'meanKl',
};

interface ResultsState extends ResultsView {
  report: Report | null;
  reportId: string | null;
  source: 'run' | 'history' | null;
  selected: SelectedCell | null;
  /** Budget for the "adapters that fit" view; null: the session's cache budget. */
  budgetBytes: number | null;
  open(report: Report, reportId: string | null, source: 'run' | 'history'): void;
  close(): void;
  setView(patch: Partial<ResultsView>): void;
  setSection(section: ResultsSection): void;
  setOnlyDiffs(on: boolean): void;
  setKv(kv: KvKind): void;
  setGridKind(kind: GridKind): void;
  setHeatmapStrategy(id: StrategyId): void;
  select(cell: SelectedCell | null): void;
  setMetric(metric: QualityMetric): void;
  setBudget(bytes: number | null): void;
}

export const useResults = create<ResultsState>((set) => ({
  ...DEFAULT_VIEW,
  report: null,
  reportId: null,
  source: null,
  selected: null,
  budgetBytes: null,
  open: (report, reportId, source) => {
    const keep = (id: StrategyId | null): StrategyId | null => (id && report.settings.strategies.includes(id) ? id : null);
    set((s) => ({ report, reportId, source, selected: null, heatmapStrategy: keep(s.heatmapStrategy) }));
  },
  close: () => set({ report: null, reportId: null, source: null, selected: null }),
  setView: (patch) => set({ ...patch, selected: null }),
  setSection: (section) => set({ section }),
  setOnlyDiffs: (onlyDiffs) => set({ onlyDiffs }),
  setKv: (kv) => set({ kv, selected: null }),
  setGridKind: (gridKind) => set({ gridKind, selected: null }),
  setHeatmapStrategy: (heatmapStrategy) => set({ heatmapStrategy, selected: null }),
  select: (selected) => set({ selected }),
  setMetric: (metric) => set({ metric }),
  setBudget: (budgetBytes) => set({ budgetBytes }),
}));
