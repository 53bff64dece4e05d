// The attention plan's rules that the CUDA kernels and the decode graph rely on, through the
// two C++ checks `npm run build:native` builds beside the addon:
// - attention_tiles_test: the tensor-core kernel's tiles on random plans (every query in one
//   tile, one correction a tile, class order, the fewest tiles);
// - attention_plan_key_test: the decode graph's key, the same at every step of a generation and
//   different where a launch would be shaped differently.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const binary = (name: string): string => {
  const file = path.resolve(import.meta.dirname, '..', '..', 'native', 'build', process.platform === 'win32' ? `${name}.exe` : name);
  assert.ok(fs.existsSync(file), `${file} is built by npm run build:native`);
  return file;
};

describe('attention plan', () => {
  it('tiles: every query once, one correction a tile, in class order (2000 random plans)', () => {
    assert.match(execFileSync(binary('adapterlens_attention_tiles_test'), { encoding: 'utf8' }), /attention tiles: 2000 random plans, 0 failures/);
  });
  it("the decode graph's key: stable over the steps, changed by a store of another kind", () => {
    assert.match(execFileSync(binary('adapterlens_attention_plan_key_test'), { encoding: 'utf8' }), /attention plan keys: 0 failures/);
  });
});
