import { useState } from 'react';
import { buildRequest } from '../logic/request.js';
import { useApp } from '../store/app.js';
import { isRunning, useRun } from '../store/run.js';
import { useSetup } from '../store/setup.js';
import { AdapterList } from './AdapterList.js';
import { DocumentEditor } from './DocumentEditor.js';
import { GenerationSettings } from './GenerationSettings.js';
import { ModelPicker } from './ModelPicker.js';
import { StrategyPicker } from './StrategyPicker.js';

function RunBar(): React.JSX.Element {
  const setup = useSetup();
  const demo = useApp((s) => s.info?.demo ?? null);
  const status = useRun((s) => s.status);
  const start = useRun((s) => s.start);
  const [showProblems, setShowProblems] = useState(false);
  const { request, problems } = buildRequest(setup);
  const running = isRunning(status);

  return (
    <div className="runbar">
      <button type="button" onClick={() => demo && void setup.loadDemo(demo)} disabled={!demo || running} title={demo ? 'The tiny fixture model, two adapters and the demo document' : 'The demo fixtures are not shipped with this build'} data-testid="load-demo">
        Load demo
      </button>
      <div className="problems" aria-live="polite">
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
    <div className="setup">
      <div className="setup-left">
        <ModelPicker />
        <AdapterList />
        <StrategyPicker />
        <GenerationSettings />
      </div>
      <div className="setup-right">
        <DocumentEditor />
        <RunBar />
      </div>
    </div>
  );
}
