// What the main thread and a task worker (task-worker.ts) say to each other, and how an
// error crosses the thread boundary. Structured clone keeps only an Error's message and
// name, so errors are sent as plain records and rebuilt on arrival as the same classes
// (LoadError, ReportFormatError, fs errors with code and path): the RPC layer maps them
// to the same codes whether the work ran here or in a worker.
import type { CheckpointInfo } from '../model/checkpoint.js';
import type { OpenedAdapter } from '../model/adapter.js';
import type { NativeModelConfig } from '../engine/native-types.js';
import type { TokenizerSummary } from '../model/tokenizer.js';
import type { HistoryEntry } from '../../shared/rpc.js';
import type { Report } from '../../shared/report.js';
import type { FileStamp } from '../model/file-stamp.js';

/** Every task a worker runs: its input and its result. */
export interface TaskMap {
  /** SHA-256 of one file, with the stamp it had while hashed (progress in bytes). */
  'hash-file': { input: { file: string }; output: { sha256: string; stamp: FileStamp } };
  'open-checkpoint': { input: { dir: string }; output: CheckpointInfo };
  'open-adapter': { input: { dir: string; base: NativeModelConfig }; output: OpenedAdapter };
  /** Loads and validates a tokenizer folder; what the main thread needs to know about it. */
  'tokenizer-summary': { input: { dir: string }; output: TokenizerSummary };
  /** continuation: a piece of a longer text after a cut at a paragraph break (tokenize-split.ts). */
  'encode': { input: { dir: string; text: string; kind: 'document' | 'prompt' | 'continuation' }; output: { ids: Int32Array } };
  /** Each group of ids decoded to its text (text.decode: the UI's view of token ids; a run's generated pieces and texts). */
  'decode': { input: { dir: string; groups: number[][]; skipSpecialTokens?: boolean }; output: { texts: string[] } };
  /** A saved run's history entry, after the full report schema (history-store.ts). */
  'history-entry': { input: { file: string; id: string; maxBytes: number }; output: HistoryEntry };
  'history-report': { input: { file: string; id: string; maxBytes: number }; output: Report };
  /** A saved run rendered as text (json: the report itself, pretty-printed), with its creation time for the file name. */
  'history-render': { input: { file: string; id: string; maxBytes: number; format: 'json' | 'html' | 'md' | 'csv' }; output: { content: string; createdAt: string } };
}

export type TaskName = keyof TaskMap;
export type TaskInput<N extends TaskName> = TaskMap[N]['input'];
export type TaskOutput<N extends TaskName> = TaskMap[N]['output'];

export type ToWorker = { id: number; task: TaskName; input: unknown };
export type FromWorker =
  | { id: number; kind: 'progress'; done: number; total: number }
  | { id: number; kind: 'result'; value: unknown }
  | { id: number; kind: 'error'; error: SerializedError };

export interface SerializedError {
  name: string;
  message: string;
  code?: string;
  path?: string;
  /** LoadError's parts. */
  file?: string;
  field?: string;
  detail?: string;
}
