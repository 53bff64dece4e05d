// AppService: the application behind the RPC contract, transport-agnostic. Electron's
// ipc and `adapterlens serve`'s WebSocket both call its handlers (through dispatch.ts)
// and subscribe to its events.
//
// It owns one EngineSession (lazily: app.info and the inspectors work even before the
// engine is needed), one CacheManager, the history store and at most one active run.
// A run's progress, tokens and end are events; run.start returns as soon as the run is
// accepted. Handlers receive params already validated by schemas.ts.
//
// A model or adapter folder that inspects well starts hashing in the background (the
// digests the report needs; kept in the data folder): by the time the user presses run, a
// first run on a large checkpoint has little or nothing left to hash.
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { CacheManager } from '../cache/cache-manager.js';
import { checkFits, estimateMemory } from '../cache/memory-estimate.js';
import { DemoUnavailableError, demoRequest } from '../compare/demo.js';
import { runComparison } from '../compare/runner.js';
import { EngineSession } from '../compare/session.js';
import { probeCacheIn } from '../engine/cuda-probe-cache.js';
import { prepareAddon, type BackendChoice } from '../engine/native-loader.js';
import { DigestCache } from '../model/digest-cache.js';
import { DigestJobs } from '../model/digest-jobs.js';
import { openAdapterInWorker, openCheckpointInWorker } from '../model/open-async.js';
import { decodeInWorker } from '../model/tokenize-async.js';
import { appVersion } from '../paths.js';
import type { CompareProgress, CompareRequest, CompareStage, TokenEvent } from '../../shared/compare.js';
import {
  ACTIVE_RUN_TOKEN_LIMIT,
  type ActiveRun,
  type AppInfo,
  type DemoInputs,
  type EngineCapabilities,
  type ExportFormat,
  type ExportedFile,
  type FolderPurpose,
  type RpcEventName,
  type RpcEvents,
  type RpcMethodName,
  type RpcParams,
  type RpcResult,
  type RunEstimate,
} from '../../shared/rpc.js';
import { strategyProblem } from '../../shared/strategies.js';
import { DraftStore } from './draft-store.js';
import { rpcError, toErrorPayload } from './errors.js';
import { browseFolder } from './fs-browse.js';
import { HistoryNotFoundError, HistoryStore } from './history-store.js';
import { countTokens, inspectAdapter, inspectModel } from './inspect.js';
import { canExport, exportedPdf, exportedText, requirePdfPrinter, type PdfPrinter } from './report-export.js';

/** What only some transports can do; absent hooks make the methods answer NOT_SUPPORTED. */
export interface PlatformHooks {
  /** Native folder picker; [] when cancelled. */
  pickFolders?(purpose: FolderPurpose, multiple: boolean): Promise<string[]>;
  /** Native save dialog that writes the file; null when cancelled. */
  saveFile?(file: ExportedFile): Promise<string | null>;
  printPdf?: PdfPrinter;
}

export interface AppServiceOptions {
  transport: AppInfo['transport'];
  historyDir: string;
  /** Where the setup draft is kept; default: draft.json beside the history folder. */
  draftFile?: string;
  /**
   * Where state that outlives the process is kept besides history: the file-digest cache
   * (a second start on the same checkpoint hashes nothing). Without it digests last as
   * long as the process.
   */
  dataDir?: string;
  cacheBudgetBytes: number;
  device?: BackendChoice;
  platform?: PlatformHooks;
  /** Minimum milliseconds between run.progress / cache.changed events (the last one is always sent). */
  throttleMs?: number;
}

export type EventListener = <E extends RpcEventName>(event: E, payload: RpcEvents[E]) => void;

export type Handlers = { [M in RpcMethodName]: (params: RpcParams<M>) => Promise<RpcResult<M>> };

interface RunState {
  runId: string;
  request: CompareRequest;
  progress: CompareProgress | null;
  /** performance.now() when the run was accepted. */
  startedAt: number;
  /** The last progress of each stage, and the tokens so far: what a reconnecting tab is given. */
  stages: Partial<Record<CompareStage, CompareProgress>>;
  tokens: TokenEvent[];
  controller: AbortController;
  /** Settles (never rejects) once the run's end event has been emitted. */
  done: Promise<void>;
}

/** Emits at most once per `ms`, always delivering the latest value (trailing edge). */
class Throttle<T> {
  private last = 0;
  private timer: NodeJS.Timeout | null = null;
  private pending: { value: T } | null = null;
  constructor(private readonly ms: number, private readonly send: (value: T) => void) {}

