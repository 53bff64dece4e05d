import { useEffect } from 'react';
import { count } from '../logic/format.js';
import { contextUse } from '../logic/request.js';
import { useSetup } from '../store/setup.js';

export function DocumentEditor(): React.JSX.Element {
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

  // Live token count, debounced while typing.
  useEffect(() => {
    if (!model) return undefined;
    const t = setTimeout(() => void refreshCount(), 300);
    return () => clearTimeout(t);
  }, [documentText, promptText, tokenizerDir, model, refreshCount]);

  const ctx = contextUse(tokenCount, maxNew);
  return (
    <section className="card doc-card" aria-labelledby="doc-h">
      <div className="card-head">
        <h2 id="doc-h">Document</h2>
        <span className="counts" data-testid="token-count" aria-live="polite">
          {!model ? (
            <span className="muted">choose a model to count tokens</span>
          ) : countError ? (
            <span className="error">{countError}</span>
          ) : tokenCount ? (
            <>
              {count(tokenCount.documentTokens)} document + {count(tokenCount.promptTokens)} prompt + {count(maxNew)} new ={' '}
              <strong className={ctx?.over ? 'error' : ctx?.near ? 'warn' : ''}>{count(ctx?.used ?? 0)}</strong> / {count(tokenCount.contextLimit)} tokens
              {counting && <span className="muted"> …</span>}
            </>
          ) : (
            <span className="muted">counting…</span>
          )}
        </span>
      </div>
      {ctx?.over && (
        <p className="error" role="alert" data-testid="context-warning">
          Over the model's context of {count(ctx.limit)} positions by {count(ctx.used - ctx.limit)}: shorten the document or the new tokens.
        </p>
      )}
      {ctx && !ctx.over && ctx.near && (
        <p className="warn" data-testid="context-warning">
          Near the model's context limit ({Math.round((100 * ctx.used) / ctx.limit)}% used).
        </p>
      )}
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
      <label htmlFor="prompt">Prompt (appended after the document)</label>
      <textarea id="prompt" className="prompt" rows={2} value={promptText} onChange={(e) => setPrompt(e.target.value)} placeholder=" Summarize the above:" spellCheck={false} data-testid="prompt" />
    </section>
  );
}
