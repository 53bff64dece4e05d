// The view in the URL's hash: "#tab=results&run=<id>&q=hong&hideA=qv-r8&sort=kl…".
// A reload keeps it (the hash survives reloads) and a copied link opens the same run in
// the same view. Only what differs from the defaults is written.
import { parseStrategy, strategyId, type StrategyId } from '../../../shared/strategies.js';
import type { Tab } from '../store/app.js';
import { DEFAULT_VIEW, type ResultsSection, type ResultsView } from '../store/results.js';
import { SORT_LABELS, type OutputSort } from './output-view.js';
import { METRIC_LABELS, type QualityMetric } from './scatter.js';

export interface HashState {
  tab: Tab | null;
  /** History id of the run on screen. */
  run: string | null;
  view: Partial<ResultsView>;
}

const TABS: readonly Tab[] = ['setup', 'results', 'history', 'cache'];
const SECTIONS: readonly ResultsSection[] = ['outputs', 'errors', 'memory', 'quality'];
const RUN_ID = /^\d{8}T\d{9}Z-[0-9a-f]{8}$/;

function strategies(values: readonly string[]): StrategyId[] {
  const out: StrategyId[] = [];
  for (const x of values) {
    try {
      out.push(strategyId(parseStrategy(x)));
    } catch {
      // a hand-edited link: ignore what is not a strategy
    }
  }
  return out;
}

function oneOf<T extends string>(v: string | null, values: readonly T[]): T | undefined {
  return v !== null && (values as readonly string[]).includes(v) ? (v as T) : undefined;
}

export function parseHash(hash: string): HashState {
  const p = new URLSearchParams(hash.replace(/^#/, ''));
  const view: Partial<ResultsView> = {};
  const section = oneOf(p.get('sec'), SECTIONS);
  if (section) view.section = section;
  if (p.get('diff') === '1') view.onlyDiffs = true;
  const q = p.get('q');
  if (q) view.query = q.slice(0, 200);
  // Repeated keys (hideA=a&hideA=b): a name may hold any character, commas included.
  if (p.has('hideA')) view.hiddenAdapters = p.getAll('hideA').filter(Boolean);
  if (p.has('hideS')) view.hiddenStrategies = strategies(p.getAll('hideS'));
  const sort = oneOf(p.get('sort'), Object.keys(SORT_LABELS) as OutputSort[]);
  if (sort) view.sort = sort;
  const kv = oneOf(p.get('kv'), ['k', 'v'] as const);
  if (kv) view.kv = kv;
  const grid = oneOf(p.get('grid'), ['tokens', 'heads'] as const);
  if (grid) view.gridKind = grid;
  const hm = strategies(p.getAll('hm'))[0];
  if (hm) view.heatmapStrategy = hm;
  if (p.get('scale') === 'own') view.oneScale = false;
  if (p.get('log') === '1') view.logScale = true;
  const metric = oneOf(p.get('metric'), Object.keys(METRIC_LABELS) as QualityMetric[]);
  if (metric) view.metric = metric;
  const run = p.get('run');
  return { tab: oneOf(p.get('tab'), TABS) ?? null, run: run && RUN_ID.test(run) ? run : null, view };
}

export function formatHash(tab: Tab, run: string | null, v: ResultsView): string {
  const p = new URLSearchParams();
  if (tab !== 'setup') p.set('tab', tab);
  if (run) p.set('run', run);
  const d = DEFAULT_VIEW;
  if (v.section !== d.section) p.set('sec', v.section);
  if (v.onlyDiffs) p.set('diff', '1');
  if (v.query.trim()) p.set('q', v.query);
  for (const a of v.hiddenAdapters) p.append('hideA', a);
  for (const s of v.hiddenStrategies) p.append('hideS', s);
  if (v.sort !== d.sort) p.set('sort', v.sort);
  if (v.kv !== d.kv) p.set('kv', v.kv);
  if (v.gridKind !== d.gridKind) p.set('grid', v.gridKind);
  if (v.heatmapStrategy) p.set('hm', v.heatmapStrategy);
  if (!v.oneScale) p.set('scale', 'own');
  if (v.logScale) p.set('log', '1');
  if (v.metric !== d.metric) p.set('metric', v.metric);
  const s = p.toString();
  return s ? `#${s}` : '';
}
