// safetensors: read a file's header (never its data) and write small files for tests.
//
// Layout: 8-byte little-endian u64 N, then N bytes of JSON
//   { "__metadata__": {..}?, "<name>": { "dtype": "BF16", "shape": [..], "data_offsets": [begin, end] }, .. }
// then the data buffer; offsets are relative to the data buffer (byte 8 + N of the file).

import { constants } from 'node:fs';
import { open, writeFile } from 'node:fs/promises';
import { z } from 'zod';
import type { NativeTensorRef, StoredDType } from '../engine/native-types.js';
import { LoadError, show } from './errors.js';
import { fieldPath } from './json-file.js';
import { JsonDepthError, parseJsonText } from '../files/json-text.js';

/** Every dtype the safetensors format defines, with its size in bits. */
const DTYPE_BITS = {
  BOOL: 8,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  C64: 64,
  F64: 64,
  I64: 64,
  U64: 64,
} as const satisfies Record<string, number>;

export type SafetensorsDType = keyof typeof DTYPE_BITS;

export const WEIGHT_DTYPES: readonly StoredDType[] = ['F32', 'F16', 'BF16'];

/** The safetensors library refuses headers above 100 MB; so do we. */
const MAX_HEADER_BYTES = 100_000_000;

export function isSafetensorsDType(s: string): s is SafetensorsDType {
  return Object.prototype.hasOwnProperty.call(DTYPE_BITS, s);
}

export function isWeightDType(s: string): s is StoredDType {
  return (WEIGHT_DTYPES as readonly string[]).includes(s);
}

export function dtypeBytes(dtype: StoredDType): number {
  return DTYPE_BITS[dtype] / 8;
}

export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Absolute byte offset in the file: 8 + header length + data_offsets[0]. */
  offset: number;
  /** data_offsets[1] - data_offsets[0]. */
  nbytes: number;
}

export interface SafetensorsHeader {
  /** Absolute path as given. */
  file: string;
  fileSize: number;
  headerLength: number;
  /** 8 + headerLength: where the data buffer starts. */
  dataStart: number;
  /** In header order (without __metadata__). */
  entries: Map<string, SafetensorsEntry>;
  metadata: Record<string, string> | null;
}

export interface ReadHeaderOptions {
  /** Refuse any tensor whose dtype is not F32, F16 or BF16 (default false: such entries are returned, see weightRef). */
  weightDtypesOnly?: boolean;
}

const entrySchema = z.object({
  dtype: z.string(),
  shape: z.array(z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)),
  data_offsets: z.tuple([
    z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
    z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  ]),
});

const metadataSchema = z.record(z.string(), z.string()).nullable();

