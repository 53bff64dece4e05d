// The pieces of text of several generations as they stream (incremental-detok.ts), decoded on
// a tokenize worker: the main thread holds only ids and offsets, never a parsed tokenizer
// (a Llama-3 tokenizer.json takes over a second to build, which would freeze `serve` and the
// app for that long).
//
// The ids pushed in one synchronous burst (a decode step gives one id per sequence in one
// loop, generate.ts) go to the worker as one task, after the previous burst's task: a step
// costs one round trip, off the engine's path, and each row's pieces come out in its order.
import { allPieces, newDetokState, pendingRuns, pushId, takePiece, type DetokState } from './incremental-detok.js';

export interface PieceStreamsOptions {
  /** Each group of ids to its text (decodeInWorker, bound to the tokenizer and the run's signal). */
  decode: (groups: number[][]) => Promise<string[]>;
  /** Sequences. */
  rows: number;
  /** Each push's piece, in order within its row (a step's, in row order): `index` is the id's position in its row. */
  onPiece?: (row: number, piece: string, index: number) => void;
}

export class PieceStreams {
  private readonly states: DetokState[];
  /** Pushed, not yet sent: [row, id] in push order. */
  private waiting: [number, number][] = [];
  private scheduled = false;
  /** The bursts' tasks, one after another; never rejects (the first failure is kept). */
  private chain: Promise<void> = Promise.resolve();
  private failure: { error: unknown } | null = null;

  constructor(private readonly options: PieceStreamsOptions) {
    this.states = Array.from({ length: options.rows }, () => newDetokState());
  }

  push(row: number, id: number): void {
    if (!this.states[row]) throw new RangeError(`piece streams: no row ${row}`);
    this.waiting.push([row, id]);
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      const burst = this.waiting;
      this.waiting = [];
      this.chain = this.chain.then(() => this.decodeBurst(burst));
    });
  }

  /** Throws what made a burst's decoding fail, if anything has. */
  throwIfFailed(): void {
    if (this.failure) throw this.failure.error;
  }

  /** No more pieces are decoded or heard of (the generation failed); finish() rejects. */
  stop(): void {
    this.failure ??= { error: new Error('the piece streams were stopped') };
  }

  /** Waits for every push's piece; each row's pieces (the last showing any text left pending). Throws what failed. */
  async finish(): Promise<string[][]> {
    // Pushes of this very tick have not been scheduled yet: wait a microtask for them.
    await Promise.resolve();
    await this.chain;
    if (this.failure) throw this.failure.error;
    const runs = this.states.map((s) => pendingRuns(s));
    const groups = runs.flatMap((r) => (r ? r : []));
    const texts = groups.length ? await this.options.decode(groups) : [];
    let at = 0;
    return this.states.map((s, i) => {
      if (!runs[i]) return allPieces(s, null);
      const [before, after] = [texts[at]!, texts[at + 1]!];
      at += 2;
      return allPieces(s, after.slice(before.length));
    });
  }

  /**
   * One burst: a row's k-th id of the burst depends on its (k-1)-th's offsets, so a burst with
   * several ids of a row goes in rounds, each round one task (a generation step is one round).
   */
  private async decodeBurst(burst: [number, number][]): Promise<void> {
    if (this.failure) return;
    const rounds: [number, number][][] = [];
    const seen = new Map<number, number>();
    for (const entry of burst) {
      const k = seen.get(entry[0]) ?? 0;
      seen.set(entry[0], k + 1);
      (rounds[k] ??= []).push(entry);
    }
    try {
      for (const round of rounds) {
        const groups = round.flatMap(([row, id]) => pushId(this.states[row]!, id));
        const texts = await this.options.decode(groups);
        if (this.failure) return;
        round.forEach(([row], j) => {
          const state = this.states[row]!;
          const piece = takePiece(state, texts[2 * j]!, texts[2 * j + 1]!);
          this.options.onPiece?.(row, piece, state.out.length - 1);
        });
      }
    } catch (e) {
      this.failure = { error: e };
    }
  }
}
