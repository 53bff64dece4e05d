// Where the CLI and `serve` keep what outlives a process (file digests, the CUDA probe's
// result): $XDG_DATA_HOME/adapterlens, or ~/.local/share/adapterlens.
import os from 'node:os';
import path from 'node:path';

/** $XDG_DATA_HOME/adapterlens, else ~/.local/share/adapterlens (the XDG base-directory default). */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_DATA_HOME;
  return path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.local', 'share'), 'adapterlens');
}
