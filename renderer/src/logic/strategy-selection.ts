// The strategy picker's state, and the strategy ids it stands for.
import type { FitRequest } from '../../../shared/compare.js';
import { parseStrategy, strategyId, type ParsedStrategy, type StrategyId } from '../../../shared/strategies.js';

export const SIMPLE_KINDS = ['exact', 'base', 'seed-minikv', 'lragent', 'delta-int8', 'delta-int4'] as const;
export type SimpleKind = (typeof SIMPLE_KINDS)[number];

export interface StrategySelection {
  simple: Record<SimpleKind, boolean>;
  /** lowrank:<k> for each k in the comma list. */
  lowrank: { on: boolean; ranks: string };
  /** hybrid:<n> for each n in the comma list. */
  hybrid: { on: boolean; layers: string };
  /** pca:<b> for each b in the comma list (b may carry a fitted weight list: 1.5@0.12.3…). */
  pca: { on: boolean; bits: string };
  /** Fit to budget (the `fit` row): a byte budget per adapter and/or a target KL (and top-1). */
  fit: { on: boolean; budgetBytes: string; targetKl: string; minTop1: string };
}

export const EMPTY_SELECTION: StrategySelection = {
  simple: { exact: true, base: false, 'seed-minikv': false, lragent: false, 'delta-int8': false, 'delta-int4': false },
  lowrank: { on: false, ranks: '8' },
  hybrid: { on: false, layers: '2' },
  pca: { on: false, bits: '2' },
  fit: { on: false, budgetBytes: '', targetKl: '0.001', minTop1: '0.99' },
};

/** The fit the selection asks for (null: none), and what is wrong with its fields. */
export function selectedFit(sel: StrategySelection): { fit: FitRequest | null; errors: string[] } {
  if (!sel.fit.on) return { fit: null, errors: [] };
  const errors: string[] = [];
  const fit: FitRequest = {};
  const num = (text: string, what: string, ok: (x: number) => boolean, rule: string): number | undefined => {
    const t = text.trim();
    if (!t) return undefined;
    const x = Number(t);
    if (!Number.isFinite(x) || !ok(x)) {
      errors.push(`Fit to budget: ${what} "${t}" is not ${rule}.`);
      return undefined;
    }
    return x;
  };
  const b = num(sel.fit.budgetBytes, 'the budget', (x) => Number.isInteger(x) && x > 0, 'a whole number of bytes above 0');
  const k = num(sel.fit.targetKl, 'the target KL', (x) => x > 0, 'a number above 0');
  const t = num(sel.fit.minTop1, 'the top-1 floor', (x) => x >= 0 && x <= 1, 'between 0 and 1');
  if (b !== undefined) fit.budgetBytes = b;
  if (k !== undefined) fit.targetKl = k;
  if (t !== undefined) fit.minTop1 = t;
  if (fit.budgetBytes === undefined && fit.targetKl === undefined && errors.length === 0) {
    errors.push('Fit to budget: give a budget in bytes, a target KL, or both.');
  }
  return { fit: errors.length ? null : fit, errors };
}

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
  if (sel.pca.on) {
    const items = sel.pca.bits.split(',').map((x) => x.trim()).filter(Boolean);
    if (items.length === 0) errors.push('pca bits per value: give at least one number');
    for (const it of items) {
      try {
        ids.push(strategyId(parseStrategy(`pca:${it}`)));
      } catch {
        errors.push(`pca bits per value: "${it}" is not a number above 0 and at most 16`);
      }
    }
  }
  if (sel.fit.on) {
    errors.push(...selectedFit(sel).errors);
    ids.push('fit');
  }
  return { ids: [...new Set(ids)], errors };
}

/** The selection that asks for `ids`; `fit` carries the targets of a fit row (a report's, to run it again). */
export function selectionFromIds(ids: readonly string[], fit?: FitRequest): StrategySelection {
  const sel: StrategySelection = {
    simple: { ...EMPTY_SELECTION.simple },
    lowrank: { on: false, ranks: EMPTY_SELECTION.lowrank.ranks },
    hybrid: { on: false, layers: EMPTY_SELECTION.hybrid.layers },
    pca: { on: false, bits: EMPTY_SELECTION.pca.bits },
    fit: { ...EMPTY_SELECTION.fit },
  };
  const ranks: number[] = [];
  const layers: number[] = [];
  const bits: string[] = [];
  for (const id of ids) {
    let p: ParsedStrategy;
    try {
      p = parseStrategy(id);
    } catch {
      continue;
    }
    if (p.kind === 'lowrank') ranks.push(p.rank);
    else if (p.kind === 'hybrid') layers.push(p.exactLayers);
    else if (p.kind === 'pca') bits.push(strategyId(p).slice('pca:'.length));
    else if (p.kind === 'fit') {
      sel.fit = fit && (fit.budgetBytes !== undefined || fit.targetKl !== undefined)
        ? { on: true, budgetBytes: fit.budgetBytes !== undefined ? String(fit.budgetBytes) : '', targetKl: fit.targetKl !== undefined ? String(fit.targetKl) : '', minTop1: fit.minTop1 !== undefined ? String(fit.minTop1) : '' }
        : { ...sel.fit, on: true };
    }
    else sel.simple[p.kind] = true;
  }
  if (bits.length) sel.pca = { on: true, bits: bits.join(', ') };
  if (ranks.length) sel.lowrank = { on: true, ranks: ranks.join(', ') };
  if (layers.length) sel.hybrid = { on: true, layers: layers.join(', ') };
  sel.simple.exact = true;
  return sel;
}

export { strategyId };
