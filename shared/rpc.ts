// The RPC contract between the renderer and main: one typed map of methods and one of
// events. It is the only way the two talk. Two transports carry it unchanged:
//   - Electron: the preload exposes `window.adapterlens` (an RpcBridge) over ipc;
//   - `adapterlens serve`: a WebSocket carrying the wire messages below.
// Main validates every argument against a schema (main/rpc/schemas.ts) before use;
// the types here say what a well-behaved caller sends.
import type { CacheUsage } from './cache-stats.js';
import type { CompareProgress, CompareRequest, CompareStage, TokenEvent } from './compare.js';
import type { Report } from './report.js';
import type { StrategyId } from './strategies.js';

// ---------------------------------------------------------------------------------
// Payload types

export interface BackendInfo {
  kind: 'cpu' | 'cuda';
  /** e.g. "CPU, 16 threads" or "NVIDIA H200". */
  device: string;
  /** Why the engine is not on the GPU when a GPU build was wanted; null otherwise. */
  fallbackReason: string | null;
  /** Device memory in bytes where known (GPU memory, or the machine's RAM for the CPU). */
  memoryBytes: number | null;
}

/** The embedded default comparison: the tiny fixture model, two adapters, a document. */
export interface DemoInputs {
  modelDir: string;
  adapterDirs: string[];
  documentText: string;
  promptText: string;
  strategies: StrategyId[];
  maxNewTokens: number;
}

/** One choice of a setting, and why the engine cannot take it (for the form to say). */
export interface OptionAvailability<T extends string> {
  id: T;
  available: boolean;
  /** Why not, in plain words; null when available. */
  reason: string | null;
}

/** What this engine can compute: the setup form disables the rest, saying why. */
export interface EngineCapabilities {
  backend: 'cpu' | 'cuda';
  /** Compute dtypes (the CPU engine computes fp32 only). */
  dtypes: OptionAvailability<CompareRequest['dtype']>[];
  devices: OptionAvailability<CompareRequest['device']>[];
}

export interface AppInfo {
  version: string;
  engineVersion: string;
  backend: BackendInfo;
  transport: 'electron' | 'websocket';
  capabilities: {
    /** Native folder pickers and save dialogs (Electron only). */
    nativeDialogs: boolean;
    /** report.export can render 'pdf' here. */
    pdf: boolean;
  };
  /** The embedded demo (models/demo); null when its files are not in this copy. */
  demo: DemoInputs | null;
  /** Why there is no demo (which file is missing and how to get it); null when there is one. */
  demoUnavailable: string | null;
  /** Where finished runs are saved. */
  historyDir: string;
  /** Cache budget of this session's cache manager. */
  cacheBudgetBytes: number;
  engine: EngineCapabilities;
  /** The folder relative paths typed into the app are resolved against (main's working folder); `~` is the home folder. */
  workingDir: string;
}

export interface ModelInfo {
  dir: string;
  name: string;
  architecture: string;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  hiddenSize: number;
  intermediateSize: number;
  vocabSize: number;
  maxPositionEmbeddings: number;
  parameters: number;
  /** e.g. "BF16" or "BF16+F32". */
  storedDtype: string;
  /** Bytes of the weights as stored. */
  weightsBytes: number;
  format: 'single' | 'sharded';
  /** tokenizer.json found in the folder (else a tokenizer folder must be given). */
  hasTokenizer: boolean;
  warnings: string[];
}

export interface AdapterInfo {
  dir: string;
  name: string;
  rank: number;
  alpha: number;
  useRslora: boolean;
  targetModules: string[];
  /** Layers with at least one adapted module. */
  layers: number[];
  maxRank: number;
  bytes: number;
  parameterCount: number;
  dtype: string;
  baseModelNameOrPath: string | null;
  warnings: string[];
}

export interface TokenCount {
  /** With `limit`: the count reached when counting stopped (then `complete` is false). */
  documentTokens: number;
  promptTokens: number;
  /** The model's max_position_embeddings. */
  contextLimit: number;
  /**
   * False when counting stopped at the call's `limit`: documentTokens and promptTokens are
   * then lower bounds that together reach the limit (the text was not fully tokenized).
   */
  complete: boolean;
}