function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Reads and validates the header of a .safetensors file without touching its data. */
export async function readSafetensorsHeader(file: string, options: ReadHeaderOptions = {}): Promise<SafetensorsHeader> {
  let fh;
  try {
    // O_NONBLOCK: opening a FIFO must not wait for a writer (the isFile check below refuses it).
    fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new LoadError({
      file,
      message:
        code === 'ENOENT'
          ? 'this safetensors file does not exist; restore it from the original checkpoint.'
          : `cannot open this safetensors file (${code ?? String(e)}).`,
      cause: e,
    });
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new LoadError({ file, message: 'expected a .safetensors file but this is not a regular file.' });
    const fileSize = st.size;
    const corrupt = (why: string): LoadError =>
      new LoadError({ file, message: `is not a valid safetensors file: ${why}. Re-download or re-save it with safetensors.` });
    if (fileSize < 8) throw corrupt(`it is only ${fileSize} bytes long`);
    const lenBuf = Buffer.alloc(8);
    await fh.read(lenBuf, 0, 8, 0);
    const headerLenBig = lenBuf.readBigUInt64LE(0);
    if (headerLenBig > BigInt(MAX_HEADER_BYTES)) throw corrupt(`the header length ${headerLenBig} is over the 100 MB limit`);
    const headerLength = Number(headerLenBig);
    if (8 + headerLength > fileSize) throw corrupt(`the header length ${headerLength} runs past the end of the ${fileSize}-byte file`);
    const headerBuf = Buffer.alloc(headerLength);
    if (headerLength > 0) await fh.read(headerBuf, 0, headerLength, 8);
    let json: unknown;
    try {
      json = parseJsonText(headerBuf.toString('utf8'));
    } catch (e) {
      throw corrupt(e instanceof JsonDepthError ? `its header ${e.message}` : `its header is not JSON (${(e as Error).message})`);
    }
    if (json === null || typeof json !== 'object' || Array.isArray(json)) throw corrupt('its header is not a JSON object');

    const dataStart = 8 + headerLength;
    const dataLen = fileSize - dataStart;
    const entries = new Map<string, SafetensorsEntry>();
    let metadata: Record<string, string> | null = null;
    const spans: { name: string; begin: number; end: number }[] = [];

    for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
      if (name === '__metadata__') {
        const m = metadataSchema.safeParse(raw);
        metadata = m.success ? m.data : null; // ignored either way
        continue;
      }
      const parsed = entrySchema.safeParse(raw);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const f = issue ? fieldPath(issue.path) : '';
        throw new LoadError({
          file,
          field: name,
          message: `the header entry of tensor "${name}" is malformed${f ? ` at "${f}"` : ''}: ${issue?.message ?? 'invalid'} (${show(raw)}). Re-save the file with safetensors.`,
        });
      }
      const { dtype, shape, data_offsets } = parsed.data;
      const [begin, end] = data_offsets;
      if (!isSafetensorsDType(dtype)) {
        throw new LoadError({ file, field: name, message: `tensor "${name}" has dtype "${dtype}", which is not a safetensors dtype.` });
      }
      if (options.weightDtypesOnly && !isWeightDType(dtype)) throw weightDtypeError(file, name, dtype);
      if (end < begin) {
        throw new LoadError({ file, field: name, message: `tensor "${name}" has data_offsets [${begin}, ${end}] that end before they begin; the file is corrupt.` });
      }
      if (end > dataLen) {
        throw new LoadError({
          file,
          field: name,
          message: `tensor "${name}" has data_offsets [${begin}, ${end}] past the end of the data (${dataLen} bytes); the file is truncated or corrupt, re-download it.`,
        });
      }
      const nbytes = end - begin;
      const bits = numel(shape) * DTYPE_BITS[dtype];
      if (bits !== nbytes * 8) {
        throw new LoadError({
          file,
          field: name,
          message: `tensor "${name}" has shape [${shape.join(', ')}] and dtype ${dtype} (${bits / 8} bytes) but data_offsets [${begin}, ${end}] hold ${nbytes} bytes; the file is corrupt.`,
        });
      }
      entries.set(name, { name, dtype, shape: [...shape], offset: dataStart + begin, nbytes });
      spans.push({ name, begin, end });
    }

    spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
    for (let i = 1; i < spans.length; i++) {
      const prev = spans[i - 1]!;
      const cur = spans[i]!;
      if (cur.begin < prev.end && cur.end > cur.begin && prev.end > prev.begin) {
        throw new LoadError({
          file,
          field: cur.name,
          message: `tensors "${prev.name}" and "${cur.name}" overlap in the data buffer; the file is corrupt.`,
        });
      }
    }
    return { file, fileSize, headerLength, dataStart, entries, metadata };
  } finally {
    await fh.close();
  }
}

function weightDtypeError(file: string, name: string, dtype: string): LoadError {
  return new LoadError({
    file,
    field: name,
    message: `tensor "${name}" is stored as ${dtype}, but weights must be F32, F16 or BF16 (quantized or integer weights are not supported); use an unquantized checkpoint.`,
  });
}

/** The engine's tensor reference for one entry, refusing non-float dtypes. */
export function weightRef(header: SafetensorsHeader, entry: SafetensorsEntry): NativeTensorRef {
  const { dtype } = entry;
  if (!isWeightDType(dtype)) throw weightDtypeError(header.file, entry.name, dtype);
  return { name: entry.name, file: header.file, offset: entry.offset, nbytes: entry.nbytes, dtype, shape: [...entry.shape] };
}

/** Reads the raw bytes a tensor reference points at (tests, small tensors). */
export async function readTensorBytes(ref: Pick<NativeTensorRef, 'file' | 'offset' | 'nbytes'>): Promise<Buffer> {
  const fh = await open(ref.file, 'r');
  try {
    const buf = Buffer.alloc(ref.nbytes);
    const { bytesRead } = await fh.read(buf, 0, ref.nbytes, ref.offset);
    if (bytesRead !== ref.nbytes) throw new LoadError({ file: ref.file, message: `short read at offset ${ref.offset}: ${bytesRead} of ${ref.nbytes} bytes.` });
    return buf;
  } finally {
    await fh.close();
  }
}

