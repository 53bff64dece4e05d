// How any thrown value becomes an RpcErrorPayload. Handlers throw RpcError (from the
// contract) for the outcomes they decide themselves (BUSY, NOT_FOUND, NOT_SUPPORTED...);
// everything else is classified here, so a transport never sees a raw exception.
import { z } from 'zod';
import { isCancellation } from '../cancellation.js';
import { CompareInputError } from '../compare/runner.js';
import { NotRegularFileError } from '../files/read-regular-file.js';
import { isLoadError } from '../model/errors.js';
import { ReportFormatError } from '../report/read-report.js';
import { WorkerCrashError, WorkerTimeoutError } from '../worker/errors.js';
import { RpcError, type RpcErrorCode, type RpcErrorPayload } from '../../shared/rpc.js';

/** Shorthand for handlers: `throw rpcError('NOT_FOUND', '...')`. */
export function rpcError(code: RpcErrorCode, message: string): RpcError {
  return new RpcError({ code, message });
}

/** "request.adapters: Too big: expected array to have <=16 items; ..." */
export function formatZodError(error: z.ZodError): string {
  const parts = error.issues.slice(0, 5).map((issue) => {
    const where = issue.path.length > 0 ? issue.path.map(String).join('.') : 'params';
    return `${where}: ${issue.message}`;
  });
  if (error.issues.length > 5) parts.push(`and ${error.issues.length - 5} more`);
  return parts.join('; ');
}

const FS_REASONS: Record<string, string> = {
  ENOENT: 'no such file or folder',
  ENOTDIR: 'not a folder',
  EISDIR: 'a folder, not a file',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  ELOOP: 'a symbolic link loop (or too many levels of links)',
  ENAMETOOLONG: 'the path is too long',
  EIO: 'an input/output error',
  EINVAL: 'not a valid path here',
};

/** A file-system error on a path the user chose (a folder that vanished, no permission). */
function fsErrorMessage(err: unknown): string | null {
  const e = err as NodeJS.ErrnoException;
  if (!(err instanceof Error) || typeof e.code !== 'string' || typeof e.path !== 'string') return null;
  const reason = FS_REASONS[e.code];
  return reason ? `${e.path}: ${reason}` : null;
}

export function toErrorPayload(err: unknown): RpcErrorPayload {
  if (err instanceof RpcError) return { code: err.code, message: err.message };
  if (err instanceof z.ZodError) return { code: 'BAD_REQUEST', message: `invalid arguments: ${formatZodError(err)}` };
  if (isCancellation(err)) return { code: 'CANCELLED', message: 'cancelled' };
  if (err instanceof CompareInputError || isLoadError(err) || err instanceof ReportFormatError || err instanceof NotRegularFileError) {
    return { code: 'INVALID_INPUT', message: err.message };
  }
  // Work on user input that ran out of time or memory in a worker: the input is at fault, and the server lives on.
  if (err instanceof WorkerTimeoutError || err instanceof WorkerCrashError) return { code: 'INVALID_INPUT', message: err.message };
  const fsMessage = fsErrorMessage(err);
  if (fsMessage) return { code: 'INVALID_INPUT', message: fsMessage };
  if (err instanceof Error) return { code: 'INTERNAL', message: err.message || err.name };
  return { code: 'INTERNAL', message: String(err) };
}
