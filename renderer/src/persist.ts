// What survives a reload of the page or a restart of the app:
//   - the setup draft (model, adapters, document, prompt, strategies, settings, the run on
//     screen, where the folder browsers were), kept by main through draft.get / draft.save;
//   - the view of the results (tab, run, section, search, filters, sort, scales), in the
//     URL's hash, so that a copied link opens the same view too.
// On a first visit (no draft) the demo is preselected when this build ships it.
import { fromDraft, isBlank, toDraft } from './logic/draft.js';
import { formatHash, parseHash } from './logic/view-hash.js';
import { rpc } from './rpc/instance.js';
import { useApp } from './store/app.js';
import { useHistory } from './store/history.js';
import { DEFAULT_VIEW, useResults, type ResultsView } from './store/results.js';
import { DEFAULT_GENERATION, useSetup, type SetupState } from './store/setup.js';

/** Quiet time after the last change before the draft is saved (a 4 MB document is sent whole). */
const SAVE_DELAY_MS = 700;

const PERSISTED: (keyof SetupState)[] = ['modelDir', 'tokenizerDir', 'adapters', 'documentText', 'promptText', 'strategies', 'settings', 'browseDirs'];

function viewOf(s: ResultsView): ResultsView {
  const v = {} as Record<string, unknown>;
  for (const k of Object.keys(DEFAULT_VIEW)) v[k] = (s as unknown as Record<string, unknown>)[k];
  return v as unknown as ResultsView;
}

let started = false;

/** Puts the saved draft (or the demo) and the hash's view on screen, once per page load. */
export async function restoreOnce(): Promise<void> {
  if (started) return;
  started = true;
  const hash = parseHash(window.location.hash);
  useResults.getState().setView(hash.view);
  if (hash.tab) useApp.getState().setTab(hash.tab);
  const setup = useSetup.getState();
  let openId = hash.run;
  try {
    const draft = await rpc().call('draft.get', {});
    const fields = draft ? fromDraft(draft, DEFAULT_GENERATION) : null;
    openId ??= draft?.openReportId ?? null;
    const demo = useApp.getState().info?.demo ?? null;
    let filling: Promise<void> = Promise.resolve();
    if (fields && !isBlank(fields)) filling = setup.restore(fields);
    else if (demo) filling = setup.loadDemo(demo, 'preselect');
    else if (fields) filling = setup.restore(fields); // folders browsed, nothing chosen yet
    // The fields are in the form now (the checks go on): saving may start.
    useSetup.getState().markReady();
    await filling;
  } catch {
    useSetup.getState().markReady();
  }
  if (openId && !useResults.getState().report) {
    const report = await useHistory.getState().get(openId);
    if (report && !useResults.getState().report) useResults.getState().open(report, openId, 'history');
  }
}

/** Saves the draft after changes and mirrors the view into the hash; returns the function that stops it. */
export function startPersistence(): () => void {
  let timer: ReturnType<typeof setTimeout> | null = null;
  let lastSaved = '';
  const flush = (): void => {
    if (timer) clearTimeout(timer);
    timer = null;
    if (!useSetup.getState().ready) return;
    const draft = toDraft(useSetup.getState().fields(), useResults.getState().reportId);
    const json = JSON.stringify(draft);
    if (json === lastSaved) return;
    lastSaved = json;
    rpc()
      .call('draft.save', { draft })
      .catch(() => {
        lastSaved = ''; // try again with the next change
      });
  };
  const schedule = (): void => {
    if (!useSetup.getState().ready) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(flush, SAVE_DELAY_MS);
  };
  const writeHash = (): void => {
    const r = useResults.getState();
    const hash = formatHash(useApp.getState().tab, r.reportId, viewOf(r));
    if (hash !== window.location.hash && !(hash === '' && window.location.hash === '')) {
      window.history.replaceState(null, '', `${window.location.pathname}${window.location.search}${hash}`);
    }
  };
  const offs = [
    useSetup.subscribe((s, prev) => {
      if (s.ready !== prev.ready || PERSISTED.some((k) => s[k] !== prev[k])) schedule();
    }),
    useResults.subscribe((s, prev) => {
      if (s.reportId !== prev.reportId) schedule();
      writeHash();
    }),
    useApp.subscribe((s, prev) => {
      if (s.tab !== prev.tab) writeHash();
    }),
  ];
  window.addEventListener('pagehide', flush);
  return () => {
    offs.forEach((off) => off());
    window.removeEventListener('pagehide', flush);
    flush();
  };
}
