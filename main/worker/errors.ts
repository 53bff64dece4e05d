// Errors that cross the worker boundary (see protocol.ts), and the pool's own errors.
import { LoadError } from '../model/errors.js';
import { ReportFormatError } from '../report/read-report.js';
import type { SerializedError } from './protocol.js';

/** A task ran past its time limit; its worker was stopped. */
export class WorkerTimeoutError extends Error {
  override readonly name = 'WorkerTimeoutError';
  constructor(
    readonly task: string,
    readonly timeoutMs: number,
  ) {
    super(`${task} took longer than ${timeoutMs / 1000} s and was stopped`);
  }
}

/** A worker died under a task (out of memory within its limit, or a crash); the main thread lives on. */
export class WorkerCrashError extends Error {
  override readonly name = 'WorkerCrashError';
  constructor(
    readonly task: string,
    readonly reason: string,
  ) {
    super(`${task} failed: ${reason}`);
  }
}

export function serializeError(e: unknown): SerializedError {
  if (e instanceof LoadError) return { name: 'LoadError', message: e.message, file: e.file, field: e.field, detail: e.detail };
  if (e instanceof Error) {
    const x = e as NodeJS.ErrnoException;
    return {
      name: e.name,
      message: e.message,
      ...(typeof x.code === 'string' ? { code: x.code } : {}),
      ...(typeof x.path === 'string' ? { path: x.path } : {}),
    };
  }
  return { name: 'Error', message: String(e) };
}

export function deserializeError(s: SerializedError): Error {
  if (s.name === 'LoadError' && s.file !== undefined) return new LoadError({ file: s.file, field: s.field, message: s.detail ?? s.message });
  if (s.name === 'ReportFormatError') return new ReportFormatError(s.message);
  const e = new Error(s.message) as NodeJS.ErrnoException;
  e.name = s.name;
  if (s.code !== undefined) e.code = s.code;
  if (s.path !== undefined) e.path = s.path;
  return e;
}
