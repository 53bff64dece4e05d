// The one error type of the model-loading layer. Every failure to open a checkpoint,
// an adapter or a tokenizer is a LoadError that names the file (and, where one field is
// at fault, the field) and whose message says what is wrong and what to do about it.

export interface LoadErrorInit {
  /** The file or folder at fault (absolute path where known). */
  file: string;
  /** The JSON field or tensor name at fault, e.g. "rope_scaling.rope_type". */
  field?: string;
  /** A sentence (or two) a person can act on. The file is prefixed automatically. */
  message: string;
  cause?: unknown;
}

export class LoadError extends Error {
  readonly file: string;
  readonly field: string | undefined;
  /** The message without the file prefix. */
  readonly detail: string;

  constructor(init: LoadErrorInit) {
    super(`${init.file}: ${init.message}`, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'LoadError';
    this.file = init.file;
    this.field = init.field;
    this.detail = init.message;
  }
}

export function isLoadError(e: unknown): e is LoadError {
  return e instanceof LoadError;
}

/** Shown inside messages: a JSON value, shortened. */
export function show(value: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(value) ?? String(value);
  } catch {
    s = String(value);
  }
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}
