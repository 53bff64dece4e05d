import { useState } from 'react';
import { buildRequest } from '../logic/request.js';
import { useApp } from '../store/app.js';
import { isRunning, useRun } from '../store/run.js';
import { DEFAULT_GENERATION, estimateProblem, useSetup } from '../store/setup.js';
import { EMPTY_SELECTION } from '../logic/strategy-selection.js';
import { AdapterList } from './AdapterList.js';
import { DocumentEditor } from './DocumentEditor.js';
import { GenerationSettings } from './GenerationSettings.js';
import { MemoryEstimate } from './MemoryEstimate.js';
import { ModelPicker } from './ModelPicker.js';
import { StrategyPicker } from './StrategyPicker.js';

/** The demo on the first screen: preselected on a first visit, and Undo after "Load demo" replaced a setup. */
function DemoBanner(): React.JSX.Element | null {
  const demo = useSetup((s) => s.demo);
  const undo = useSetup((s) => s.undo);
  const undoLoad = useSetup((s) => s.undoLoad);
  const dismiss = useSetup((s) => s.dismissDemoNotice);
  const restore = useSetup((s) => s.restore);
  const browseDirs = useSetup((s) => s.browseDirs);
  if (!demo) return null;
  return (
    <div className="banner banner-info demo-banner" role="status" data-testid="demo-banner">
      {demo === 'preselected' ? (
        <span>
          <strong>The demo is filled in</strong>: a small model, its adapters and a document, ready to run. Run it as it is, or choose your own model and adapters below.
        </span>
      ) : undo ? (
        <span>
          <strong>The demo replaced your setup.</strong> Undo puts your model, adapters, document and settings back.
        </span>
      ) : (
        <span>
          <strong>The demo is loaded.</strong>
        </span>
      )}
      {undo && (
        <button type="button" onClick={() => void undoLoad()} data-testid="undo-demo">
          Undo
        </button>
      )}
      {demo === 'preselected' && (
        <button
          type="button"
          onClick={() =>
            void restore({ modelDir: '', tokenizerDir: '', adapters: [], documentText: '', promptText: '', strategies: EMPTY_SELECTION, settings: DEFAULT_GENERATION, browseDirs })
          }
          data-testid="clear-demo"
        >
          Start from an empty form
        </button>
      )}
      <button type="button" className="icon" aria-label="Dismiss" onClick={dismiss}>
        ×
      </button>
    </div>
  );
}

function RunBar(): React.JSX.Element {
  const setup = useSetup();
  const info = useApp((s) => s.info);
  const demo = info?.demo ?? null;
  const status = useRun((s) => s.status);
  const start = useRun((s) => s.start);
  const [showProblems, setShowProblems] = useState(false);
  const built = buildRequest(setup, info?.engine ?? null);
  const problems = [...built.problems];
  const overBudget = estimateProblem(setup);
  if (overBudget) problems.push(overBudget);
  const request = problems.length === 0 ? built.request : null;
  const running = isRunning(status);

  return (
    <div className="runbar">
      <button
        type="button"
        onClick={() => demo && void setup.loadDemo(demo, 'user')}
        disabled={!demo || running}
        title={demo ? 'Fill the form with the demo model, its adapters and document (Undo puts your setup back)' : 'The demo is not shipped with this build'}
        data-testid="load-demo"
      >
        Load demo
      </button>
      <div className="problems" aria-live="polite" data-testid="run-problems">
        {problems.length > 0 && (
          <button type="button" className="linklike warn" onClick={() => setShowProblems(!showProblems)} aria-expanded={showProblems}>
            {problems.length === 1 ? problems[0] : `${problems.length} things to fix before running`}
          </button>
        )}
        {showProblems && problems.length > 1 && (
          <ul className="problem-list">
            {problems.map((p) => (
              <li key={p}>{p}</li>
            ))}
          </ul>
        )}
        {problems.length === 0 && request && (
          <span className="muted">
            {request.adapters.length} adapter{request.adapters.length === 1 ? '' : 's'} × {request.strategies.length} strategies, {request.maxNewTokens} new tokens
          </span>
        )}
      </div>
      <button type="button" className="primary" disabled={!request || running} onClick={() => request && void start(request)} data-testid="run-button">
        {running ? 'Running…' : 'Run comparison'}
      </button>
    </div>
  );
}

export function SetupPanel(): React.JSX.Element {
  return (
    <div className="setup-wrap">
      <DemoBanner />
      <div className="setup">
        <div className="setup-left">
          <ModelPicker />
          <AdapterList />
          <StrategyPicker />
          <GenerationSettings />
        </div>
        <div className="setup-right">
          <DocumentEditor />
          <MemoryEstimate />
          <RunBar />
        </div>
      </div>
    </div>
  );
}
