// The strategy picker's state, and the strategy ids it stands for.
import { parseStrategy, strategyId, type ParsedStrategy, type StrategyId } from '../../../shared/strategies.js';

export const SIMPLE_KINDS = ['exact', 'base', 'seed-minikv', 'lragent', 'delta-int8', 'delta-int4'] as const;
export type SimpleKind = (typeof SIMPLE_KINDS)[number];

export interface StrategySelection {
  simple: Record<SimpleKind, boolean>;
  /** lowrank:<k> for each k in the comma list. */
  lowrank: { on: boolean; ranks: string };
  /** hybrid:<n> for each n in the comma list. */
  hybrid: { on: boolean; layers: string };
}

export const EMPTY_SELECTION: StrategySelection = {
  simple: { exact: true, base: false, 'seed-minikv': false, lragent: false, 'delta-int8': false, 'delta-int4': false },
  lowrank: { on: false, ranks: '8' },
  hybrid: { on: false, layers: '2' },
};

function parseList(text: string, what: string, min: number): { values: number[]; error: string | null } {
  const parts = text.split(',').map((p) => p.trim()).filter(Boolean);
  if (parts.length === 0) return { values: [], error: `${what}: give at least one number` };
  const values: number[] = [];
  for (const p of parts) {
    if (!/^\d+$/.test(p) || Number(p) < min) return { values: [], error: `${what}: "${p}" is not a whole number ≥ ${min}` };
    values.push(Number(p));
  }
  return { values: [...new Set(values)], error: null };
}

/** The ids selected, `exact` first (always: everything is measured against it), and what is wrong. */
export function selectedStrategies(sel: StrategySelection): { ids: StrategyId[]; errors: string[] } {
  const ids: StrategyId[] = ['exact'];
  const errors: string[] = [];
  for (const k of SIMPLE_KINDS) if (k !== 'exact' && sel.simple[k]) ids.push(k);
  if (sel.lowrank.on) {
    const r = parseList(sel.lowrank.ranks, 'lowrank ranks', 1);
    if (r.error) errors.push(r.error);
    for (const v of r.values) ids.push(`lowrank:${v}`);
  }
  if (sel.hybrid.on) {
    const r = parseList(sel.hybrid.layers, 'hybrid exact layers', 0);
    if (r.error) errors.push(r.error);
    for (const v of r.values) ids.push(`hybrid:${v}`);
  }
  return { ids, errors };
}

export function selectionFromIds(ids: readonly string[]): StrategySelection {
  const sel: StrategySelection = {
    simple: { ...EMPTY_SELECTION.simple },
    lowrank: { on: false, ranks: EMPTY_SELECTION.lowrank.ranks },
    hybrid: { on: false, layers: EMPTY_SELECTION.hybrid.layers },
  };
  const ranks: number[] = [];
  const layers: number[] = [];
  for (const id of ids) {
    let p: ParsedStrategy;
    try {
      p = parseStrategy(id);
    } catch {
      continue;
    }
    if (p.kind === 'lowrank') ranks.push(p.rank);
    else if (p.kind === 'hybrid') layers.push(p.exactLayers);
    else sel.simple[p.kind] = true;
  }
  if (ranks.length) sel.lowrank = { on: true, ranks: ranks.join(', ') };
  if (layers.length) sel.hybrid = { on: true, layers: layers.join(', ') };
  sel.simple.exact = true;
  return sel;
}

export { strategyId };
