// `adapterlens serve`: the app's UI and RPC over HTTP + WebSocket, for a browser on this
// machine or, through an SSH tunnel, on another one (e.g. a GPU box:
// `ssh -L 8765:127.0.0.1:8765 gpu` then `adapterlens serve --port 8765` there).
//
// stdout gets exactly one line, `AdapterLens serving at URL` (tests and scripts parse
// it); everything else goes to stderr. Runs until SIGINT/SIGTERM, then cancels the run
// in progress and frees the engine before exiting.
import net from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { AppService } from '../rpc/service.js';
import { startServer } from '../server/server.js';
import { projectRoot } from '../paths.js';
import { defaultDataDir } from './data-dir.js';

export const SERVE_USAGE = `Usage:
  adapterlens serve [--port N] [--host 127.0.0.1] [--data-dir DIR] [--budget-gib G] [--device auto|cpu|cuda]
    --port N        port to listen on (default 8765; 0 picks a free one)
    --host H        address to bind (default 127.0.0.1; anything else is reachable from the network)
    --data-dir DIR  where finished runs and file digests are kept (default $XDG_DATA_HOME/adapterlens or ~/.local/share/adapterlens)
    --budget-gib G  cache memory budget (default 8)
    --device D      engine build to use (default auto)`;

const OPTIONS = {
  port: { type: 'string' },
  host: { type: 'string' },
  'data-dir': { type: 'string' },
  'budget-gib': { type: 'string' },
  device: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export interface ServeConfig {
  port: number;
  host: string;
  dataDir: string;
  budgetBytes: number;
  device: 'auto' | 'cpu' | 'cuda';
}

export class ServeUsageError extends Error {}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (net.isIPv4(host) && host.startsWith('127.'));
}

/** Parses serve's arguments; null for --help. Throws ServeUsageError with a readable message. */
export function parseServeArgs(argv: string[]): ServeConfig | null {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: false, strict: true }));
  } catch (e) {
    throw new ServeUsageError((e as Error).message);
  }
  if (values.help) return null;
  const port = values.port === undefined ? 8765 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ServeUsageError(`--port ${values.port}: expected a whole number from 0 to 65535`);
  const host = values.host ?? '127.0.0.1';
  if (host === '' || /[\s/]/.test(host)) throw new ServeUsageError(`--host ${host}: expected an address or host name`);
  const gib = values['budget-gib'] === undefined ? 8 : Number(values['budget-gib']);
  if (!Number.isFinite(gib) || gib <= 0) throw new ServeUsageError(`--budget-gib ${values['budget-gib']}: expected a number of GiB > 0`);
  const device = values.device ?? 'auto';
  if (device !== 'auto' && device !== 'cpu' && device !== 'cuda') throw new ServeUsageError(`--device ${device}: expected auto, cpu or cuda`);
  return {
    port,
    host,
    dataDir: path.resolve(values['data-dir'] ?? defaultDataDir()),
    budgetBytes: Math.round(gib * 2 ** 30),
    device,
  };
}

function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals): void => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve(sig);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}

export async function serveCommand(argv: string[]): Promise<number> {
  let config: ServeConfig | null;
  try {
    config = parseServeArgs(argv);
  } catch (e) {
    process.stderr.write(`adapterlens serve: ${(e as Error).message}\n\n${SERVE_USAGE}\n`);
    return 2;
  }
  if (!config) {
    process.stdout.write(`${SERVE_USAGE}\n`);
    return 0;
  }
  if (!isLoopback(config.host)) {
    process.stderr.write(
      `adapterlens serve: WARNING: binding ${config.host} makes AdapterLens reachable from the network, in plain HTTP; ` +
        'the token is the only protection. Prefer the default 127.0.0.1 and an SSH tunnel.\n',
    );
  }
  const service = new AppService({
    transport: 'websocket',
    historyDir: path.join(config.dataDir, 'history'),
    dataDir: config.dataDir,
    cacheBudgetBytes: config.budgetBytes,
    device: config.device,
  });
  let server;
  try {
    server = await startServer({ service, rendererDir: path.join(projectRoot, 'out', 'renderer'), host: config.host, port: config.port });
  } catch (e) {
    await service.dispose();
    process.stderr.write(`adapterlens serve: cannot listen on ${config.host}:${config.port} (${(e as Error).message})\n`);
    return 1;
  }
  const signal = waitForSignal();
  process.stdout.write(`AdapterLens serving at ${server.url}\n`);
  // Load the engine now, so that a missing build is said here and not only in the browser.
  try {
    const { backend } = await service.handlers['app.info']({});
    process.stderr.write(`engine: ${backend.kind}, ${backend.device}${backend.fallbackReason ? ` (${backend.fallbackReason})` : ''}\n`);
  } catch (e) {
    process.stderr.write(`adapterlens serve: WARNING: the engine cannot be loaded: ${(e as Error).message}\n`);
  }
  process.stderr.write(`history: ${path.join(config.dataDir, 'history')}; Ctrl-C stops the server\n`);
  await signal;
  process.stderr.write('adapterlens serve: stopping…\n');
  await server.close();
  await service.dispose();
  return 0;
}
