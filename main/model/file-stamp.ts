// What identifies one version of a file without reading it: size, modification and
// change times, inode and device. A rewrite changes ctime even when mtime is restored
// (`touch -m`, tar, rsync -t), and a file replaced by another (a re-downloaded shard)
// changes inode, so a digest stored under a stamp is valid exactly while the stamp is.
import type { Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';

export interface FileStamp {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  dev: number;
}

export function stampOf(st: Stats): FileStamp {
  return { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, dev: st.dev };
}

export function sameStamp(a: FileStamp, b: FileStamp): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs && a.ino === b.ino && a.dev === b.dev;
}

/** The stamp as one string, for keys of in-memory caches. */
export function stampKey(st: Stats): string {
  return `${st.size}:${st.mtimeMs}:${st.ctimeMs}:${st.ino}:${st.dev}`;
}

/** The stamps of `names` in `dir` as one string ('-' for a file that is not there). */
export async function filesStamp(dir: string, names: readonly string[]): Promise<string> {
  const parts = await Promise.all(names.map(async (name) => `${name}:${await stat(join(dir, name)).then(stampKey, () => '-')}`));
  return parts.join('|');
}
