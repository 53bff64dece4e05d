// The checks a comparison request gets before the runner loads a single weight, all off
// the main thread: the model's config and headers (a worker, or the loaded model's when its
// files are unchanged), the tokenizer (checked in a worker, its vocabulary against the
// model's), then the document's length against the context: first a lower bound on its
// token count computed from its length alone (a 10 MB document for a 4096-token model is
// refused at once, not after minutes of tokenizing), then the real count, tokenized on a
// worker thread with a time limit and cancel.
//
// The tokenizer remembers what it encoded here (TokenizerHandle.encodeDocumentAsync), so the
// runner's own encode of the same text right after costs nothing.
import type { CompareRequest } from '../../shared/compare.js';
import { CompareInputError } from './input-error.js';
import type { EngineSession } from './session.js';
import { checkTokenizerVocab } from '../model/tokenizer-vocab.js';

function tooLong(positions: number, atLeast: boolean, context: number): CompareInputError {
  return new CompareInputError(
    `This comparison needs ${atLeast ? 'at least ' : ''}${positions} positions (document + prompt + new tokens) ` +
      `but the model supports at most ${context}: shorten the document or the prompt, or lower the number of new tokens.`,
  );
}

export async function preflightRequest(session: EngineSession, request: CompareRequest, signal?: AbortSignal): Promise<void> {
  const checkpoint = await session.openCheckpoint(request.modelDir, signal);
  const cfg = checkpoint.config.native;
  const tokenizer = await session.loadTokenizer(request.tokenizerDir ?? request.modelDir, signal);
  checkTokenizerVocab(tokenizer, { configFile: checkpoint.config.file, vocabSize: cfg.vocabSize });
  const context = cfg.maxPositionEmbeddings;
  const window = checkpoint.config.slidingWindow;
  const newTokens = Math.max(0, request.maxNewTokens);
  const atLeast = tokenizer.minDocumentTokens(request.documentText) + tokenizer.minPromptTokens(request.promptText) + newTokens;
  if (atLeast > context) throw tooLong(atLeast, true, context);
  const document = await tokenizer.encodeDocumentAsync(request.documentText, { signal });
  const prompt = await tokenizer.encodePromptAsync(request.promptText, { signal });
  const positions = document.length + prompt.length + newTokens;
  if (positions > context) throw tooLong(positions, false, context);
  if (window !== null && document.length > window) {
    throw new CompareInputError(`the document has ${document.length} tokens but this checkpoint attends over a sliding window of ${window}; shorten the document to ${window} tokens.`);
  }
}
