// Shared by the RPC tests: the tiny fixture model's paths, a valid request, temp
// folders, and a small WebSocket RPC client that records events.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { DEFAULT_SETTINGS, type CompareRequest } from '../../shared/compare.js';
import type { ClientMessage, RpcErrorPayload, RpcEventName, ServerMessage } from '../../shared/rpc.js';
import { fixturesDir } from '../parity/hf-fixtures.js';
import { parseReport } from '../../main/report/read-report.js';
import type { Report } from '../../shared/report.js';

export const MODEL_DIR = path.join(fixturesDir, 'models', 'llama-gqa-bf16');
export const ADAPTERS_DIR = path.join(fixturesDir, 'adapters', 'llama-gqa-bf16');
export const OTHER_MODEL_ADAPTER = path.join(fixturesDir, 'adapters', 'qwen2-bias-f16');

export function tinyRequest(overrides: Partial<CompareRequest> = {}): CompareRequest {
  return {
    ...DEFAULT_SETTINGS,
    modelDir: MODEL_DIR,
    adapters: [{ dir: path.join(ADAPTERS_DIR, 'qv-r8') }, { dir: path.join(ADAPTERS_DIR, 'all-linear-rslora') }],
    documentText: 'The University of Hong Kong is the oldest university in Hong Kong. It was founded in 1911.',
    promptText: ' It is',
    strategies: ['exact', 'base', 'seed-minikv'],
    maxNewTokens: 4,
    ...overrides,
  };
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `adapterlens-${prefix}-`));
}

export type EventRecord = { event: RpcEventName; payload: unknown };

/** A WebSocket RPC client for tests: call() resolves with the answer message, events are recorded. */
export class TestRpcClient {
  readonly events: EventRecord[] = [];
  private nextId = 1;
  private readonly waiting = new Map<number, (m: ServerMessage) => void>();
  private readonly eventWaiters: { pred: (e: EventRecord) => boolean; resolve: (e: EventRecord) => void }[] = [];
  /** Answers to messages that had no usable id. */
  readonly orphanErrors: RpcErrorPayload[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString()) as ServerMessage;
      if (m.kind === 'event') {
        const rec = { event: m.event, payload: m.payload };
        this.events.push(rec);
        for (const w of [...this.eventWaiters]) {
          if (w.pred(rec)) {
            this.eventWaiters.splice(this.eventWaiters.indexOf(w), 1);
            w.resolve(rec);
          }
        }
        return;
      }
      const resolve = this.waiting.get(m.id);
      if (resolve) {
        this.waiting.delete(m.id);
        resolve(m);
      } else if (m.kind === 'error') this.orphanErrors.push(m.error);
    });
  }

  static open(url: string, options: WebSocket.ClientOptions = {}): Promise<TestRpcClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, options);
      ws.once('open', () => resolve(new TestRpcClient(ws)));
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      ws.once('error', reject);
    });
  }

  send(raw: string): void {
    this.ws.send(raw);
  }

  call(method: string, params: unknown): Promise<ServerMessage> {
    const id = this.nextId++;
    const msg: ClientMessage = { kind: 'call', id, method, params };
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.ws.send(JSON.stringify(msg));
    });
  }

  /** The call's result; throws with the error payload's code and message otherwise. */
  async result<T>(method: string, params: unknown): Promise<T> {
    const m = await this.call(method, params);
    if (m.kind === 'result') return m.result as T;
    if (m.kind === 'error') throw Object.assign(new Error(m.error.message), { code: m.error.code });
    throw new Error('unexpected message');
  }

  /** Resolves with the first recorded (or future) event that matches. */
  waitForEvent(pred: (e: EventRecord) => boolean, timeoutMs = 60_000): Promise<EventRecord> {
    const seen = this.events.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('timed out waiting for an event')), timeoutMs);
      this.eventWaiters.push({
        pred,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.ws.readyState === WebSocket.CLOSED) return resolve();
      this.ws.once('close', () => resolve());
      this.ws.close();
    });
  }
}

/**
 * A valid saved run (the committed demo report, as the report reader returns it) with a
 * chosen creation time, model name and adapter names: history accepts only files that pass
 * the whole report schema.
 */
export function sampleReport(createdAt = '2026-02-03T04:05:06.789Z', modelName = 'tiny', adapterNames?: string[]): Report {
  const raw = JSON.parse(fs.readFileSync(path.join(fixturesDir, 'reports', 'demo-llama-gqa-bf16.json'), 'utf8')) as Report;
  const r = parseReport(raw);
  r.createdAt = createdAt;
  r.model.name = modelName;
  if (adapterNames) {
    const first = r.adapters[0]!;
    r.adapters = adapterNames.map((name) => ({ ...structuredClone(first), name }));
  }
  return r;
}

/** What a report looks like after a JSON round trip (NaN is written as null). */
export function asJson<T>(value: T): unknown {
  return JSON.parse(JSON.stringify(value));
}