  push(value: T, immediate = false): void {
    const now = Date.now();
    if (immediate || now - this.last >= this.ms) {
      this.cancel();
      this.last = now;
      this.send(value);
      return;
    }
    this.pending = { value };
    this.timer ??= setTimeout(() => this.flush(), this.ms - (now - this.last));
    this.timer.unref?.();
  }

  flush(): void {
    const p = this.pending;
    this.cancel();
    if (p) {
      this.last = Date.now();
      this.send(p.value);
    }
  }

  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.pending = null;
  }
}

export class AppService {
  readonly history: HistoryStore;
  readonly drafts: DraftStore;
  readonly cache: CacheManager;
  readonly handlers: Handlers;
  private session: EngineSession | null = null;
  /** The engine's start-up (its CUDA probe) while it runs. */
  private engineStarting: Promise<void> | null = null;
  private active: RunState | null = null;
  private readonly listeners = new Set<EventListener>();
  private readonly digestCache: DigestCache;
  /** Folder hashing, shared with the engine session: what an inspection starts, a run's load joins. */
  private readonly digests: DigestJobs;
  /** The model folder last inspected, hashing ahead of a run. */
  private modelAhead: { dir: string; job: { drop(): void } } | null = null;
  /** Aborted by dispose(): stops the inspections and counts still running on worker threads. */
  private readonly lifetime = new AbortController();
  private readonly cacheThrottle: Throttle<null>;
  private readonly unsubscribeCache: () => void;
  private disposed = false;

  constructor(private readonly options: AppServiceOptions) {
    this.history = new HistoryStore(options.historyDir);
    this.drafts = new DraftStore(options.draftFile ?? path.join(path.dirname(options.historyDir), 'draft.json'));
    this.cache = new CacheManager({ budgetBytes: options.cacheBudgetBytes });
    this.digestCache = options.dataDir ? DigestCache.inDataDir(options.dataDir) : new DigestCache(null);
    this.digests = new DigestJobs(this.digestCache);
    const throttleMs = options.throttleMs ?? 100;
    this.cacheThrottle = new Throttle(throttleMs * 2, () => this.emit('cache.changed', this.cache.usage()));
    this.unsubscribeCache = this.cache.onChange(() => this.cacheThrottle.push(null));
    this.handlers = this.makeHandlers();
  }

