import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LoadError } from '../../main/model/errors.js';
import {
  bf16ToFloat32,
  decodeToFloat32,
  f16ToFloat32,
  float32ToBf16,
  float32ToBf16Bits,
  float32ToF16,
  float32ToF16Bits,
  readSafetensorsHeader,
  readTensorBytes,
  weightRef,
  writeSafetensors,
} from '../../main/model/safetensors.js';
import { tempDir } from './model-fixtures.js';

function bitsOf(x: number): number {
  const b = new Uint32Array(new Float32Array([x]).buffer);
  return b[0]!;
}
function fromBits(b: number): number {
  return new Float32Array(new Uint32Array([b]).buffer)[0]!;
}

describe('float conversions', () => {
  it('bf16 rounds to nearest even like torch', () => {
    assert.equal(float32ToBf16Bits(1), 0x3f80);
    assert.equal(float32ToBf16Bits(-2), 0xc000);
    assert.equal(float32ToBf16Bits(fromBits(0x3f808000)), 0x3f80); // tie, even stays
    assert.equal(float32ToBf16Bits(fromBits(0x3f818000)), 0x3f82); // tie, odd rounds up
    assert.equal(float32ToBf16Bits(fromBits(0x3f808001)), 0x3f81); // above half
    assert.equal(float32ToBf16Bits(fromBits(0x3f807fff)), 0x3f80); // below half
    assert.equal(float32ToBf16Bits(NaN), 0x7fc0);
    assert.equal(float32ToBf16Bits(Infinity), 0x7f80);
    assert.equal(float32ToBf16Bits(-Infinity), 0xff80);
    assert.equal(float32ToBf16Bits(3.4028234663852886e38), 0x7f80); // FLT_MAX rounds to inf, as in torch
    assert.equal(float32ToBf16Bits(0.1), 0x3dcd);
    assert.deepEqual([...bf16ToFloat32(float32ToBf16([1.5, -0.25, 0]))], [1.5, -0.25, 0]);
  });

  it('f16 rounds to nearest even with subnormals, overflow and NaN', () => {
    assert.equal(float32ToF16Bits(1), 0x3c00);
    assert.equal(float32ToF16Bits(-2), 0xc000);
    assert.equal(float32ToF16Bits(0.1), 0x2e66);
    assert.equal(float32ToF16Bits(1 / 3), 0x3555);
    assert.equal(float32ToF16Bits(65504), 0x7bff);
    assert.equal(float32ToF16Bits(65519), 0x7bff);
    assert.equal(float32ToF16Bits(65520), 0x7c00); // rounds to inf
    assert.equal(float32ToF16Bits(1e6), 0x7c00);
    assert.equal(float32ToF16Bits(2 ** -24), 0x0001);
    assert.equal(float32ToF16Bits(2 ** -25), 0x0000); // tie to even (0)
    assert.equal(float32ToF16Bits(3 * 2 ** -26), 0x0001);
    assert.equal(float32ToF16Bits(3 * 2 ** -25), 0x0002); // 1.5 ulp ties to 2
    assert.equal(float32ToF16Bits(2 ** -14), 0x0400); // smallest normal
    assert.equal(float32ToF16Bits(2 ** -14 - 2 ** -25), 0x0400); // rounds up into the normals
    assert.equal(float32ToF16Bits(-0), 0x8000);
    assert.equal(float32ToF16Bits(NaN) & 0x7e00, 0x7e00);
    assert.equal(float32ToF16Bits(1 + 2 ** -11), 0x3c00); // tie, even
    assert.equal(float32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02); // tie, odd rounds up
    const vals = [0, 1, -1, 0.5, 2 ** -24, 65504, -3.75];
    assert.deepEqual([...f16ToFloat32(float32ToF16(vals))], vals);
    assert.ok(Number.isNaN(f16ToFloat32([0x7e00])[0]!));
    // every f16 value survives f16 -> f32 -> f16
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) continue; // NaNs
      assert.equal(float32ToF16Bits(f16ToFloat32([h])[0]!), h);
    }
    // and bf16 too
    for (let h = 0; h < 0x10000; h += 7) {
      if ((h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0) continue;
      assert.equal(float32ToBf16Bits(bf16ToFloat32([h])[0]!), h);
    }
    assert.equal(bitsOf(bf16ToFloat32([0x3f80])[0]!), 0x3f800000);
  });
});

