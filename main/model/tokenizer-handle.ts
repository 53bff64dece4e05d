// The main thread's tokenizer: what a tokenize worker found when it loaded and checked the
// folder (TokenizerSummary: special ids, vocabulary size, length bound), and the workers'
// encode and decode. Nothing is parsed here: building a Llama-3 tokenizer.json takes over a
// second (0.3 s for Llama-2's), which would stop `serve` and the app's main process for that
// long at every first run on a folder. LensTokenizer (tokenizer.ts) is the tokenizer itself;
// it runs in the workers, and in scripts and tests that may block.
import { decodeInWorker, encodeInWorker, type TokenizeOptions } from './tokenize-async.js';
import { PieceStreams } from './piece-streams.js';
import { minTokensFor } from './token-bound.js';
import type { TokenizerSummary } from './tokenizer.js';

export class TokenizerHandle {
  /** Absolute path of the folder. */
  readonly dir: string;
  readonly bosId: number | null;
  readonly eosId: number | null;
  /** Largest token id + 1 (model vocabulary and added tokens). */
  readonly vocabSize: number;
  private readonly info: TokenizerSummary;
  /**
   * The last texts encoded, with their ids: the run's preflight tokenizes the document, and
   * the run asking for the very same text right after costs nothing.
   */
  private readonly recent = { document: null as { text: string; ids: number[] } | null, prompt: null as { text: string; ids: number[] } | null };

  /** `summary` as the workers made it (shared, read only). */
  constructor(summary: TokenizerSummary) {
    this.info = summary;
    this.dir = summary.dir;
    this.bosId = summary.bosId;
    this.eosId = summary.eosId;
    this.vocabSize = summary.vocabSize;
  }

  /**
   * The document's ids (special prefix, then the text) from a worker, with a time limit and
   * cancel; a long document is encoded in pieces on several workers where the tokenizer
   * allows it (tokenize-split.ts), with the ids of one encode.
   */
  async encodeDocumentAsync(text: string, options: TokenizeOptions = {}): Promise<number[]> {
    if (this.recent.document?.text === text) return [...this.recent.document.ids];
    const ids = await encodeInWorker(this.dir, text, 'document', options, this.info.splitsAtParagraphs);
    this.recent.document = { text, ids };
    return [...ids];
  }

  /** The text's ids without any special token (appended after a document), from a worker. */
  async encodePromptAsync(text: string, options: TokenizeOptions = {}): Promise<number[]> {
    if (this.recent.prompt?.text === text) return [...this.recent.prompt.ids];
    const ids = await encodeInWorker(this.dir, text, 'prompt', options);
    this.recent.prompt = { text, ids };
    return [...ids];
  }

  /** A lower bound on the document's ids, in time linear in the text's length and without tokenizing. */
  minDocumentTokens(text: string): number {
    return this.info.documentPrefix.length + minTokensFor(this.info.maxTokenUnits, text);
  }

  minPromptTokens(text: string): number {
    return minTokensFor(this.info.maxTokenUnits, text);
  }

  /** Each group of ids to its text, on a worker. */
  decodeAsync(groups: number[][], options: TokenizeOptions & { skipSpecialTokens?: boolean } = {}): Promise<string[]> {
    return decodeInWorker(this.dir, groups, options);
  }

  /** Live pieces of `rows` generations (piece-streams.ts), decoded on a worker. */
  pieceStreams(rows: number, options: TokenizeOptions & { onPiece?: (row: number, piece: string, index: number) => void } = {}): PieceStreams {
    const { onPiece, ...decodeOptions } = options;
    return new PieceStreams({ rows, onPiece, decode: (groups) => this.decodeAsync(groups, decodeOptions) });
  }
}
