// What identifies a tokenizer folder's version without reading it: the stamps of the two
// files a tokenizer is loaded from. Keys the tokenizers kept on the main thread
// (tokenize-async.ts) and in the workers (worker/tasks.ts).
import { filesStamp } from './file-stamp.js';

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json'] as const;

export function tokenizerFolderStamp(dir: string): Promise<string> {
  return filesStamp(dir, TOKENIZER_FILES);
}