/** Decodes a tensor's bytes (F32/F16/BF16, little-endian) to float32. */
export function decodeToFloat32(bytes: Uint8Array, dtype: StoredDType): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === 'F32') {
    const out = new Float32Array(bytes.byteLength / 4);
    for (let i = 0; i < out.length; i++) out[i] = dv.getFloat32(i * 4, true);
    return out;
  }
  const u16 = new Uint16Array(bytes.byteLength / 2);
  for (let i = 0; i < u16.length; i++) u16[i] = dv.getUint16(i * 2, true);
  return dtype === 'BF16' ? bf16ToFloat32(u16) : f16ToFloat32(u16);
}

// ---------------------------------------------------------------- float conversions

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function f32Bits(x: number): number {
  f32[0] = x;
  return u32[0]!;
}

function bitsF32(b: number): number {
  u32[0] = b >>> 0;
  return f32[0]!;
}

/** One float32 to bf16 bits, round-to-nearest-even, NaN -> 0x7FC0 (as torch's c10::BFloat16). */
export function float32ToBf16Bits(x: number): number {
  if (Number.isNaN(x)) return 0x7fc0;
  const bits = f32Bits(x);
  return Math.floor((bits + 0x7fff + ((bits >>> 16) & 1)) / 65536) & 0xffff;
}

/** One float32 to IEEE half bits, round-to-nearest-even, overflow -> inf, subnormals kept. */
export function float32ToF16Bits(x: number): number {
  const f = f32Bits(x);
  const sign = (f >>> 16) & 0x8000;
  const exp = (f >>> 23) & 0xff;
  let mant = f & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) === 1)) h++;
    return sign | h;
  }
  let h = sign | (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++;
  return h;
}

export function float32ToBf16(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = float32ToBf16Bits(values[i]!);
  return out;
}

export function float32ToF16(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = float32ToF16Bits(values[i]!);
  return out;
}

export function bf16ToFloat32(bits: ArrayLike<number>): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = bitsF32((bits[i]! & 0xffff) * 65536);
  return out;
}

export function f16ToFloat32(bits: ArrayLike<number>): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i]! & 0xffff;
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) out[i] = sign * mant * 2 ** -24;
    else if (exp === 0x1f) out[i] = mant === 0 ? sign * Infinity : NaN;
    else out[i] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  return out;
}

// ---------------------------------------------------------------- writer (tests, fixtures)

export interface SafetensorsTensorInput {
  name: string;
  dtype: SafetensorsDType;
  shape: readonly number[];
  /** F32: Float32Array. F16/BF16 (or any 16-bit dtype): Uint16Array, already encoded. Any dtype: raw little-endian bytes as Uint8Array. */
  data: Float32Array | Uint16Array | Uint8Array;
}

/** Writes a .safetensors file (header padded with spaces to 8 bytes, as the reference writer does). */
export async function writeSafetensors(
  path: string,
  tensors: readonly SafetensorsTensorInput[],
  metadata?: Record<string, string>,
): Promise<void> {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__' || Object.prototype.hasOwnProperty.call(header, t.name)) {
      throw new Error(`writeSafetensors: duplicate or reserved tensor name "${t.name}"`);
    }
    const bits = DTYPE_BITS[t.dtype];
    const n = numel(t.shape);
    let bytes: Uint8Array;
    if (t.data instanceof Float32Array) {
      if (t.dtype !== 'F32') throw new Error(`writeSafetensors: "${t.name}" has Float32Array data but dtype ${t.dtype}`);
      if (t.data.length !== n) throw new Error(`writeSafetensors: "${t.name}" has ${t.data.length} values for shape [${t.shape.join(', ')}]`);
      bytes = new Uint8Array(n * 4);
      const dv = new DataView(bytes.buffer);
      for (let i = 0; i < n; i++) dv.setFloat32(i * 4, t.data[i]!, true);
    } else if (t.data instanceof Uint16Array) {
      if (bits !== 16) throw new Error(`writeSafetensors: "${t.name}" has Uint16Array data but dtype ${t.dtype}`);
      if (t.data.length !== n) throw new Error(`writeSafetensors: "${t.name}" has ${t.data.length} values for shape [${t.shape.join(', ')}]`);
      bytes = new Uint8Array(n * 2);
      const dv = new DataView(bytes.buffer);
      for (let i = 0; i < n; i++) dv.setUint16(i * 2, t.data[i]!, true);
    } else {
      if (t.data.length * 8 !== n * bits) throw new Error(`writeSafetensors: "${t.name}" has ${t.data.length} bytes for ${t.dtype} [${t.shape.join(', ')}]`);
      bytes = t.data;
    }
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  const pad = (8 - (Buffer.byteLength(json, 'utf8') % 8)) % 8;
  json += ' '.repeat(pad);
  const headerBytes = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  await writeFile(path, Buffer.concat([len, headerBytes, ...chunks]));
}
