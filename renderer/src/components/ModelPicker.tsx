import { compactCount, formatBytes } from '../logic/format.js';
import { TOKENIZER_NEEDED } from '../logic/request.js';
import { useApp } from '../store/app.js';
import { useSetup } from '../store/setup.js';
import { FolderField } from './FolderField.js';

export function ModelPicker(): React.JSX.Element {
  const modelDir = useSetup((s) => s.modelDir);
  const model = useSetup((s) => s.model);
  const error = useSetup((s) => s.modelError);
  const loading = useSetup((s) => s.modelLoading);
  const tokenizerDir = useSetup((s) => s.tokenizerDir);
  const chooseModel = useSetup((s) => s.chooseModel);
  const workingDir = useApp((s) => s.info?.workingDir);
  const setTokenizerDir = useSetup((s) => s.setTokenizerDir);
  const refreshCount = useSetup((s) => s.refreshCount);

  return (
    <section className="card" aria-labelledby="model-h">
      <h2 id="model-h">Base model</h2>
      <FolderField
        id="model-dir"
        label="Model folder (config.json + safetensors)"
        purpose="model"
        value={modelDir}
        placeholder="/path/to/model"
        onSubmit={(p) => p[0] && void chooseModel(p[0])}
        testId="model-dir"
        hint={workingDir ? `~ is your home folder; other relative paths start at ${workingDir}` : undefined}
      />
      {loading && <p className="muted">Reading config and weight headers…</p>}
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {model && (
        <div data-testid="model-summary">
          <dl className="facts">
            <dt>Name</dt>
            <dd title={model.dir}>
              {model.name} <span className="muted">({model.architecture})</span>
            </dd>
            <dt>Layers</dt>
            <dd>{model.numLayers}</dd>
            <dt>Heads / KV</dt>
            <dd>
              {model.numHeads} / {model.numKvHeads} × {model.headDim}
            </dd>
            <dt>Params</dt>
            <dd>{compactCount(model.parameters)}</dd>
            <dt>Stored</dt>
            <dd>
              {model.storedDtype} · {formatBytes(model.weightsBytes)}
            </dd>
            <dt>Context</dt>
            <dd>{model.maxPositionEmbeddings.toLocaleString('en-US')}</dd>
          </dl>
          {model.warnings.map((w) => (
            <p key={w} className="warn">
              {w}
            </p>
          ))}
          {!model.hasTokenizer && !tokenizerDir.trim() && (
            <p className="warn" data-testid="tokenizer-needed">
              {TOKENIZER_NEEDED}
            </p>
          )}
        </div>
      )}
      {(model && !model.hasTokenizer) || tokenizerDir ? (
        <FolderField
          id="tokenizer-dir"
          label="Tokenizer folder"
          purpose="tokenizer"
          value={tokenizerDir}
          onSubmit={(p) => {
            setTokenizerDir(p[0] ?? '');
            void refreshCount();
          }}
          testId="tokenizer-dir"
        />
      ) : null}
    </section>
  );
}