/** The memory a comparison needs, estimated before Run against the cache budget. */
export interface MemoryEstimateItem {
  id: string;
  /** For people, e.g. "2 exact caches". */
  item: string;
  bytes: number;
  /** Counts against the cache budget (weights do not). */
  inCacheBudget: boolean;
}

export interface RunEstimate {
  /** What counts against the cache budget. */
  cacheBytes: number;
  /** Everything, weights included. */
  totalBytes: number;
  budgetBytes: number;
  fits: boolean;
  /** Why it does not fit, with the numbers; null when it fits. */
  message: string | null;
  items: MemoryEstimateItem[];
}

export type FolderPurpose = 'model' | 'adapter' | 'tokenizer';

/**
 * The setup form as the user left it, kept by main (draft.save) so that a reload or a
 * restart of the app finds it again. Numbers the user is still typing may be null.
 */
export interface SetupDraft {
  modelDir: string;
  tokenizerDir: string;
  adapters: { dir: string; name: string }[];
  documentText: string;
  promptText: string;
  strategies: {
    /** exact, base, seed-minikv, lragent, delta-int8, delta-int4 that are ticked. */
    simple: string[];
    lowrank: { on: boolean; ranks: string };
    hybrid: { on: boolean; layers: string };
    pca?: { on: boolean; bits: string };
    fit?: { on: boolean; budgetBytes: string; targetKl: string; minTop1: string };
  };
  settings: {
    maxNewTokens: number | null;
    sampling: 'greedy' | 'sample';
    temperature: number | null;
    topP: number | null;
    seed: number | null;
    dtype: CompareRequest['dtype'];
    device: CompareRequest['device'];
    stopAtEos: boolean;
  };
  /** The saved run on screen (reopened after a reload), or null. */
  openReportId: string | null;
  /** Where each folder browser was last. */
  browseDirs: Partial<Record<FolderPurpose, string>>;
}

export interface FolderEntry {
  name: string;
  path: string;
  /** 'model': has config.json; 'adapter': has adapter_config.json. */
  kind: 'model' | 'adapter' | 'folder';
}

export interface FolderListing {
  dir: string;
  parent: string | null;
  entries: FolderEntry[];
}

/** A file in the history folder that is not a readable saved run, and why. */
export interface SkippedHistoryFile {
  file: string;
  reason: string;
}

export interface HistoryEntry {
  id: string;
  createdAt: string;
  modelName: string;
  adapterNames: string[];
  strategies: StrategyId[];
  documentTokens: number;
  backend: 'cpu' | 'cuda';
  /** Bytes of the saved report JSON. */
  fileBytes: number;
  /** The document's first words (whitespace collapsed, at most ~120 characters). */
  documentStart: string;
  /** The prompt (whitespace collapsed, at most ~120 characters). */
  promptStart: string;
}

export type ExportFormat = 'json' | 'html' | 'md' | 'csv' | 'pdf';
export const EXPORT_FORMATS: readonly ExportFormat[] = ['json', 'html', 'md', 'csv', 'pdf'];

export interface ExportedFile {
  /** Suggested file name, e.g. "adapterlens-2026-11-28T16-00-00.html". */
  fileName: string;
  mimeType: string;
  /** 'base64' for binary formats (pdf). */
  encoding: 'utf8' | 'base64';
  content: string;
}

export interface ActiveRun {
  runId: string;
  request: CompareRequest;
  /** The last progress event, null before the first. */
  progress: CompareProgress | null;
  /** Milliseconds since the run started (a clock-independent way to show its true elapsed time). */
  elapsedMs: number;
  /** The last progress of every stage seen so far. */
  stages: Partial<Record<CompareStage, CompareProgress>>;
  /** Tokens generated so far, in order (the first ACTIVE_RUN_TOKEN_LIMIT of them). */
  tokens: TokenEvent[];
}

/** ActiveRun.tokens holds at most this many events (a tab that reconnects later misses the rest). */
export const ACTIVE_RUN_TOKEN_LIMIT = 65536;

// ---------------------------------------------------------------------------------
// Methods: name → params and result

type NoParams = Record<string, never>;

