// The setup form ⇄ the SetupDraft main keeps (draft.get / draft.save), so that a reload
// or a restart finds the form as it was left: folders, adapters and their names, the
// document, the prompt, the strategies as typed, the settings, the open run, and where
// the folder browsers were.
import type { FolderPurpose, SetupDraft } from '../../../shared/rpc.js';
import type { GenerationSettings } from './request.js';
import { EMPTY_SELECTION, SIMPLE_KINDS, type SimpleKind, type StrategySelection } from './strategy-selection.js';

export interface DraftFields {
  modelDir: string;
  tokenizerDir: string;
  adapters: readonly { dir: string; name: string }[];
  documentText: string;
  promptText: string;
  strategies: StrategySelection;
  settings: GenerationSettings;
  browseDirs: Partial<Record<FolderPurpose, string>>;
}

/** NaN (a field being typed) travels as null: JSON has no NaN. */
function num(n: number): number | null {
  return Number.isFinite(n) ? n : null;
}

function back(n: number | null, fallback: number): number {
  return n === null ? Number.NaN : Number.isFinite(n) ? n : fallback;
}

export function toDraft(f: DraftFields, openReportId: string | null): SetupDraft {
  return {
    modelDir: f.modelDir,
    tokenizerDir: f.tokenizerDir,
    adapters: f.adapters.map((a) => ({ dir: a.dir, name: a.name })),
    documentText: f.documentText,
    promptText: f.promptText,
    strategies: {
      simple: SIMPLE_KINDS.filter((k) => f.strategies.simple[k]),
      lowrank: { ...f.strategies.lowrank },
      hybrid: { ...f.strategies.hybrid },
      pca: { ...f.strategies.pca },
      fit: { ...f.strategies.fit },
    },
    settings: {
      maxNewTokens: num(f.settings.maxNewTokens),
      sampling: f.settings.sampling,
      temperature: num(f.settings.temperature),
      topP: num(f.settings.topP),
      seed: num(f.settings.seed),
      dtype: f.settings.dtype,
      device: f.settings.device,
      stopAtEos: f.settings.stopAtEos,
    },
    openReportId,
    browseDirs: { ...f.browseDirs },
  };
}

export function fromDraft(d: SetupDraft, defaults: GenerationSettings): DraftFields {
  const simple = Object.fromEntries(SIMPLE_KINDS.map((k) => [k, k === 'exact' || d.strategies.simple.includes(k)])) as Record<SimpleKind, boolean>;
  return {
    modelDir: d.modelDir,
    tokenizerDir: d.tokenizerDir,
    adapters: d.adapters.map((a) => ({ ...a })),
    documentText: d.documentText,
    promptText: d.promptText,
    strategies: {
      simple,
      lowrank: { ...d.strategies.lowrank },
      hybrid: { ...d.strategies.hybrid },
      // Drafts saved before pca and fit existed have neither.
      pca: d.strategies.pca ? { ...d.strategies.pca } : { ...EMPTY_SELECTION.pca },
      fit: d.strategies.fit ? { ...d.strategies.fit } : { ...EMPTY_SELECTION.fit },
    },
    settings: {
      maxNewTokens: back(d.settings.maxNewTokens, defaults.maxNewTokens),
      sampling: d.settings.sampling,
      temperature: back(d.settings.temperature, defaults.temperature),
      topP: back(d.settings.topP, defaults.topP),
      seed: back(d.settings.seed, defaults.seed),
      dtype: d.settings.dtype,
      device: d.settings.device,
      stopAtEos: d.settings.stopAtEos,
    },
    browseDirs: { ...d.browseDirs },
  };
}

/** Nothing a person typed or chose: the first visit (the demo is then preselected). */
export function isBlank(f: Pick<DraftFields, 'modelDir' | 'adapters' | 'documentText' | 'promptText'>): boolean {
  return !f.modelDir.trim() && f.adapters.length === 0 && !f.documentText.trim() && !f.promptText.trim();
}
