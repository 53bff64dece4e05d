import { useEffect } from 'react';
import { count } from '../logic/format.js';
import { contextMessage, contextUse, maxNewTokensProblem, needsTokenizer, TOKENIZER_NEEDED } from '../logic/request.js';
import { useSetup } from '../store/setup.js';

/** Quiet time before the live count: longer for long texts, so typing in a big paste does not recount every key. */
export function countDelayMs(chars: number): number {
  return 300 + Math.min(1200, Math.round(chars / 4000));
}

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
