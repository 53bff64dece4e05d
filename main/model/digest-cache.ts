// File digests that survive restarts: one JSON file in the data folder (serve's
// --data-dir, the app's user-data folder, the CLI's default data folder) mapping an
// absolute path to the SHA-256 its file had under a stamp (file-stamp.ts: size, mtime,
// ctime, inode, device). A second start on the same 13 GB checkpoint hashes nothing; a
// file that changed in any way has another stamp and is hashed again.
//
// The file is written atomically (write-then-rename) and merged with what is on disk
// first, so two processes sharing a data folder lose no entry of each other's but the
// oldest; a missing, unreadable or corrupt file is treated as empty, never as an error.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../files/atomic-write.js';
import { parseJsonText } from '../files/json-text.js';
import { readRegularFile } from '../files/read-regular-file.js';
import { sameStamp, type FileStamp } from './file-stamp.js';

export const DIGEST_CACHE_FILE = 'digests.json';
const FORMAT = 'adapterlens.digests/1';
/** Entries kept (most recently used); a few models and a few hundred adapters fit. */
const MAX_ENTRIES = 4096;

const stampSchema = z.object({
  size: z.number().int().nonnegative(),
  mtimeMs: z.number(),
  ctimeMs: z.number(),
  ino: z.number().int().nonnegative(),
  dev: z.number().int().nonnegative(),
});
const entrySchema = z.object({ stamp: stampSchema, sha256: z.string().regex(/^[0-9a-f]{64}$/), usedAt: z.number() });
const fileSchema = z.object({ format: z.literal(FORMAT), entries: z.record(z.string(), entrySchema) });

type Entry = z.output<typeof entrySchema>;

export class DigestCache {
  private entries = new Map<string, Entry>();
  private loaded: Promise<void> | null = null;
  private dirty = false;
  private writing: Promise<void> = Promise.resolve();

  /** `file` null: a cache that lives only as long as the process. */
  constructor(readonly file: string | null) {}

  static inDataDir(dataDir: string): DigestCache {
    return new DigestCache(path.join(dataDir, DIGEST_CACHE_FILE));
  }

  private load(): Promise<void> {
    this.loaded ??= (async () => {
      for (const [k, v] of await readEntries(this.file)) if (!this.entries.has(k)) this.entries.set(k, v);
    })();
    return this.loaded;
  }

  /** The digest stored for `file` (an absolute path) under exactly this stamp, or null. */
  async get(file: string, stamp: FileStamp): Promise<string | null> {
    await this.load();
    const e = this.entries.get(file);
    if (!e || !sameStamp(e.stamp, stamp)) return null;
    e.usedAt = Date.now();
    return e.sha256;
  }

  async set(file: string, stamp: FileStamp, sha256: string): Promise<void> {
    await this.load();
    this.entries.set(file, { stamp: { ...stamp }, sha256, usedAt: Date.now() });
    this.dirty = true;
  }

  /** Writes the cache if anything changed (merged with the file's current entries). Failures are swallowed: a cache is never worth an error. */
  flush(): Promise<void> {
    if (!this.file || !this.dirty) return this.writing;
    this.dirty = false;
    const file = this.file;
    this.writing = this.writing.then(async () => {
      try {
        const merged = new Map(await readEntries(file));
        for (const [k, v] of this.entries) {
          const old = merged.get(k);
          if (!old || old.usedAt <= v.usedAt) merged.set(k, v);
        }
        const kept = [...merged].sort((a, b) => b[1].usedAt - a[1].usedAt).slice(0, MAX_ENTRIES);
        await mkdir(path.dirname(file), { recursive: true });
        await writeFileAtomic(file, JSON.stringify({ format: FORMAT, entries: Object.fromEntries(kept) }));
      } catch {
        // A read-only data folder: the digests are simply computed again next time.
      }
    });
    return this.writing;
  }
}

async function readEntries(file: string | null): Promise<[string, Entry][]> {
  if (!file) return [];
  try {
    const text = (await readRegularFile(file, { maxBytes: 64 << 20 })).toString('utf8');
    const parsed = fileSchema.safeParse(parseJsonText(text, 8));
    return parsed.success ? Object.entries(parsed.data.entries) : [];
  } catch {
    return [];
  }
}
