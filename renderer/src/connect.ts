// Wires the stores to the client's events and (re)loads what the app shows on connect.
import { restoreOnce, startPersistence } from './persist.js';
import type { ObservableRpcClient } from './rpc/types.js';
import { useApp } from './store/app.js';
import { useCache } from './store/cache.js';
import { useHistory } from './store/history.js';
import { attachRunEvents, useRun } from './store/run.js';
import { useResults } from './store/results.js';

export function connect(client: ObservableRpcClient): () => void {
  const onOpen = (): void => {
    // The draft (or the demo, which app.info describes) once the app's info is in.
    void useApp
      .getState()
      .loadInfo()
      .then(() => restoreOnce());
    void useHistory.getState().refresh();
    void useCache.getState().refresh();
    void useRun.getState().resume();
  };
  const offs = [
    attachRunEvents(client, ({ report, reportId }) => {
      useResults.getState().open(report, reportId, 'run');
    }),
    client.on('cache.changed', (usage) => useCache.getState().setUsage(usage)),
    client.on('history.changed', ({ entries }) => useHistory.getState().setEntries(entries)),
    client.onState((state) => {
      useApp.getState().setConnection(state);
      if (state === 'open') onOpen();
    }),
  ];
  offs.push(startPersistence());
  useApp.getState().setConnection(client.state);
  if (client.state === 'open') onOpen();
  return () => offs.forEach((off) => off());
}
