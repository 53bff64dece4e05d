// The setup form: model, adapters, document, prompt, strategies, generation settings.
import { create } from 'zustand';
import type { CompareRequest } from '../../../shared/compare.js';
import { DEFAULT_SETTINGS } from '../../../shared/compare.js';
import type { DemoInputs, ModelInfo, TokenCount } from '../../../shared/rpc.js';
import { baseName, type GenerationSettings, type SetupAdapter, type SetupSnapshot } from '../logic/request.js';
import { EMPTY_SELECTION, selectionFromIds, type StrategySelection } from '../logic/strategy-selection.js';
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
  setModelDir(dir: string): Promise<void>;
  setTokenizerDir(dir: string): void;
  addAdapters(dirs: readonly string[], names?: readonly string[]): Promise<void>;
  removeAdapter(id: number): void;
  renameAdapter(id: number, name: string): void;
  setDocument(text: string): void;
  setPrompt(text: string): void;
  refreshCount(): Promise<void>;
  setStrategies(sel: StrategySelection): void;
  setSettings(patch: Partial<GenerationSettings>): void;
  loadDemo(demo: DemoInputs): Promise<void>;
  /** Refills the form from a request (e.g. a reopened run). */
  applyRequest(request: CompareRequest): Promise<void>;
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

/** Entries for new adapter folders (duplicates of `known` and of each other dropped), not yet inspected. */
function newEntries(dirs: readonly string[], names?: readonly string[], known = new Set<string>()): AdapterEntry[] {
  const out: AdapterEntry[] = [];
  dirs.forEach((dir, i) => {
    const d = dir.trim();
    if (!d || known.has(d)) return;
    known.add(d);
    out.push({ id: nextAdapterId++, dir: d, name: names?.[i] ?? baseName(d), info: null, error: null, loading: true });
  });
  return out;
}
let modelSeq = 0;
let countSeq = 0;

export const useSetup = create<SetupState>((set, get) => {
  async function inspectAdapter(id: number): Promise<void> {
    const entry = get().adapters.find((a) => a.id === id);
    const modelDir = get().modelDir.trim();
    if (!entry) return;
    if (!modelDir) {
      patchAdapter(id, { loading: false, info: null, error: 'Choose the model first: adapters are checked against it.' });
      return;
    }
    patchAdapter(id, { loading: true, error: null });
    try {
      const info = await rpc().call('adapter.inspect', { modelDir, dir: entry.dir });
      if (get().modelDir.trim() !== modelDir) return;
      patchAdapter(id, { loading: false, info, error: null });
    } catch (e) {
      if (get().modelDir.trim() !== modelDir) return;
      patchAdapter(id, { loading: false, info: null, error: errorMessage(e) });
    }
  }

  function patchAdapter(id: number, patch: Partial<AdapterEntry>): void {
    set({ adapters: get().adapters.map((a) => (a.id === id ? { ...a, ...patch } : a)) });
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

    setModelDir: async (dir) => {
      const seq = ++modelSeq;
      const trimmed = dir.trim();
      set({ modelDir: dir, model: null, modelError: null, modelLoading: Boolean(trimmed), tokenCount: null });
      if (!trimmed) {
        set({ modelLoading: false });
        return;
      }
      let model: ModelInfo | null = null;
      try {
        model = await rpc().call('model.inspect', { dir: trimmed });
        if (seq !== modelSeq) return;
        set({ model, modelLoading: false, modelError: null });
      } catch (e) {
        if (seq !== modelSeq) return;
        set({ model: null, modelLoading: false, modelError: errorMessage(e) });
      }
      await Promise.all([...get().adapters.map((a) => inspectAdapter(a.id)), get().refreshCount()]);
    },

    setTokenizerDir: (tokenizerDir) => {
      set({ tokenizerDir });
    },

    addAdapters: async (dirs, names) => {
      const known = new Set(get().adapters.map((a) => a.dir));
      const added = newEntries(dirs, names, known);
      if (!added.length) return;
      set({ adapters: [...get().adapters, ...added] });
      await Promise.all(added.map((a) => inspectAdapter(a.id)));
    },

    removeAdapter: (id) => set({ adapters: get().adapters.filter((a) => a.id !== id) }),
    renameAdapter: (id, name) => patchAdapter(id, { name }),
    setDocument: (documentText) => set({ documentText }),
    setPrompt: (promptText) => set({ promptText }),

    refreshCount: async () => {
      const seq = ++countSeq;
      const { modelDir, model, tokenizerDir, documentText, promptText } = get();
      if (!model || !modelDir.trim()) {
        set({ tokenCount: null, counting: false, countError: null });
        return;
      }
      set({ counting: true });
      try {
        const params = { modelDir: modelDir.trim(), documentText, promptText, ...(tokenizerDir.trim() ? { tokenizerDir: tokenizerDir.trim() } : {}) };
        const tokenCount: TokenCount = await rpc().call('text.count', params);
        if (seq !== countSeq) return;
        set({ tokenCount, counting: false, countError: null });
      } catch (e) {
        if (seq !== countSeq) return;
        set({ counting: false, countError: errorMessage(e) });
      }
    },

    setStrategies: (strategies) => set({ strategies }),
    setSettings: (patch) => set({ settings: { ...get().settings, ...patch } }),

    loadDemo: async (demo) => {
      set({
        adapters: newEntries(demo.adapterDirs),
        documentText: demo.documentText,
        promptText: demo.promptText,
        tokenizerDir: '',
        strategies: selectionFromIds(demo.strategies),
        settings: { ...DEFAULT_GENERATION, maxNewTokens: demo.maxNewTokens },
      });
      await get().setModelDir(demo.modelDir);
    },

    applyRequest: async (r) => {
      set({
        adapters: newEntries(
          r.adapters.map((a) => a.dir),
          r.adapters.map((a) => a.name ?? baseName(a.dir)),
        ),
        documentText: r.documentText,
        promptText: r.promptText,
        tokenizerDir: r.tokenizerDir ?? '',
        strategies: selectionFromIds(r.strategies),
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
      });
      await get().setModelDir(r.modelDir);
    },
  };
});
