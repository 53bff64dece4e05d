// A tokenizer for another vocabulary would make the engine read embeddings out of range:
// the one check, where a count, a run's preflight or the session meets a tokenizer and a model.
import path from 'node:path';
import { LoadError } from './errors.js';

export function checkTokenizerVocab(tokenizer: { dir: string; vocabSize: number }, model: { configFile: string; vocabSize: number }): void {
  if (tokenizer.vocabSize <= model.vocabSize) return;
  throw new LoadError({
    file: path.join(tokenizer.dir, 'tokenizer.json'),
    message: `this tokenizer has ${tokenizer.vocabSize} token ids but the model (${model.configFile}) has a vocabulary of ${model.vocabSize}; pick the tokenizer that belongs to this model.`,
  });
}