  /** Subscribes to every event; returns the unsubscribe function. */
  onEvent(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  private emit<E extends RpcEventName>(event: E, payload: RpcEvents[E]): void {
    for (const l of [...this.listeners]) {
      try {
        l(event, payload);
      } catch {
        // A transport's failure (a closed socket) must not break the run or other transports.
      }
    }
  }

  /**
   * The engine, loaded on first use; a missing build is an error the caller sees. The CUDA
   * probe (a child process) is awaited, not waited for on this thread: the server and the
   * app answer other calls meanwhile, and calls that come during it share it.
   */
  private async engine(): Promise<EngineSession> {
    if (this.disposed) throw rpcError('INTERNAL', 'AdapterLens is shutting down');
    if (this.session) return this.session;
    const device = this.options.device ?? 'auto';
    const probeCacheFile = this.options.dataDir ? probeCacheIn(this.options.dataDir) : undefined;
    this.engineStarting ??= prepareAddon(device, { probeCacheFile }).finally(() => (this.engineStarting = null));
    await this.engineStarting;
    if (this.disposed) throw rpcError('INTERNAL', 'AdapterLens is shutting down');
    // The session's adapters count in this service's cache budget and are freed by cache.clear.
    this.session ??= new EngineSession(device, { cache: this.cache, digestJobs: this.digests, ...(probeCacheFile ? { probeCacheFile } : {}) });
    return this.session;
  }

  private makeHandlers(): Handlers {
    const platform = this.options.platform ?? {};
    return {
      'app.info': async () => this.appInfo(),
      'model.inspect': async ({ dir }) => this.hashingAhead('model', dir, await inspectModel(dir, this.lifetime.signal)),
      'adapter.inspect': async ({ modelDir, dir }) => this.hashingAhead('adapter', dir, await inspectAdapter(modelDir, dir, this.lifetime.signal)),
      'text.count': ({ modelDir, tokenizerDir, documentText, promptText, limit }) =>
        countTokens(modelDir, tokenizerDir ?? modelDir, documentText, promptText, limit, this.lifetime.signal),
      'text.decode': async ({ tokenizerDir, groups }) => ({ texts: await decodeInWorker(tokenizerDir, groups, { signal: this.lifetime.signal }) }),
      'run.estimate': (params) => this.estimate(params),
      'draft.get': () => this.drafts.get(),
      'draft.save': async ({ draft }) => {
        await this.drafts.save(draft);
        return { saved: true };
      },
      'fs.browse': ({ dir }) => browseFolder(dir),
      'dialog.pickFolders': async ({ purpose, multiple }) => {
        if (!platform.pickFolders) throw rpcError('NOT_SUPPORTED', 'there are no native dialogs in the browser; browse the folders instead');
        return { paths: await platform.pickFolders(purpose, multiple) };
      },
      'run.start': ({ request }) => this.startRun(request),
      'run.cancel': async ({ runId }) => {
        const run = this.active;
        if (!run || run.runId !== runId || run.controller.signal.aborted) return { cancelled: false };
        run.controller.abort();
        return { cancelled: true };
      },
      'run.active': async (): Promise<ActiveRun | null> => {
        const run = this.active;
        if (!run) return null;
        return {
          runId: run.runId,
          request: run.request,
          progress: run.progress,
          elapsedMs: Math.round(performance.now() - run.startedAt),
          stages: { ...run.stages },
          tokens: run.tokens.slice(),
        };
      },
      'cache.stats': async () => this.cache.usage(),
      'cache.clear': async () => {
        this.cache.clear();
        return this.cache.usage();
      },
      'history.list': async () => (await this.history.list()).entries,
      'history.skipped': async () => (await this.history.list()).skipped,
      'history.get': ({ id }) => this.savedReport(id),
      'history.delete': async ({ id }) => {
        const deleted = await this.history.delete(id);
        if (deleted) await this.emitHistory();
        return { deleted };
      },
      'report.export': ({ id, format }) => this.exportSaved(id, format),
      'report.saveAs': async ({ id, format }) => {
        if (!platform.saveFile) throw rpcError('NOT_SUPPORTED', 'there is no save dialog in the browser; use export (the browser downloads the file)');
        const file = await this.exportSaved(id, format);
        return { path: await platform.saveFile(file) };
      },
    };
  }

  /**
   * Starts the inspected folder's hashing in the background (its failure is the run's to
   * report); returns `result`. A model folder replaced by another before any run asked for
   * its digests stops being hashed: a checkpoint is gigabytes, and the hash workers would
   * otherwise read it ahead of the model that is used.
   */
  private hashingAhead<T>(kind: 'model' | 'adapter', dirIn: string, result: T): T {
    if (this.disposed) return result;
    const dir = path.resolve(dirIn);
    if (kind === 'adapter') {
      this.digests.ahead(dir);
      return result;
    }
    if (this.modelAhead?.dir !== dir) {
      this.modelAhead?.job.drop();
      this.modelAhead = { dir, job: this.digests.ahead(dir) };
    }
    return result;
  }

  private async appInfo(): Promise<AppInfo> {
    const session = await this.engine();
    const info = session.engine.addon.info();
    // demoRequest checks the demo's files itself (demoStatus): one check, not two.
    let demo: AppInfo['demo'] = null;
    let demoUnavailable: string | null = null;
    try {
      demo = demoInputs(await demoRequest());
    } catch (e) {
      if (!(e instanceof DemoUnavailableError)) throw e;
      demoUnavailable = e.message;
    }
    return {
      version: appVersion,
      engineVersion: info.engineVersion,
      backend: {
        kind: session.engine.backend,
        device: info.device,
        fallbackReason: session.engine.fallbackReason,
        // The CPU engine's memory is the machine's; the engine does not report GPU memory yet.
        memoryBytes: session.engine.backend === 'cpu' ? os.totalmem() : null,
      },
      transport: this.options.transport,
      capabilities: { nativeDialogs: Boolean(this.options.platform?.pickFolders), pdf: canExport('pdf', this.options.platform?.printPdf) },
      demo,
      demoUnavailable,
      historyDir: this.history.dir,
      cacheBudgetBytes: this.cache.budgetBytes,
      engine: engineCapabilities(session.engine.backend, session.engine.fallbackReason),
      workingDir: process.cwd(),
    };
  }

  /** run.estimate: the runner's own estimate, from config files and safetensors headers only. */
  private async estimate(p: RpcParams<'run.estimate'>): Promise<RunEstimate> {
    const ck = await openCheckpointInWorker(p.modelDir, { signal: this.lifetime.signal });
    const cfg = ck.config.native;
    const adapters = await Promise.all(p.adapterDirs.map((d) => openAdapterInWorker(d, cfg, { signal: this.lifetime.signal })));
    // As the runner loads them: values in the compute dtype (fp32: 4 bytes, bf16/fp16: 2).
    const bytesPerValue = p.dtype === 'fp32' ? 4 : 2;
    const estimate = estimateMemory({
      model: cfg,
      weightsBytes: ck.parameterCount * bytesPerValue,
      documentTokens: p.documentTokens,
      promptTokens: p.promptTokens,
      maxNewTokens: p.maxNewTokens,
      adapters: adapters.map(({ summary }) => {
        const vRanks = new Array<number>(cfg.numLayers).fill(0);
        for (const m of summary.perModule) if (m.module === 'v_proj') vRanks[m.layer] = m.rank;
        return { vRanks, paramBytes: summary.parameterCount * bytesPerValue };
      }),
      strategies: p.strategies,
      bytesPerValue,
    });
    const budgetBytes = this.cache.usage().budgetBytes;
    const message = checkFits(estimate, budgetBytes);
    return {
      cacheBytes: estimate.cacheBytes,
      totalBytes: estimate.total,
      budgetBytes,
      fits: message === null,
      message,
      items: estimate.breakdown.map((i) => ({ id: i.id, item: i.item, bytes: i.bytes, inCacheBudget: i.inCacheBudget })),
    };
  }

  private async savedReport(id: string) {
    try {
      return await this.history.get(id);
    } catch (e) {
      if (e instanceof HistoryNotFoundError) throw rpcError('NOT_FOUND', e.message);
      throw e;
    }
  }

  /**
   * A saved run in an export format: read, checked and rendered on a worker thread (an HTML
   * report's charts take a while to render); a PDF is then printed here from that HTML.
   */
  private async exportSaved(id: string, format: ExportFormat): Promise<ExportedFile> {
    const printer = this.options.platform?.printPdf;
    if (format === 'pdf') requirePdfPrinter(printer); // NOT_SUPPORTED before any work
    const rendered = await this.savedRendering(id, format === 'pdf' ? 'html' : format);
    return format === 'pdf' ? exportedPdf(rendered.createdAt, rendered.content, printer) : exportedText(rendered.createdAt, format, rendered.content);
  }

  private async savedRendering(id: string, format: 'json' | 'html' | 'md' | 'csv') {
    try {
      return await this.history.render(id, format);
    } catch (e) {
      if (e instanceof HistoryNotFoundError) throw rpcError('NOT_FOUND', e.message);
      throw e;
    }
  }

  private async emitHistory(): Promise<void> {
    try {
      this.emit('history.changed', { entries: (await this.history.list()).entries });
    } catch {
      // The folder became unreadable: history.list will say so when asked.
    }
  }

  private busyError() {
    return rpcError('BUSY', 'a comparison is already running; cancel it or wait for it to finish before starting another');
  }

  /**
   * Accepts a run after the checks the form also makes (engine options, strategy
   * parameters against the model), so that what reaches the user is said in the app's words.
   */
  private async startRun(request: CompareRequest): Promise<{ runId: string }> {
    if (this.active) throw this.busyError();
    const session = await this.engine();
    if (this.active) throw this.busyError();
    const caps = engineCapabilities(session.engine.backend, session.engine.fallbackReason);
    for (const [what, choice] of [['device', caps.devices.find((d) => d.id === request.device)], ['compute dtype', caps.dtypes.find((d) => d.id === request.dtype)]] as const) {
      if (choice && !choice.available) throw rpcError('INVALID_INPUT', `${what} ${choice.id}: ${choice.reason ?? 'not available'}`);
    }
    const names = request.adapters.map((a) => a.name?.trim() || path.basename(path.resolve(a.dir)));
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup) throw rpcError('INVALID_INPUT', `two adapters are named "${dup}": rename one of them in the adapter list`);
    const cfg = (await openCheckpointInWorker(request.modelDir, { signal: this.lifetime.signal })).config.native;
    for (const id of request.strategies) {
      const problem = strategyProblem(id, cfg, null);
      if (problem) throw rpcError('INVALID_INPUT', problem);
    }
    if (this.active) throw this.busyError(); // another call was accepted while this one read the model
    if (this.disposed) throw rpcError('INTERNAL', 'AdapterLens is shutting down');
    const run: RunState = {
      runId: randomUUID(),
      request,
      progress: null,
      startedAt: performance.now(),
      stages: {},
      tokens: [],
      controller: new AbortController(),
      done: Promise.resolve(),
    };
    this.active = run;
    run.done = this.execute(session, run);
    return { runId: run.runId };
  }