export interface RpcMethods {
  'app.info': { params: NoParams; result: AppInfo };
  /** Reads config.json and the safetensors headers; no weights are loaded. */
  'model.inspect': { params: { dir: string }; result: ModelInfo };
  /** Validates an adapter against the model; a bad adapter is an INVALID_INPUT error saying why. */
  'adapter.inspect': { params: { modelDir: string; dir: string }; result: AdapterInfo };
  /**
   * Token counts of the document (with BOS) and the prompt, with the model's tokenizer,
   * counted off the main thread. With `limit`, counting stops once document + prompt reach
   * it (result.complete false): send the context plus new tokens to learn "too long" fast.
   */
  'text.count': {
    params: { modelDir: string; tokenizerDir?: string; documentText: string; promptText: string; limit?: number };
    result: TokenCount;
  };
  /** Decodes groups of token ids to text with a tokenizer folder (token labels of the heatmaps). */
  'text.decode': { params: { tokenizerDir: string; groups: number[][] }; result: { texts: string[] } };
  /** The memory a run would need (main's estimate, the one run.start checks), against the cache budget. */
  'run.estimate': {
    params: {
      modelDir: string;
      adapterDirs: string[];
      strategies: StrategyId[];
      documentTokens: number;
      promptTokens: number;
      maxNewTokens: number;
      dtype: CompareRequest['dtype'];
    };
    result: RunEstimate;
  };
  /** The saved setup draft; null when there is none yet. */
  'draft.get': { params: NoParams; result: SetupDraft | null };
  'draft.save': { params: { draft: SetupDraft }; result: { saved: boolean } };
  /** Lists a folder's sub-folders (for picking folders where there is no native dialog). */
  'fs.browse': { params: { dir?: string }; result: FolderListing };
  /** Native folder picker (Electron only; NOT_SUPPORTED elsewhere). Empty when cancelled. */
  'dialog.pickFolders': {
    params: { purpose: FolderPurpose; multiple: boolean };
    result: { paths: string[] };
  };
  /** Starts a run; its progress, tokens and end arrive as events. BUSY while another runs. */
  'run.start': { params: { request: CompareRequest }; result: { runId: string } };
  /** Cancels a run; false when it had already ended. */
  'run.cancel': { params: { runId: string }; result: { cancelled: boolean } };
  /** The run in progress, if any (a browser tab that reconnects picks it up). */
  'run.active': { params: NoParams; result: ActiveRun | null };
  'cache.stats': { params: NoParams; result: CacheUsage };
  /** Frees every cached entry that no run holds. */
  'cache.clear': { params: NoParams; result: CacheUsage };
  /** Newest first. */
  'history.list': { params: NoParams; result: HistoryEntry[] };
  /** Files of the history folder that history.list leaves out, with the reason (corrupt, not a report, not a regular file). */
  'history.skipped': { params: NoParams; result: SkippedHistoryFile[] };
  'history.get': { params: { id: string }; result: Report };
  'history.delete': { params: { id: string }; result: { deleted: boolean } };
  /** A saved run rendered in a format, returned to the caller (the browser downloads it). */
  'report.export': { params: { id: string; format: ExportFormat }; result: ExportedFile };
  /** A saved run rendered and written through a native save dialog (Electron only). Null path when cancelled. */
  'report.saveAs': { params: { id: string; format: ExportFormat }; result: { path: string | null } };
}

export type RpcMethodName = keyof RpcMethods;
export type RpcParams<M extends RpcMethodName> = RpcMethods[M]['params'];
export type RpcResult<M extends RpcMethodName> = RpcMethods[M]['result'];

/** Every method name, for transports that must check a name at run time. */
export const RPC_METHOD_NAMES = [
  'app.info',
  'model.inspect',
  'adapter.inspect',
  'text.count',
  'text.decode',
  'run.estimate',
  'draft.get',
  'draft.save',
  'fs.browse',
  'dialog.pickFolders',
  'run.start',
  'run.cancel',
  'run.active',
  'cache.stats',
  'cache.clear',
  'history.list',
  'history.skipped',
  'history.get',
  'history.delete',
  'report.export',
  'report.saveAs',
] as const satisfies readonly RpcMethodName[];

