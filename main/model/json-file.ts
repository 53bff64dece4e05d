// Reads a JSON file and validates it with a zod schema, turning every failure into a
// LoadError that names the file and the field. The file must be a regular file of bounded
// size (a symlink to /dev/zero is refused, not read) and nest at most MAX_JSON_DEPTH levels.

import type { z } from 'zod';
import { JsonDepthError, parseJsonText } from '../files/json-text.js';
import { NotRegularFileError, readRegularFile } from '../files/read-regular-file.js';
import { LoadError, show } from './errors.js';

/** Config files are kilobytes; 16 MiB leaves room for anything real. tokenizer.json files are larger (see tokenizer.ts). */
export const DEFAULT_JSON_MAX_BYTES = 16 * 1024 * 1024;

export function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out;
}

export async function readJson(file: string, what: string, maxBytes = DEFAULT_JSON_MAX_BYTES): Promise<unknown> {
  let text: string;
  try {
    text = (await readRegularFile(file, { maxBytes })).toString('utf8');
  } catch (e) {
    if (e instanceof NotRegularFileError) {
      throw new LoadError({ file, message: `${what} is ${e.reason}; restore the file from the original checkpoint.`, cause: e });
    }
    const code = (e as NodeJS.ErrnoException).code;
    throw new LoadError({
      file,
      message: code === 'ENOENT' ? `${what} does not exist.` : `cannot read ${what} (${code ?? String(e)}).`,
      cause: e,
    });
  }
  return parseJsonOf(file, what, text);
}

/** JSON.parse with the nesting limit, failures as a LoadError naming the file. */
export function parseJsonOf(file: string, what: string, text: string): unknown {
  try {
    return parseJsonText(text);
  } catch (e) {
    const why = e instanceof JsonDepthError ? e.message : `it is not valid JSON (${(e as Error).message})`;
    throw new LoadError({ file, message: `${what} cannot be read: ${why}; restore the file from the original checkpoint.`, cause: e });
  }
}

/** Validates `value` against `schema`; the first issue becomes a LoadError. */
export function validate<S extends z.ZodType>(file: string, value: unknown, schema: S, what: string): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  if (issue === undefined) throw new LoadError({ file, message: `${what} is malformed.` });
  const field = fieldPath(issue.path);
  let got: unknown = value;
  for (const p of issue.path) {
    if (got !== null && typeof got === 'object') got = (got as Record<PropertyKey, unknown>)[p];
    else got = undefined;
  }
  const where = field === '' ? `${what}` : `field "${field}" of ${what}`;
  const shown = got === undefined ? 'it is missing' : `it is ${show(got)}`;
  throw new LoadError({ file, field: field || undefined, message: `${where} is invalid: ${issue.message} (${shown}).` });
}

export async function readJsonValidated<S extends z.ZodType>(file: string, schema: S, what: string): Promise<z.output<S>> {
  return validate(file, await readJson(file, what), schema, what);
}
