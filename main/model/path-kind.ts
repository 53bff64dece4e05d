// What a path is, without throwing: loaders use it to tell "missing" from "not a folder".
import { stat } from 'node:fs/promises';

export async function kindOf(path: string): Promise<'file' | 'dir' | 'other' | null> {
  try {
    const s = await stat(path);
    return s.isFile() ? 'file' : s.isDirectory() ? 'dir' : 'other';
  } catch {
    return null;
  }
}