// Compile-time check that the list above names every method exactly.
type MissingMethods = Exclude<RpcMethodName, (typeof RPC_METHOD_NAMES)[number]>;
const everyMethodListed: MissingMethods extends never ? true : MissingMethods = true;
void everyMethodListed;

// ---------------------------------------------------------------------------------
// Events: name → payload (main → renderer)

export interface RpcEvents {
  'run.progress': { runId: string; progress: CompareProgress };
  /** Tokens of one decode step (one per live sequence), in order. */
  'run.tokens': { runId: string; tokens: TokenEvent[] };
  /**
   * The run finished. reportId: where history saved it; null when saving failed, and then
   * saveError says why (the report is still delivered here: a failed save never costs the result).
   */
  'run.finished': { runId: string; reportId: string | null; report: Report; saveError: string | null };
  'run.failed': { runId: string; error: RpcErrorPayload };
  'run.cancelled': { runId: string };
  /** Cache-manager usage after it changed (throttled). */
  'cache.changed': CacheUsage;
  /** The history list changed (a run finished or one was deleted). */
  'history.changed': { entries: HistoryEntry[] };
}

export type RpcEventName = keyof RpcEvents;

export const RPC_EVENT_NAMES = [
  'run.progress',
  'run.tokens',
  'run.finished',
  'run.failed',
  'run.cancelled',
  'cache.changed',
  'history.changed',
] as const satisfies readonly RpcEventName[];

type MissingEvents = Exclude<RpcEventName, (typeof RPC_EVENT_NAMES)[number]>;
const everyEventListed: MissingEvents extends never ? true : MissingEvents = true;
void everyEventListed;

// ---------------------------------------------------------------------------------
// Errors

export type RpcErrorCode =
  /** The arguments do not match the method's schema. */
  | 'BAD_REQUEST'
  /** Well-formed but unusable input: a folder that is not a model, an adapter for another model... */
  | 'INVALID_INPUT'
  | 'NOT_FOUND'
  /** A run is already in progress. */
  | 'BUSY'
  | 'CANCELLED'
  /** The transport cannot do this (native dialogs in a browser, PDF without Chromium). */
  | 'NOT_SUPPORTED'
  | 'UNAUTHORIZED'
  | 'INTERNAL';

export interface RpcErrorPayload {
  code: RpcErrorCode;
  /** For people: what went wrong and what to do. */
  message: string;
}

/** What a client's call() rejects with. */
export class RpcError extends Error {
  override readonly name = 'RpcError';
  readonly code: RpcErrorCode;
  constructor(payload: RpcErrorPayload) {
    super(payload.message);
    this.code = payload.code;
  }
}

// ---------------------------------------------------------------------------------
// Clients and transports

/** What the renderer uses, whatever the transport. */
export interface RpcClient {
  call<M extends RpcMethodName>(method: M, params: RpcParams<M>): Promise<RpcResult<M>>;
  /** Returns the function that unsubscribes. */
  on<E extends RpcEventName>(event: E, listener: (payload: RpcEvents[E]) => void): () => void;
}

/**
 * What the Electron preload exposes as `window.adapterlens`. call() resolves with
 * { ok: true, result } or { ok: false, error } (ipc cannot carry Error subclasses).
 */
export interface RpcBridge {
  call(method: RpcMethodName, params: unknown): Promise<{ ok: true; result: unknown } | { ok: false; error: RpcErrorPayload }>;
  on(event: RpcEventName, listener: (payload: unknown) => void): () => void;
}

/** WebSocket wire messages (JSON text frames). */
export type ClientMessage = { kind: 'call'; id: number; method: string; params: unknown };
export type ServerMessage =
  | { kind: 'result'; id: number; result: unknown }
  | { kind: 'error'; id: number; error: RpcErrorPayload }
  | { kind: 'event'; event: RpcEventName; payload: unknown };

/** The WebSocket path `adapterlens serve` answers RPC on. */
export const WS_RPC_PATH = '/rpc';
/** Name of the query parameter that carries the serve access token. */
export const SERVE_TOKEN_PARAM = 'token';