describe('safetensors header', () => {
  let dir = '';
  let cleanup = async () => {};
  before(async () => {
    ({ dir, cleanup } = await tempDir());
  });
  after(() => cleanup());

  it('writes and reads back F32 / F16 / BF16 with absolute offsets', async () => {
    const file = join(dir, 'a.safetensors');
    const a = new Float32Array([1, 2, 3, 4, 5, 6]);
    const b = float32ToBf16([0.5, -1.5, 2.25]);
    const c = float32ToF16([0.1, 0.2]);
    await writeSafetensors(
      file,
      [
        { name: 'a', dtype: 'F32', shape: [2, 3], data: a },
        { name: 'b', dtype: 'BF16', shape: [3], data: b },
        { name: 'c', dtype: 'F16', shape: [1, 2], data: c },
      ],
      { format: 'pt' },
    );
    const h = await readSafetensorsHeader(file);
    assert.equal(h.headerLength % 8, 0);
    assert.equal(h.dataStart, 8 + h.headerLength);
    assert.deepEqual(h.metadata, { format: 'pt' });
    assert.deepEqual([...h.entries.keys()], ['a', 'b', 'c']);
    const ea = h.entries.get('a')!;
    assert.equal(ea.offset, h.dataStart);
    assert.equal(ea.nbytes, 24);
    assert.deepEqual(ea.shape, [2, 3]);
    const eb = h.entries.get('b')!;
    assert.equal(eb.offset, h.dataStart + 24);
    const rb = weightRef(h, eb);
    assert.deepEqual(rb, { name: 'b', file, offset: h.dataStart + 24, nbytes: 6, dtype: 'BF16', shape: [3] });
    assert.deepEqual([...decodeToFloat32(await readTensorBytes(weightRef(h, ea)), 'F32')], [...a]);
    assert.deepEqual([...decodeToFloat32(await readTensorBytes(rb), 'BF16')], [0.5, -1.5, 2.25]);
    assert.deepEqual([...decodeToFloat32(await readTensorBytes(weightRef(h, h.entries.get('c')!)), 'F16')], [...f16ToFloat32(c)]);
  });

  it('refuses a non-float weight dtype, naming the file and the tensor', async () => {
    const file = join(dir, 'int.safetensors');
    await writeSafetensors(file, [{ name: 'model.norm.weight', dtype: 'I32', shape: [2], data: new Uint8Array(8) }]);
    const h = await readSafetensorsHeader(file);
    assert.throws(
      () => weightRef(h, h.entries.get('model.norm.weight')!),
      (e: unknown) => e instanceof LoadError && e.file === file && e.field === 'model.norm.weight' && /I32/.test(e.message) && e.message.includes(file),
    );
    await assert.rejects(readSafetensorsHeader(file, { weightDtypesOnly: true }), (e: unknown) => e instanceof LoadError && /model\.norm\.weight/.test(e.message) && /F32, F16 or BF16/.test(e.message));
  });

  async function rawFile(name: string, header: unknown, dataBytes: number, lenOverride?: bigint): Promise<string> {
    const file = join(dir, name);
    const json = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(lenOverride ?? BigInt(json.length));
    await writeFile(file, Buffer.concat([len, json, Buffer.alloc(dataBytes)]));
    return file;
  }

  it('rejects corrupt headers with the file and tensor named', async () => {
    const past = await rawFile('past.safetensors', { w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 8);
    await assert.rejects(readSafetensorsHeader(past), (e: unknown) => e instanceof LoadError && e.file === past && e.field === 'w' && /past the end/.test(e.message));

    const size = await rawFile('size.safetensors', { w: { dtype: 'F16', shape: [4], data_offsets: [0, 16] } }, 16);
    await assert.rejects(readSafetensorsHeader(size), (e: unknown) => e instanceof LoadError && /hold 16 bytes/.test(e.message) && /\[4\]/.test(e.message));

    const longHeader = await rawFile('long.safetensors', { w: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 4, 10_000n);
    await assert.rejects(readSafetensorsHeader(longHeader), (e: unknown) => e instanceof LoadError && /runs past the end/.test(e.message));

    const unknown = await rawFile('unk.safetensors', { w: { dtype: 'Q4_K', shape: [1], data_offsets: [0, 1] } }, 1);
    await assert.rejects(readSafetensorsHeader(unknown), (e: unknown) => e instanceof LoadError && /Q4_K/.test(e.message));

    const overlap = await rawFile(
      'overlap.safetensors',
      { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } },
      12,
    );
    await assert.rejects(readSafetensorsHeader(overlap), (e: unknown) => e instanceof LoadError && /overlap/.test(e.message));

    const bad = await rawFile('bad.safetensors', { w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4);
    await assert.rejects(readSafetensorsHeader(bad), (e: unknown) => e instanceof LoadError && e.field === 'w');

    const tiny = join(dir, 'tiny.safetensors');
    await writeFile(tiny, Buffer.alloc(3));
    await assert.rejects(readSafetensorsHeader(tiny), (e: unknown) => e instanceof LoadError && /3 bytes/.test(e.message));

    await assert.rejects(readSafetensorsHeader(join(dir, 'nope.safetensors')), (e: unknown) => e instanceof LoadError && /does not exist/.test(e.message));
  });
});