  /** Runs the comparison and emits its end event; never rejects. */
  private async execute(session: EngineSession, run: RunState): Promise<void> {
    const { runId } = run;
    const progress = new Throttle<CompareProgress>(this.options.throttleMs ?? 100, (p) => this.emit('run.progress', { runId, progress: p }));
    // Tokens of one decode step arrive one per sequence in one synchronous loop; they are
    // sent together, as one event per step, when the step changes or the loop ends.
    let tokens: TokenEvent[] = [];
    let flushQueued = false;
    const flushTokens = (): void => {
      flushQueued = false;
      if (tokens.length === 0) return;
      const batch = tokens;
      tokens = [];
      this.emit('run.tokens', { runId, tokens: batch });
    };
    let lastStage: string | null = null;
    const onProgress = (p: CompareProgress): void => {
      run.progress = p;
      run.stages[p.stage] = p;
      const stageChanged = p.stage !== lastStage;
      lastStage = p.stage;
      progress.push(p, stageChanged || p.done === p.total);
    };
    try {
      const report = await runComparison(session, this.cache, run.request, {
        signal: run.controller.signal,
        onProgress,
        onToken: (t) => {
          if (run.tokens.length < ACTIVE_RUN_TOKEN_LIMIT) run.tokens.push(t);
          if (tokens.length > 0 && tokens[0]!.step !== t.step) flushTokens();
          tokens.push(t);
          if (!flushQueued) {
            flushQueued = true;
            queueMicrotask(flushTokens);
          }
        },
      });
      flushTokens();
      progress.flush();
      // The run is over once the report exists: a history folder that cannot be written
      // costs the saved copy, never the result.
      let reportId: string | null = null;
      let saveError: string | null = null;
      try {
        reportId = (await this.history.save(report)).id;
      } catch (e) {
        saveError = `the report was not saved to ${this.history.dir} (${describeSaveFailure(e)}); export it now to keep it`;
      }
      this.endRun(session);
      this.emit('run.finished', { runId, reportId, report, saveError });
      if (reportId !== null) await this.emitHistory();
    } catch (e) {
      flushTokens();
      progress.cancel();
      this.endRun(session);
      const error = toErrorPayload(e);
      if (error.code === 'CANCELLED' || run.controller.signal.aborted) this.emit('run.cancelled', { runId });
      else this.emit('run.failed', { runId, error });
    }
  }

