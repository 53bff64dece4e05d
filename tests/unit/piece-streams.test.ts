// The main thread's live pieces of several generations, decoded on a tokenize worker
// (piece-streams.ts through TokenizerHandle): the same pieces as the tokenizer's own
// decodeTokenPieces, one worker task per burst of pushes, each row's pieces heard in order.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { TokenizerHandle } from '../../main/model/tokenizer-handle.js';
import { tokenizerSummaryInWorker } from '../../main/model/tokenize-async.js';
import { defaultTokenizerDir, loadTokenizer, type LensTokenizer } from '../../main/model/tokenizer.js';
import { watchTasks } from './worker-spy.js';
import { mulberry32 } from '../seeded-random.js';

describe('piece streams decoded on a worker', { timeout: 120_000 }, () => {
  let tok: LensTokenizer;
  let handle: TokenizerHandle;
  // Texts whose ids include byte-fallback runs (characters split over several ids), spaces, newlines.
  const TEXTS = ['Hello world, and more.', '𝔘x and 😀 then ü', ' a\n\n b\tc', 'Call me Ishmael. Some years ago—never mind how long precisely'];
  before(async () => {
    tok = await loadTokenizer(defaultTokenizerDir());
    handle = new TokenizerHandle(await tokenizerSummaryInWorker(defaultTokenizerDir()));
  });

  it('gives every row the pieces decodeTokenPieces gives, one task per step, each row heard in order', async () => {
    const rows = TEXTS.map((t) => tok.encodePrompt(t));
    const steps = Math.max(...rows.map((r) => r.length));
    const heard = rows.map(() => [] as { piece: string; index: number }[]);
    const watch = watchTasks('decode');
    try {
      const streams = handle.pieceStreams(rows.length, { onPiece: (row, piece, index) => heard[row]!.push({ piece, index }) });
      for (let step = 0; step < steps; step++) {
        // One step: one id per row that still generates, in one synchronous loop (as generate.ts).
        for (const [r, ids] of rows.entries()) if (step < ids.length) streams.push(r, ids[step]!);
        await new Promise((resolve) => setImmediate(resolve));
      }
      const pieces = await streams.finish();
      for (const [r, ids] of rows.entries()) {
        assert.deepEqual(pieces[r], tok.decodeTokenPieces(ids), TEXTS[r]);
        assert.deepEqual(heard[r]!.map((h) => h.index), ids.map((_, i) => i), 'each piece heard once, in order');
        // No text here ends inside a character: what was heard live is what finish() gives.
        assert.deepEqual(heard[r]!.map((h) => h.piece), pieces[r]);
      }
      assert.equal(watch.inputs.length, steps, 'one decode task per step');
    } finally {
      watch.restore();
    }
  });

  it('keeps each row in order when a burst holds several ids of one row, and shows a character left unfinished', async () => {
    const random = mulberry32(7);
    const ids = TEXTS.map((t) => tok.encodePrompt(t));
    // An emoji cut in the middle of its bytes: its ids never complete a character.
    const cut = tok.encodePrompt('😀').slice(0, 2);
    const rows = [...ids, cut];
    const streams = handle.pieceStreams(rows.length);
    const at = rows.map(() => 0);
    while (at.some((a, r) => a < rows[r]!.length)) {
      // A burst of random length over random rows, pushed without a pause.
      for (let n = 1 + Math.floor(random() * 6); n > 0; n--) {
        const r = Math.floor(random() * rows.length);
        if (at[r]! < rows[r]!.length) streams.push(r, rows[r]![at[r]!++]!);
      }
      if (random() < 0.5) await Promise.resolve();
    }
    const pieces = await streams.finish();
    rows.forEach((r, i) => assert.deepEqual(pieces[i], tok.decodeTokenPieces(r), `row ${i}`));
    assert.equal(pieces[rows.length - 1]!.join(''), tok.decode(cut), 'the unfinished character as decode shows it');
  });

  it('a stopped stream hears nothing more and finish() rejects', async () => {
    let heard = 0;
    const streams = handle.pieceStreams(1, { onPiece: () => heard++ });
    for (const id of tok.encodePrompt('Hello world')) streams.push(0, id);
    streams.stop();
    await assert.rejects(streams.finish(), /stopped/);
    assert.equal(heard, 0);
  });

  it('a failing decode is the error finish() gives', async () => {
    const bad = new TokenizerHandle({ ...(await tokenizerSummaryInWorker(defaultTokenizerDir())), dir: '/nonexistent/tokenizer' });
    const streams = bad.pieceStreams(1);
    streams.push(0, 1);
    await assert.rejects(streams.finish(), /tokenizer/);
  });
});
