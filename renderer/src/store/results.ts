// The report on screen (a finished run, or one reopened from history) and how it is viewed.
import { create } from 'zustand';
import type { Report } from '../../../shared/report.js';
import type { StrategyId } from '../../../shared/strategies.js';
import type { GridKind, KvKind } from '../logic/heatmap.js';
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

interface ResultsState {
  report: Report | null;
  reportId: string | null;
  source: 'run' | 'history' | null;
  section: ResultsSection;
  onlyDiffs: boolean;
  kv: KvKind;
  gridKind: GridKind;
  /** Strategy of the detailed heatmaps; null: the first non-exact one. */
  heatmapStrategy: StrategyId | null;
  selected: SelectedCell | null;
  metric: QualityMetric;
  /** Budget for the "adapters that fit" view; null: the session's cache budget. */
  budgetBytes: number | null;
  open(report: Report, reportId: string | null, source: 'run' | 'history'): void;
  close(): void;
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
  report: null,
  reportId: null,
  source: null,
  section: 'outputs',
  onlyDiffs: false,
  kv: 'v',
  gridKind: 'tokens',
  heatmapStrategy: null,
  selected: null,
  metric: 'meanKl',
  budgetBytes: null,
  open: (report, reportId, source) => {
    const keep = (id: StrategyId | null): StrategyId | null => (id && report.settings.strategies.includes(id) ? id : null);
    set((s) => ({ report, reportId, source, selected: null, heatmapStrategy: keep(s.heatmapStrategy) }));
  },
  close: () => set({ report: null, reportId: null, source: null, selected: null }),
  setSection: (section) => set({ section }),
  setOnlyDiffs: (onlyDiffs) => set({ onlyDiffs }),
  setKv: (kv) => set({ kv, selected: null }),
  setGridKind: (gridKind) => set({ gridKind, selected: null }),
  setHeatmapStrategy: (heatmapStrategy) => set({ heatmapStrategy, selected: null }),
  select: (selected) => set({ selected }),
  setMetric: (metric) => set({ metric }),
  setBudget: (budgetBytes) => set({ budgetBytes }),
}));