  /**
   * The run is over: the adapters it used become evictable (budget, adapter bound,
   * cache.clear), then the next run may start. Before the end event, so that whoever reacts
   * to it (a new run.start, a cache.stats) sees the run fully ended.
   */
  private endRun(session: EngineSession): void {
    session.releaseRunHolds();
    this.active = null;
  }

  /**
   * Cancels the active run and waits for it to end, then frees every cache entry and
   * the engine. Later calls fail.
   */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.lifetime.abort();
    const run = this.active;
    if (run) {
      run.controller.abort();
      await run.done;
    }
    this.cacheThrottle.cancel();
    this.unsubscribeCache();
    this.cache.dispose();
    this.digests.abortAll();
    this.session?.dispose();
    this.session = null;
    this.listeners.clear();
  }
}

/** What this engine computes: the CPU engine computes fp32 only and has no GPU. */
export function engineCapabilities(backend: 'cpu' | 'cuda', fallbackReason: string | null): EngineCapabilities {
  const cpu = backend === 'cpu';
  const halfReason = cpu ? 'the CPU engine computes in fp32 only; bf16 and fp16 need the CUDA engine on a GPU' : null;
  return {
    backend,
    dtypes: [
      { id: 'fp32', available: true, reason: null },
      { id: 'bf16', available: !cpu, reason: halfReason },
      { id: 'fp16', available: !cpu, reason: halfReason },
    ],
    devices: [
      { id: 'auto', available: true, reason: null },
      { id: 'cpu', available: cpu, reason: cpu ? null : 'this session runs the CUDA engine; choose auto or cuda' },
      { id: 'cuda', available: !cpu, reason: cpu ? `this engine runs on the CPU${fallbackReason ? `: ${fallbackReason}` : ''}` : null },
    ],
  };
}

function describeSaveFailure(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const reasons: Record<string, string> = {
    EACCES: 'permission denied',
    EPERM: 'permission denied',
    EROFS: 'the file system is read-only',
    ENOSPC: 'the disk is full',
    EDQUOT: 'the disk quota is exceeded',
    ENOTDIR: 'a path component is not a folder',
    EEXIST: 'a file is in the way of the folder',
  };
  if (typeof err.code === 'string') return reasons[err.code] ?? err.code;
  return err instanceof Error ? err.message : String(e);
}

function demoInputs(r: CompareRequest): DemoInputs {
  return {
    modelDir: r.modelDir,
    adapterDirs: r.adapters.map((a) => a.dir),
    documentText: r.documentText,
    promptText: r.promptText,
    strategies: r.strategies,
    maxNewTokens: r.maxNewTokens,
  };
}
