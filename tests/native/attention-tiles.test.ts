// The tensor-core attention kernel's work items (native/src/engine/attention_tiles.cpp) on random
// plans, through the C++ check that `npm run build:native` builds beside the addon: every
// query in exactly one tile, one correction a tile, tiles in class order, the fewest tiles.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const binary = path.resolve(import.meta.dirname, '..', '..', 'native', 'build',
  process.platform === 'win32' ? 'adapterlens_attention_tiles_test.exe' : 'adapterlens_attention_tiles_test');

describe('attention tiles', () => {
  it('cover every query once, one correction a tile, in class order (2000 random plans)', () => {
    assert.ok(fs.existsSync(binary), `${binary} is built by npm run build:native`);
    const out = execFileSync(binary, { encoding: 'utf8' });
    assert.match(out, /attention tiles: 2000 random plans, 0 failures/);
  });
});
