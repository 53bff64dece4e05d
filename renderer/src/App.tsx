import { useEffect } from 'react';
import { CacheUsagePanel } from './components/CacheUsage.js';
import { ErrorBoundary } from './components/ErrorBoundary.js';
import { HistoryPanel } from './components/HistoryPanel.js';
import { ResultsView } from './components/ResultsView.js';
import { RunProgress } from './components/RunProgress.js';
import { SetupPanel } from './components/SetupPanel.js';
import { formatBytes } from './logic/format.js';
import { useApp, type Tab } from './store/app.js';
import { useCache } from './store/cache.js';
import { useResults } from './store/results.js';
import { isRunning, useRun } from './store/run.js';

const TABS: { id: Tab; label: string; key: string }[] = [
  { id: 'setup', label: 'Setup', key: '1' },
  { id: 'results', label: 'Results', key: '2' },
  { id: 'history', label: 'History', key: '3' },
  { id: 'cache', label: 'Cache', key: '4' },
];

function StatusBar(): React.JSX.Element {
  const info = useApp((s) => s.info);
  const connection = useApp((s) => s.connection);
  const usage = useCache((s) => s.usage);
  return (
    <div className="status" data-testid="status">
      <span className={`dot dot-${connection}`} aria-hidden="true" />
      <span>{connection === 'open' ? 'connected' : connection === 'connecting' ? 'connecting…' : 'disconnected'}</span>
      {info && (
        <span title={info.backend.fallbackReason ?? undefined}>
          {info.backend.kind.toUpperCase()} · {info.backend.device}
          {info.backend.memoryBytes !== null ? ` · ${formatBytes(info.backend.memoryBytes)}` : ''}
        </span>
      )}
      {usage && (
        <span>
          cache {formatBytes(usage.usedBytes)} / {formatBytes(usage.budgetBytes)}
        </span>
      )}
    </div>
  );
}

export function App(): React.JSX.Element {
  const tab = useApp((s) => s.tab);
  const setTab = useApp((s) => s.setTab);
  const connection = useApp((s) => s.connection);
  const infoError = useApp((s) => s.infoError);
  const status = useRun((s) => s.status);
  const hasReport = useResults((s) => s.report !== null);

  // When a run starts, show its grid; Alt+1..4 switch tabs.
  useEffect(() => {
    if (status === 'starting') setTab('results');
  }, [status, setTab]);
  useEffect(() => {
    const onKey = (e: KeyboardEvent): void => {
      if (!e.altKey || e.ctrlKey || e.metaKey) return;
      const t = TABS.find((x) => x.key === e.key);
      if (t) {
        e.preventDefault();
        setTab(t.id);
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [setTab]);

  return (
    <div className="app">
      <header className="topbar">
        <h1 className="brand">AdapterLens</h1>
        <nav className="tabs" role="tablist" aria-label="Views">
          {TABS.map((t) => (
            <button
              key={t.id}
              type="button"
              role="tab"
              id={`tab-${t.id}`}
              aria-selected={tab === t.id}
              aria-controls={`panel-${t.id}`}
              className={tab === t.id ? 'tab active' : 'tab'}
              onClick={() => setTab(t.id)}
              title={`Alt+${t.key}`}
              data-testid={`tab-${t.id}`}
            >
              {t.label}
              {t.id === 'results' && isRunning(status) && <span className="pulse" aria-label="running" />}
              {t.id === 'results' && !isRunning(status) && hasReport && <span className="badge-dot" aria-hidden="true" />}
            </button>
          ))}
        </nav>
        <StatusBar />
      </header>
      {connection !== 'open' && (
        <div className="banner banner-warn" role="status">
          {connection === 'connecting' ? 'Connecting to AdapterLens…' : 'Disconnected from AdapterLens. Reload the page once the server runs again.'}
        </div>
      )}
      {infoError && (
        <div className="banner banner-error" role="alert">
          Could not read the app's settings: {infoError}
        </div>
      )}
      <RunProgress />
      <main className="content" id={`panel-${tab}`} role="tabpanel" aria-labelledby={`tab-${tab}`}>
        <ErrorBoundary what={`the ${tab} view`} key={tab}>
          {tab === 'setup' && <SetupPanel />}
          {tab === 'results' && <ResultsView />}
          {tab === 'history' && <HistoryPanel />}
          {tab === 'cache' && <CacheUsagePanel />}
        </ErrorBoundary>
      </main>
    </div>
  );
}
