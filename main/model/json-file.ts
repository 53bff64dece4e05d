// Reads a JSON file and validates it with a zod schema, turning every failure into a
// LoadError that names the file and the field.

import { readFile } from 'node:fs/promises';
import type { z } from 'zod';
import { LoadError, show } from './errors.js';

export function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out;
}

export async function readJson(file: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new LoadError({
      file,
      message: code === 'ENOENT' ? `${what} does not exist.` : `cannot read ${what} (${code ?? String(e)}).`,
      cause: e,
    });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new LoadError({
      file,
      message: `${what} is not valid JSON (${(e as Error).message}); restore the file from the original checkpoint.`,
      cause: e,
    });
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
