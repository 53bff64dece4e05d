// Folder listing for picking model / adapter folders where there is no native dialog
// (the browser UI of `adapterlens serve`). Only sub-folders are listed, each marked by
// what it holds, so the UI can show "model" / "adapter" badges; files are never read.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FolderEntry, FolderListing } from '../../shared/rpc.js';
import { rpcError } from './errors.js';

/** A home folder with more sub-folders than this is listed in part (sorted, first ones). */
const MAX_ENTRIES = 2000;

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

async function kindOf(dir: string): Promise<FolderEntry['kind']> {
  if (await exists(path.join(dir, 'adapter_config.json'))) return 'adapter';
  if (await exists(path.join(dir, 'config.json'))) return 'model';
  return 'folder';
}

export async function browseFolder(dirIn: string | undefined): Promise<FolderListing> {
  const dir = path.resolve(dirIn ?? os.homedir());
  let dirents;
  try {
    dirents = await fs.readdir(dir, { withFileTypes: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw rpcError('NOT_FOUND', `${dir}: no such folder`);
    if (code === 'ENOTDIR') throw rpcError('INVALID_INPUT', `${dir}: not a folder`);
    if (code === 'EACCES' || code === 'EPERM') throw rpcError('INVALID_INPUT', `${dir}: permission denied`);
    if (code === 'ELOOP') throw rpcError('INVALID_INPUT', `${dir}: a symbolic link loop (or too many levels of links)`);
    throw rpcError('INVALID_INPUT', `${dir}: cannot be listed (${typeof code === 'string' ? code : String(e)})`);
  }
  const names: string[] = [];
  for (const d of dirents) {
    if (d.name.startsWith('.')) continue; // hidden folders: caches, VCS data
    if (d.isDirectory()) names.push(d.name);
    else if (d.isSymbolicLink()) {
      // Model folders are often symlinked into a cache (e.g. ~/.cache/huggingface snapshots).
      try {
        if ((await fs.stat(path.join(dir, d.name))).isDirectory()) names.push(d.name);
      } catch {
        // dangling link: not listed
      }
    }
  }
  names.sort((a, b) => a.localeCompare(b));
  const entries: FolderEntry[] = [];
  for (const name of names.slice(0, MAX_ENTRIES)) {
    const p = path.join(dir, name);
    entries.push({ name, path: p, kind: await kindOf(p) });
  }
  const parent = path.dirname(dir);
  return { dir, parent: parent === dir ? null : parent, entries };
}
