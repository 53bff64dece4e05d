// Staged run progress: which stages are done, running or still to come.
import { STAGE_LABELS, type CompareProgress, type CompareStage } from '../../../shared/compare.js';

export const STAGE_ORDER: CompareStage[] = ['load', 'tokenize', 'base-prefill', 'adapter-prefill', 'encode', 'measure', 'generate', 'score'];

/** encode and measure alternate item by item: one step of the pipeline. */
function group(stage: CompareStage): number {
  const i = STAGE_ORDER.indexOf(stage);
  return stage === 'measure' ? STAGE_ORDER.indexOf('encode') : i;
}

export type StageStatus = 'pending' | 'active' | 'done';

export interface StageView {
  stage: CompareStage;
  label: string;
  status: StageStatus;
  done: number;
  total: number;
  detail: string | null;
}

export function stageViews(seen: Partial<Record<CompareStage, CompareProgress>>, current: CompareStage | null, finished: boolean): StageView[] {
  const currentGroup = current ? group(current) : -1;
  return STAGE_ORDER.map((stage) => {
    const p = seen[stage];
    let status: StageStatus = 'pending';
    if (finished && p) status = 'done';
    else if (p) {
      if (group(stage) < currentGroup) status = 'done';
      else if (stage === current) status = 'active';
      else status = p.total > 0 && p.done >= p.total ? 'done' : 'active';
    }
    const total = p?.total ?? 0;
    // A stage that is over shows its full count (progress events are throttled).
    const done = status === 'done' ? total : (p?.done ?? 0);
    return { stage, label: STAGE_LABELS[stage], status, done, total, detail: p?.detail ?? null };
  });
}

/** Overall fraction for one bar: finished stages plus the current one's share. */
export function overallFraction(views: readonly StageView[]): number {
  const n = views.length;
  let sum = 0;
  for (const v of views) {
    if (v.status === 'done') sum += 1;
    else if (v.status === 'active' && v.total > 0) sum += Math.min(1, v.done / v.total);
  }
  return n ? sum / n : 0;
}
