// The setup form: model, adapters, document, prompt, strategies, generation settings,
// with what main says about each (inspections, the token count, the memory estimate).
import { create } from 'zustand';
import type { CompareRequest } from '../../../shared/compare.js';
import { DEFAULT_SETTINGS } from '../../../shared/compare.js';
import type { DemoInputs, FolderPurpose, ModelInfo, RunEstimate, TokenCount } from '../../../shared/rpc.js';
import { fromDraft, isBlank, type DraftFields } from '../logic/draft.js';
import { baseName, countLimit, maxNewTokensProblem, needsTokenizer, strategyProblems, type GenerationSettings, type SetupAdapter, type SetupSnapshot } from '../logic/request.js';
import { EMPTY_SELECTION, selectedStrategies, selectionFromIds, type StrategySelection } from '../logic/strategy-selection.js';
import { errorMessage, rpc } from '../rpc/instance.js';

export interface AdapterEntry extends SetupAdapter {
  /** Stable key for React and for removal. */
  id: number;
}

export interface SetupState extends SetupSnapshot {
  adapters: AdapterEntry[];
  modelLoading: boolean;
  counting: boolean;
  countError: string | null;
  /** Where each folder browser was last (kept in the draft). */
  browseDirs: Partial<Record<FolderPurpose, string>>;
  /** True once the saved draft (or the preselected demo) is in the form: saving waits for it. */
  ready: boolean;
  /** Said after adding folders that are already in the list (they are not added twice). */
  adapterNotice: string | null;
  /** The form as it was before "Load demo" replaced it; Undo puts it back. */
  undo: DraftFields | null;
  /** 'preselected': a first visit got the demo; 'loaded': the user asked for it. */
  demo: 'preselected' | 'loaded' | null;
  estimate: RunEstimate | null;
  /** The strategies the estimate was made for, comma-joined (so a view can tell a stale one). */
  estimateFor: string;
  /** Every input the estimate was made from (estimateInputs): Run heeds only a current one. */
  estimateInputs: string;
  /** The estimate was made from a token count that stopped at its limit: it is a lower bound. */
  estimateAtLeast: boolean;
  estimateError: string | null;
  estimating: boolean;
  setModelDir(dir: string): Promise<void>;
  /** The user picked a model (the preselected demo's note goes). */
  chooseModel(dir: string): Promise<void>;
  setTokenizerDir(dir: string): void;
  addAdapters(dirs: readonly string[], names?: readonly string[]): Promise<void>;
  removeAdapter(id: number): void;
  renameAdapter(id: number, name: string): void;
  clearAdapterNotice(): void;
  setDocument(text: string): void;
  setPrompt(text: string): void;
  refreshCount(): Promise<void>;
  refreshEstimate(): Promise<void>;
  setStrategies(sel: StrategySelection): void;
  setSettings(patch: Partial<GenerationSettings>): void;
  setBrowseDir(purpose: FolderPurpose, dir: string): void;
  /** Fills the form with the demo; 'user' keeps the form it replaces for Undo. */
  loadDemo(demo: DemoInputs, how: 'preselect' | 'user'): Promise<void>;
  undoLoad(): Promise<void>;
  dismissDemoNotice(): void;
  /** Refills the form from a request (e.g. a reopened run). */
  applyRequest(request: CompareRequest): Promise<void>;
  /** Puts saved fields back into the form and checks them again. */
  restore(fields: DraftFields): Promise<void>;
  /** The form's persistent fields (what the draft keeps). */
  fields(): DraftFields;
  markReady(): void;
}

export const DEFAULT_GENERATION: GenerationSettings = {
  maxNewTokens: DEFAULT_SETTINGS.maxNewTokens,
  sampling: 'greedy',
  temperature: 0.7,
  topP: 0.95,
  seed: DEFAULT_SETTINGS.seed,
  dtype: DEFAULT_SETTINGS.dtype,
  device: DEFAULT_SETTINGS.device,
  stopAtEos: DEFAULT_SETTINGS.stopAtEos,
};

let nextAdapterId = 1;

function entry(dir: string, name: string): AdapterEntry {
  return { id: nextAdapterId++, dir, name, info: null, error: null, loading: true };
}

let modelSeq = 0;
let countSeq = 0;
let estimateSeq = 0;

/** What a memory estimate depends on, as one string: model, adapters, strategies, token counts, new tokens, dtype. */
export function estimateInputs(s: Pick<SetupState, 'modelDir' | 'adapters' | 'strategies' | 'tokenCount' | 'settings'>): string {
  return JSON.stringify([
    s.modelDir.trim(),
    s.adapters.map((a) => a.dir),
    selectedStrategies(s.strategies).ids,
    s.tokenCount?.documentTokens ?? null,
    s.tokenCount?.promptTokens ?? null,
    s.settings.maxNewTokens,
    s.settings.dtype,
  ]);
}

/**
 * The estimate's refusal, when it is for the form as it is now: an estimate made for other
 * inputs (the next one is on its way) neither blocks Run nor clears it (main checks the
 * budget again when the run starts).
 */
