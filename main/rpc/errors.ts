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

/** What a field of a call is called in the app (the schema's path is for programmers). */
const FIELD_LABELS: [RegExp, (m: RegExpExecArray) => string][] = [
  [/^(?:request\.)?modelDir$/, () => 'The model folder'],
  [/^(?:request\.)?tokenizerDir$/, () => 'The tokenizer folder'],
  [/^request\.adapters\.(\d+)\.dir$|^adapterDirs\.(\d+)$/, (m) => `The folder of adapter ${Number(m[1] ?? m[2]) + 1}`],
  [/^request\.adapters\.(\d+)\.name$/, (m) => `The name of adapter ${Number(m[1]) + 1}`],
  [/^request\.adapters$|^adapterDirs$/, () => 'Adapters'],
  [/^(?:request\.)?strategies\.(\d+)$/, (m) => `Strategy ${Number(m[1]) + 1}`],
  [/^(?:request\.)?strategies$/, () => 'Strategies'],
  [/^(?:request\.)?documentText$|^draft\.documentText$/, () => 'The document'],
  [/^(?:request\.)?promptText$|^draft\.promptText$/, () => 'The prompt'],
  [/^(?:request\.)?maxNewTokens$/, () => 'Max new tokens'],
  [/^request\.temperature$/, () => 'Temperature'],
  [/^request\.topP$/, () => 'Top-p'],
  [/^request\.seed$/, () => 'The seed'],
  [/^(?:request\.)?dtype$/, () => 'Compute dtype'],
  [/^request\.device$/, () => 'Device'],
  [/^request\.stopAtEos$/, () => 'Stop at EOS'],
  [/^(?:documentTokens|promptTokens)$/, () => 'The token count'],
  [/^(?:id|runId)$/, () => 'The run id'],
  [/^format$/, () => 'The export format'],
  [/^dir$/, () => 'The folder'],
  [/^limit$/, () => 'The count limit'],
  [/^draft(?:\.|$)/, () => 'The saved setup'],
];

function fieldLabel(where: string): string {
  for (const [re, label] of FIELD_LABELS) {
    const m = re.exec(where);
    if (m) return label(m);
  }
  return where === '' ? 'The request' : 'A value in the request';
}

/** zod's default wording ("Too big: expected number to be <=4096") in plain words; our own messages as written. */
function issueText(issue: z.core.$ZodIssue): string {
  const own = !/^(Too big|Too small|Invalid|Unrecognized)/.test(issue.message);
  if (own) return issue.message;
  switch (issue.code) {
    case 'too_big':
      return issue.origin === 'array' ? `at most ${String(issue.maximum)} allowed` : `must be at most ${String(issue.maximum)}`;
    case 'too_small':
      return issue.origin === 'array' ? `at least ${String(issue.minimum)} needed` : `must be at least ${String(issue.minimum)}`;
    case 'invalid_type':
      // zod does not keep the input; its default message ends "received undefined" for a missing field.
      return /received undefined$/.test(issue.message) ? 'is missing' : issue.expected === 'int' ? 'must be a whole number' : `must be a ${issue.expected}`;
    case 'invalid_value':
      return `must be one of ${issue.values.map((v) => String(v)).join(', ')}`;
    case 'unrecognized_keys':
      return `has unexpected field${issue.keys.length === 1 ? '' : 's'} ${issue.keys.join(', ')}`;
    default:
      return 'is not valid';
  }
}

/** "Max new tokens: must be at most 4096; The folder of adapter 2: must not be empty" */
export function formatZodError(error: z.ZodError): string {
  const parts = error.issues.slice(0, 5).map((issue) => `${fieldLabel(issue.path.map(String).join('.'))}: ${issueText(issue)}`);
  if (error.issues.length > 5) parts.push(`and ${error.issues.length - 5} more`);
  return parts.join('; ');
}

/**
 * The runner's messages serve the CLI too, where a hint names a flag ("use --dtype fp32").
 * On the RPC path the hint becomes the app's words; any other flag hint is dropped.
 */
export function appWords(message: string): string {
  return message
    .replace(/ \(use --dtype fp32\)/g, ': choose fp32 under Compute dtype')
    .replace(/: give them distinct names \(--adapter NAME=DIR\)/g, ': rename one of them in the adapter list')
    .replace(/\s*\((?:use |see )?--[a-z][a-z-]*[^)]*\)/g, '');
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
  if (err instanceof z.ZodError) return { code: 'BAD_REQUEST', message: formatZodError(err) };
  if (isCancellation(err)) return { code: 'CANCELLED', message: 'cancelled' };
  if (err instanceof CompareInputError || isLoadError(err)) return { code: 'INVALID_INPUT', message: appWords(err.message) };
  if (err instanceof ReportFormatError || err instanceof NotRegularFileError) return { code: 'INVALID_INPUT', message: err.message };
  // Work on user input that ran out of time or memory in a worker: the input is at fault, and the server lives on.
  if (err instanceof WorkerTimeoutError || err instanceof WorkerCrashError) return { code: 'INVALID_INPUT', message: err.message };
  const fsMessage = fsErrorMessage(err);
  if (fsMessage) return { code: 'INVALID_INPUT', message: fsMessage };
  if (err instanceof Error) return { code: 'INTERNAL', message: err.message || err.name };
  return { code: 'INTERNAL', message: String(err) };
}
