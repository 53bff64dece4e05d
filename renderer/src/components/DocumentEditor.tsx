import { useEffect, useMemo, useState } from 'react';
import { count, formatBytes } from '../logic/format.js';
import { contextMessage, contextUse, maxNewTokensProblem, needsTokenizer, TOKENIZER_NEEDED } from '../logic/request.js';
import { useSetup } from '../store/setup.js';

/** Quiet time before the live count: longer for long texts, so typing in a big paste does not recount every key. */
export function countDelayMs(chars: number): number {
  return 300 + Math.min(1200, Math.round(chars / 4000));
}

/**
 * Past this many characters the document is shown as a preview, not in the textarea:
 * Chromium needs tens of seconds to select or replace all of a 4 MB textarea's text.
 */
export const LARGE_DOCUMENT_CHARS = 300_000;
const PREVIEW_CHARS = 4000;

function LargeDocument({ text, onEdit, onClear }: { text: string; onEdit(): void; onClear(): void }): React.JSX.Element {
  // UTF-8 size of up to megabytes of text: measured once per text, not on every render.
  const bytes = useMemo(() => new Blob([text]).size, [text]);
  return (
    <div className="large-doc" data-testid="large-document">
      <p>
        <strong>A large document</strong>: {count(text.length)} characters ({formatBytes(bytes)}). It is kept as pasted; editing it here would be slow, so it is shown in part.
      </p>
      <pre className="large-doc-preview">
        {text.slice(0, PREVIEW_CHARS)}
        <span className="muted">{`\n… ${count(text.length - PREVIEW_CHARS)} more characters`}</span>
      </pre>
      <p className="row">
        <button type="button" onClick={onClear} data-testid="clear-document">
          Clear the document
        </button>
        <button type="button" onClick={onEdit} data-testid="edit-large-document">
          Edit it here anyway
        </button>
      </p>
    </div>
  );
}

/** A text file read in the browser (large documents are easier opened than pasted). */
function OpenFile({ onText }: { onText(text: string): void }): React.JSX.Element {
  return (
    <label className="small-btn file-open">
      Open a text file…
      <input
        type="file"
        accept=".txt,.md,.markdown,.csv,.json,.html,text/*"
        className="sr-only"
        data-testid="open-document-file"
        onChange={(e) => {
          const file = e.target.files?.[0];
          if (file) void file.text().then(onText);
          e.target.value = '';
        }}
      />
    </label>
  );
}

export function DocumentEditor(): React.JSX.Element {
  const [editLarge, setEditLarge] = useState(false);
  const documentText = useSetup((s) => s.documentText);
  const promptText = useSetup((s) => s.promptText);
  const tokenizerDir = useSetup((s) => s.tokenizerDir);
  const model = useSetup((s) => s.model);
  const tokenCount = useSetup((s) => s.tokenCount);
  const counting = useSetup((s) => s.counting);
  const countError = useSetup((s) => s.countError);
  const maxNew = useSetup((s) => s.settings.maxNewTokens);
  const setDocument = useSetup((s) => s.setDocument);
  const setPrompt = useSetup((s) => s.setPrompt);
  const refreshCount = useSetup((s) => s.refreshCount);
  const noTokenizer = needsTokenizer({ model, tokenizerDir });

  // Live token count, debounced while typing (the limit depends on max new tokens too).
  useEffect(() => {
    if (!model) return undefined;
    const t = setTimeout(() => void refreshCount(), countDelayMs(documentText.length + promptText.length));
    return () => clearTimeout(t);
  }, [documentText, promptText, tokenizerDir, model, maxNew, refreshCount]);

  const ctx = contextUse(tokenCount, maxNew);
  const newOk = maxNewTokensProblem(maxNew) === null;
  const ge = tokenCount && !tokenCount.complete ? '≥ ' : '';
  return (
    <section className="card doc-card" aria-labelledby="doc-h">
      <div className="card-head">
        <h2 id="doc-h">Document</h2>
        <span className="counts" data-testid="token-count" aria-live="polite">
          {!model ? (
            <span className="muted">choose a model to count tokens</span>
          ) : noTokenizer ? (
            <span className="warn">{TOKENIZER_NEEDED}</span>
          ) : countError ? (
            <span className="error">{countError}</span>
          ) : tokenCount ? (
            <>
              {ge}
              {count(tokenCount.documentTokens)} document + {tokenCount.complete ? count(tokenCount.promptTokens) : '…'} prompt + {newOk ? count(maxNew) : '—'} new ={' '}
              <strong className={ctx?.over ? 'error' : ctx?.near ? 'warn' : ''}>
                {ge}
                {count(ctx?.used ?? 0)}
              </strong>{' '}
              / {count(tokenCount.contextLimit)} tokens
              {counting && <span className="muted"> …</span>}
            </>
          ) : (
            <span className="muted">counting…</span>
          )}
        </span>
      </div>
      {ctx?.over && (
        <p className="error" role="alert" data-testid="context-warning">
          {contextMessage(ctx)}
          {ctx.atLeast && <span className="muted"> (Counting stopped there: the exact figure does not matter until the text fits.)</span>}
        </p>
      )}
      {ctx && !ctx.over && ctx.near && (
        <p className="warn" data-testid="context-warning">
          Near the model's context limit ({Math.round((100 * ctx.used) / ctx.limit)}% used).
        </p>
      )}
      {documentText.length > LARGE_DOCUMENT_CHARS && !editLarge ? (
        <LargeDocument text={documentText} onEdit={() => setEditLarge(true)} onClear={() => setDocument('')} />
      ) : (
        <>
          <label htmlFor="document" className="sr-only">
            Document text
          </label>
          <textarea
            id="document"
            className="document"
            value={documentText}
            onChange={(e) => setDocument(e.target.value)}
            placeholder="Paste the long document every adapter reads (prefilled once with the base model)…"
            spellCheck={false}
            data-testid="document"
          />
        </>
      )}
      <div className="doc-tools">
        <OpenFile
          onText={(t) => {
            setEditLarge(false);
            setDocument(t);
          }}
        />
      </div>
      <label htmlFor="prompt">Prompt (appended after the document)</label>
      <textarea id="prompt" className="prompt" rows={2} value={promptText} onChange={(e) => setPrompt(e.target.value)} placeholder=" Summarize the above:" spellCheck={false} data-testid="prompt" />
    </section>
  );
}
