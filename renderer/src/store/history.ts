// Saved runs: list, reopen, delete, export.
import { create } from 'zustand';
import type { ExportFormat, ExportedFile, HistoryEntry, SkippedHistoryFile } from '../../../shared/rpc.js';
import type { Report } from '../../../shared/report.js';
import { errorMessage, rpc } from '../rpc/instance.js';

interface HistoryState {
  entries: HistoryEntry[];
  /** Files of the history folder that are not readable saved runs, with the reason. */
  skipped: SkippedHistoryFile[];
  loaded: boolean;
  loading: boolean;
  error: string | null;
  /** Id of the entry being opened / exported, for busy states. */
  busy: string | null;
  /** Last export's outcome, for a status line. */
  notice: string | null;
  /** The export being prepared (a PDF takes tens of seconds), for a progress line. */
  exporting: { id: string; format: ExportFormat; startedAt: number } | null;
  refresh(): Promise<void>;
  setEntries(entries: HistoryEntry[]): void;
  get(id: string): Promise<Report | null>;
  remove(id: string): Promise<void>;
  exportRun(id: string, format: ExportFormat, native: boolean): Promise<void>;
}

/** Turns an exported file into bytes the browser can download. */
export function exportedBlobParts(file: ExportedFile): BlobPart {
  if (file.encoding === 'utf8') return file.content;
  const bin = atob(file.content);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

function download(file: ExportedFile): void {
  const blob = new Blob([exportedBlobParts(file)], { type: file.mimeType });
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = file.fileName;
  a.rel = 'noopener';
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export const useHistory = create<HistoryState>((set, get) => ({
  entries: [],
  skipped: [],
  loaded: false,
  loading: false,
  error: null,
  busy: null,
  notice: null,
  exporting: null,
  refresh: async () => {
    set({ loading: true });
    try {
      const entries = await rpc().call('history.list', {});
      // Best effort: a server without history.skipped (older) still lists the runs.
      const skipped = await rpc()
        .call('history.skipped', {})
        .catch((): SkippedHistoryFile[] => []);
      set({ entries, skipped, loaded: true, loading: false, error: null });
    } catch (e) {
      set({ loading: false, error: errorMessage(e) });
    }
  },
  setEntries: (entries) => set({ entries, loaded: true }),
  get: async (id) => {
    set({ busy: id, error: null });
    try {
      const report = await rpc().call('history.get', { id });
      return report;
    } catch (e) {
      set({ error: `Could not open the run: ${errorMessage(e)}` });
      return null;
    } finally {
      set({ busy: null });
    }
  },
  remove: async (id) => {
    try {
      await rpc().call('history.delete', { id });
      set({ entries: get().entries.filter((e) => e.id !== id) });
    } catch (e) {
      set({ error: `Could not delete the run: ${errorMessage(e)}` });
    }
  },
  exportRun: async (id, format, native) => {
    set({ busy: id, notice: null, error: null, exporting: { id, format, startedAt: Date.now() } });
    try {
      if (native) {
        const { path } = await rpc().call('report.saveAs', { id, format });
        set({ notice: path ? `Saved ${path}` : null });
      } else {
        const file = await rpc().call('report.export', { id, format });
        download(file);
        set({ notice: `Downloaded ${file.fileName}` });
      }
    } catch (e) {
      set({ error: `Export as ${format.toUpperCase()} failed: ${errorMessage(e)}` });
    } finally {
      set({ busy: null, exporting: null });
    }
  },
}));
