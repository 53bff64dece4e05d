// What a pool worker can do (the TaskMap of protocol.ts), each task a thin call into the
// module that owns the work. Modules are imported on first use; tokenizers are kept per
// folder while their files do not change, so counting as a user types re-parses nothing.
import type { FileStamp } from '../model/file-stamp.js';
import type { LensTokenizer } from '../model/tokenizer.js';
import type { TaskInput, TaskName, TaskOutput } from './protocol.js';

type Progress = (done: number, total: number) => void;
export interface TaskResult {
  value: unknown;
  transfer: ArrayBuffer[];
}

const tokenizers = new Map<string, { stamp: string; tokenizer: Promise<LensTokenizer> }>();

async function tokenizerStamp(dir: string): Promise<string> {
  const { tokenizerFolderStamp } = await import('../model/tokenizer-stamp.js');
  return tokenizerFolderStamp(dir);
}

async function tokenizerFor(dir: string): Promise<LensTokenizer> {
  const stamp = await tokenizerStamp(dir);
  const hit = tokenizers.get(dir);
  if (hit && hit.stamp === stamp) return hit.tokenizer;
  const { loadTokenizer } = await import('../model/tokenizer.js');
  const tokenizer = loadTokenizer(dir);
  tokenizer.catch(() => tokenizers.delete(dir));
  if (tokenizers.size >= 4) tokenizers.clear();
  tokenizers.set(dir, { stamp, tokenizer });
  return tokenizer;
}

type Handler<N extends TaskName> = (input: TaskInput<N>, progress: Progress) => Promise<{ value: TaskOutput<N>; transfer?: ArrayBuffer[] }>;

const HANDLERS: { [N in TaskName]: Handler<N> } = {
  'hash-file': async ({ file }, progress) => {
    const { hashFile } = await import('../model/hash-file.js');
    const value: { sha256: string; stamp: FileStamp } = await hashFile(file, progress);
    return { value };
  },
  'open-checkpoint': async ({ dir }) => {
    const { openCheckpoint } = await import('../model/checkpoint.js');
    return { value: await openCheckpoint(dir) };
  },
  'open-adapter': async ({ dir, base }) => {
    const { openAdapter } = await import('../model/adapter.js');
    return { value: await openAdapter(dir, base) };
  },
  'tokenizer-summary': async ({ dir }) => ({ value: (await tokenizerFor(dir)).summary() }),
  encode: async ({ dir, text, kind }) => {
    const tok = await tokenizerFor(dir);
    const ids = Int32Array.from(kind === 'document' ? tok.encodeDocument(text) : kind === 'continuation' ? tok.encodeContinuation(text) : tok.encodePrompt(text));
    return { value: { ids }, transfer: [ids.buffer as ArrayBuffer] };
  },
  decode: async ({ dir, groups, skipSpecialTokens }) => {
    const tok = await tokenizerFor(dir);
    return { value: { texts: groups.map((ids) => tok.decode(ids, { skipSpecialTokens })) } };
  },
  'history-entry': async ({ file, id, maxBytes }) => {
    const { historyEntryOf, readHistoryFile } = await import('../rpc/history-file.js');
    const { report, fileBytes } = await readHistoryFile(file, maxBytes);
    return { value: historyEntryOf(id, report, fileBytes) };
  },
  'history-report': async ({ file, maxBytes }) => {
    const { readHistoryFile } = await import('../rpc/history-file.js');
    return { value: (await readHistoryFile(file, maxBytes)).report };
  },
  'history-render': async ({ file, maxBytes, format }) => {
    const { readHistoryFile } = await import('../rpc/history-file.js');
    const { report } = await readHistoryFile(file, maxBytes);
    if (format === 'json') return { value: { content: JSON.stringify(report, null, 1), createdAt: report.createdAt } };
    const { renderReport } = await import('../report/index.js');
    return { value: { content: await renderReport(report, format), createdAt: report.createdAt } };
  },
};

export async function runTask(task: TaskName, input: unknown, progress: Progress): Promise<TaskResult> {
  const handler = HANDLERS[task] as Handler<TaskName> | undefined;
  if (!handler) throw new Error(`unknown worker task "${String(task)}"`);
  const { value, transfer } = await handler(input as never, progress);
  return { value, transfer: transfer ?? [] };
}