export function estimateProblem(s: Pick<SetupState, 'estimate' | 'estimateInputs' | 'modelDir' | 'adapters' | 'strategies' | 'tokenCount' | 'settings'>): string | null {
  if (!s.estimate || s.estimate.fits || !s.estimate.message) return null;
  return s.estimateInputs === estimateInputs(s) ? s.estimate.message : null;
}

export const useSetup = create<SetupState>((set, get) => {
  async function inspectAdapter(id: number): Promise<void> {
    const current = get().adapters.find((a) => a.id === id);
    const modelDir = get().modelDir.trim();
    if (!current) return;
    if (!modelDir) {
      patchAdapter(id, { loading: false, info: null, error: 'Choose the model first: adapters are checked against it.' });
      return;
    }
    patchAdapter(id, { loading: true, error: null });
    try {
      const info = await rpc().call('adapter.inspect', { modelDir, dir: current.dir });
      if (get().modelDir.trim() !== modelDir) return;
      // main resolved ~ and relative paths: show the folder it really read, once.
      const twin = get().adapters.find((a) => a.id !== id && a.dir === info.dir);
      if (twin) {
        set({ adapters: get().adapters.filter((a) => a.id !== id), adapterNotice: `${current.dir} is ${info.dir}, which is already in the list as ${twin.name}.` });
        return;
      }
      patchAdapter(id, { loading: false, info, error: null, dir: info.dir });
    } catch (e) {
      if (get().modelDir.trim() !== modelDir) return;
      patchAdapter(id, { loading: false, info: null, error: errorMessage(e) });
    }
  }

  function patchAdapter(id: number, patch: Partial<AdapterEntry>): void {
    set({ adapters: get().adapters.map((a) => (a.id === id ? { ...a, ...patch } : a)) });
  }

  function fill(f: DraftFields): void {
    set({
      modelDir: f.modelDir,
      tokenizerDir: f.tokenizerDir,
      adapters: f.adapters.map((a) => entry(a.dir, a.name)),
      documentText: f.documentText,
      promptText: f.promptText,
      strategies: f.strategies,
      settings: f.settings,
      browseDirs: f.browseDirs,
      model: null,
      modelError: null,
      tokenCount: null,
      countError: null,
      estimate: null,
      estimateError: null,
      adapterNotice: null,
    });
  }

  return {
    modelDir: '',
    model: null,
    modelError: null,
    modelLoading: false,
    tokenizerDir: '',
    adapters: [],
    documentText: '',
    promptText: '',
    tokenCount: null,
    counting: false,
    countError: null,
    strategies: EMPTY_SELECTION,
    settings: DEFAULT_GENERATION,
    browseDirs: {},
    ready: false,
    adapterNotice: null,
    undo: null,
    demo: null,
    estimate: null,
    estimateFor: '',
    estimateInputs: '',
    estimateAtLeast: false,
    estimateError: null,
    estimating: false,

    setModelDir: async (dir) => {
      const seq = ++modelSeq;
      const trimmed = dir.trim();
      set({ modelDir: dir, model: null, modelError: null, modelLoading: Boolean(trimmed), tokenCount: null, estimate: null });
      if (!trimmed) {
        set({ modelLoading: false });
        await Promise.all(get().adapters.map((a) => inspectAdapter(a.id)));
        return;
      }
      let model: ModelInfo | null = null;
      try {
        model = await rpc().call('model.inspect', { dir: trimmed });
        if (seq !== modelSeq) return;
        // main resolved ~ and relative paths: the field shows the folder it read.
        set({ model, modelDir: model.dir, modelLoading: false, modelError: null });
      } catch (e) {
        if (seq !== modelSeq) return;
        set({ model: null, modelLoading: false, modelError: errorMessage(e) });
      }
      await Promise.all([...get().adapters.map((a) => inspectAdapter(a.id)), get().refreshCount()]);
    },

    chooseModel: async (dir) => {
      if (get().demo === 'preselected') set({ demo: null });
      await get().setModelDir(dir);
    },

    setTokenizerDir: (tokenizerDir) => set({ tokenizerDir }),

    addAdapters: async (dirs, names) => {
      const known = new Map(get().adapters.map((a) => [a.dir, a.name]));
      const added: AdapterEntry[] = [];
      const repeated: string[] = [];
      dirs.forEach((dir, i) => {
        const d = dir.trim();
        if (!d) return;
        const already = known.get(d);
        if (already !== undefined) {
          repeated.push(`${d} is already in the list as ${already}.`);
          return;
        }
        const e = entry(d, names?.[i] ?? baseName(d));
        known.set(d, e.name);
        added.push(e);
      });
      set({ adapterNotice: repeated.length ? repeated.join(' ') : null, ...(get().demo === 'preselected' ? { demo: null } : {}) });
      if (!added.length) return;
      set({ adapters: [...get().adapters, ...added] });
      await Promise.all(added.map((a) => inspectAdapter(a.id)));
    },

    removeAdapter: (id) => set({ adapters: get().adapters.filter((a) => a.id !== id) }),
    renameAdapter: (id, name) => patchAdapter(id, { name }),
    clearAdapterNotice: () => set({ adapterNotice: null }),
    setDocument: (documentText) => set({ documentText, ...(get().demo === 'preselected' ? { demo: null } : {}) }),
    setPrompt: (promptText) => set({ promptText }),

    refreshCount: async () => {
      const seq = ++countSeq;
      const s = get();
      if (!s.model || !s.modelDir.trim() || needsTokenizer(s)) {
        set({ tokenCount: null, counting: false, countError: null });
        return;
      }
      set({ counting: true });
      try {
        const params = {
          modelDir: s.modelDir.trim(),
          documentText: s.documentText,
          promptText: s.promptText,
          // Past the context plus the new tokens, "over by at least N" is all the form says.
          limit: countLimit(s.model, s.settings.maxNewTokens),
          ...(s.tokenizerDir.trim() ? { tokenizerDir: s.tokenizerDir.trim() } : {}),
        };
        const tokenCount: TokenCount = await rpc().call('text.count', params);
        if (seq !== countSeq) return;
        set({ tokenCount, counting: false, countError: null });
      } catch (e) {
        if (seq !== countSeq) return;
        set({ counting: false, countError: errorMessage(e) });
      }
    },

    refreshEstimate: async () => {
      const seq = ++estimateSeq;
      const s = get();
      const { ids } = selectedStrategies(s.strategies);
      const usable =
        s.model !== null &&
        s.tokenCount !== null &&
        s.adapters.length > 0 &&
        s.adapters.every((a) => a.info !== null) &&
        strategyProblems(s.strategies, s.model, s.tokenCount).length === 0 &&
        maxNewTokensProblem(s.settings.maxNewTokens) === null;
      if (!usable || !s.tokenCount) {
        set({ estimate: null, estimateError: null, estimating: false });
        return;
      }
      set({ estimating: true });
      const inputs = estimateInputs(s);
      try {
        const estimate = await rpc().call('run.estimate', {
          modelDir: s.modelDir.trim(),
          adapterDirs: s.adapters.map((a) => a.dir),
          strategies: ids,
          documentTokens: s.tokenCount.documentTokens,
          promptTokens: s.tokenCount.promptTokens,
          maxNewTokens: s.settings.maxNewTokens,
          dtype: s.settings.dtype,
        });
        if (seq !== estimateSeq) return;
        set({ estimate, estimateFor: ids.join(','), estimateInputs: inputs, estimateAtLeast: !s.tokenCount.complete, estimateError: null, estimating: false });
      } catch (e) {
        if (seq !== estimateSeq) return;
        set({ estimate: null, estimateError: errorMessage(e), estimating: false });
      }
    },

    setStrategies: (strategies) => set({ strategies }),
    setSettings: (patch) => set({ settings: { ...get().settings, ...patch } }),
    setBrowseDir: (purpose, dir) => set({ browseDirs: { ...get().browseDirs, [purpose]: dir } }),

    loadDemo: async (demo, how) => {
      const before = get().fields();
      const replacing = how === 'user' && !isBlank(before);
      fill({
        modelDir: demo.modelDir,
        tokenizerDir: '',
        adapters: demo.adapterDirs.map((d) => ({ dir: d, name: baseName(d) })),
        documentText: demo.documentText,
        promptText: demo.promptText,
        strategies: selectionFromIds(demo.strategies),
        settings: { ...DEFAULT_GENERATION, maxNewTokens: demo.maxNewTokens },
        browseDirs: before.browseDirs,
      });
      set({ undo: replacing ? before : null, demo: how === 'preselect' ? 'preselected' : 'loaded' });
      await get().setModelDir(demo.modelDir);
    },

    undoLoad: async () => {
      const before = get().undo;
      if (!before) return;
      set({ undo: null, demo: null });
      await get().restore(before);
    },

    dismissDemoNotice: () => set({ demo: null, undo: null }),

    applyRequest: async (r) => {
      await get().restore({
        modelDir: r.modelDir,
        tokenizerDir: r.tokenizerDir ?? '',
        adapters: r.adapters.map((a) => ({ dir: a.dir, name: a.name ?? baseName(a.dir) })),
        documentText: r.documentText,
        promptText: r.promptText,
        strategies: selectionFromIds(r.strategies, r.fit),
        settings: {
          maxNewTokens: r.maxNewTokens,
          sampling: r.temperature > 0 ? 'sample' : 'greedy',
          temperature: r.temperature > 0 ? r.temperature : DEFAULT_GENERATION.temperature,
          topP: r.topP,
          seed: r.seed,
          dtype: r.dtype,
          device: r.device,
          stopAtEos: r.stopAtEos,
        },
        browseDirs: get().browseDirs,
      });
    },

    restore: async (f) => {
      fill(f);
      set({ demo: null });
      await get().setModelDir(f.modelDir);
    },

    fields: () => {
      const s = get();
      return {
        modelDir: s.modelDir,
        tokenizerDir: s.tokenizerDir,
        adapters: s.adapters.map((a) => ({ dir: a.dir, name: a.name })),
        documentText: s.documentText,
        promptText: s.promptText,
        strategies: s.strategies,
        settings: s.settings,
        browseDirs: s.browseDirs,
      };
    },

    markReady: () => set({ ready: true }),
  };
});
