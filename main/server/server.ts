// `adapterlens serve`'s HTTP server: the built renderer as static files and the RPC on
// a WebSocket at WS_RPC_PATH, one port, plain node:http + ws. Every request passes the
// checks of auth.ts (Host, token or cookie; Origin for the WebSocket) first.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { SERVE_TOKEN_PARAM, WS_RPC_PATH } from '../../shared/rpc.js';
import { LIMITS } from '../rpc/schemas.js';
import type { AppService } from '../rpc/service.js';
import { authorize, HostCheck, newAccessToken, queryToken, sessionCookie, urlHost } from './auth.js';
import { contentSecurityPolicy } from './csp.js';
import { resolveStatic, sendFile } from './static.js';
import { serveRpcSocket } from './ws-rpc.js';

export interface ServerOptions {
  service: AppService;
  /** The built renderer (out/renderer); when it has no index.html the page says how to build it. */
  rendererDir: string;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Fixed token (tests); a random one by default. */
  token?: string;
}

export interface RunningServer {
  host: string;
  port: number;
  token: string;
  /** The URL to open: http://HOST:PORT/?token=... (127.0.0.1 for a wildcard bind). */
  url: string;
  /** Closes every socket and the listener. The service is the caller's to dispose. */
  close(): Promise<void>;
}

const NOT_BUILT_PAGE = `<!doctype html><meta charset="utf-8"><title>AdapterLens</title>
<p>The AdapterLens user interface is not built yet. Run <code>npm run build</code> (or <code>npm run build:renderer</code>) in the project folder, then reload this page.</p>
<p>The RPC WebSocket is already being served.</p>`;

const UNAUTHORIZED = 'AdapterLens: open the URL that `adapterlens serve` printed (it carries the access token).\n';

function securityHeaders(hostHeader: string): Record<string, string> {
  return {
    'Content-Security-Policy': contentSecurityPolicy([`ws://${hostHeader}`]),
    'X-Content-Type-Options': 'nosniff',
    // The token is in the page's URL: never send it on as a Referer.
    'Referrer-Policy': 'no-referrer',
    'X-Frame-Options': 'DENY',
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Resource-Policy': 'same-origin',
  };
}

function text(res: http.ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...headers, 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': String(Buffer.byteLength(body)) });
  res.end(body);
}

function refuseUpgrade(socket: Duplex, status: number, reason: string, body: string): void {
  if (socket.destroyed) return;
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}

const BAD_TARGET = 'AdapterLens: the request target is not a path on this server.\n';
const TWO_HOSTS = 'AdapterLens: the request has more than one Host header.\n';

/**
 * The request target as a URL on this server, or null for anything that is not an
 * origin-form path ("/..."): "//", "http://[", "*" and absolute forms would make
 * `new URL` throw (or resolve against another host). Never throws.
 */
export function requestUrl(target: string | undefined): URL | null {
  const t = target ?? '/';
  if (!t.startsWith('/') || t.startsWith('//')) return null;
  try {
    return new URL(t, 'http://localhost');
  } catch {
    return null;
  }
}

/** Node keeps only the first of repeated Host headers; a request with two is ambiguous (and a smuggling vector) and refused. */
function hostHeaderCount(req: http.IncomingMessage): number {
  let n = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === 'host') n++;
  return n;
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const host = options.host ?? '127.0.0.1';
  const token = options.token ?? newAccessToken();
  const { service, rendererDir } = options;
  // The Host check needs the port, known only after listen (port 0).
  let hostCheck: HostCheck | null = null;
  let port = 0;

  const wss = new WebSocketServer({ noServer: true, maxPayload: 2 * LIMITS.documentBytes + 1024 * 1024 });
  wss.on('connection', (ws) => serveRpcSocket(ws, service));

  const server = http.createServer((req, res) => {
    void handleRequest(req, res).catch((e: unknown) => {
      if (!res.headersSent) text(res, 500, `AdapterLens: ${(e as Error).message}\n`);
      else res.destroy();
    });
  });

  async function handleRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (hostHeaderCount(req) > 1) return text(res, 400, TWO_HOSTS);
    const hostHeader = req.headers.host;
    if (!hostCheck?.allows(hostHeader)) return text(res, 403, 'AdapterLens: this server answers only to its own address (Host header refused).\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return text(res, 405, 'AdapterLens: only GET and HEAD are served.\n', { Allow: 'GET, HEAD' });
    const url = requestUrl(req.url);
    if (!url) return text(res, 400, BAD_TARGET);
    const auth = authorize(req, url, port, token);
    if (!auth) return text(res, queryToken(url) === null ? 401 : 403, UNAUTHORIZED);
    const headers = securityHeaders(hostHeader!);
    // The first load carries the token: from then on the cookie authorizes assets and the WebSocket.
    if (auth === 'query') headers['Set-Cookie'] = sessionCookie(port, token);
    if (url.pathname === WS_RPC_PATH) return text(res, 426, 'AdapterLens: the RPC speaks WebSocket here.\n', headers);
    if (!fs.existsSync(path.join(rendererDir, 'index.html'))) {
      res.writeHead(503, { ...headers, 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : NOT_BUILT_PAGE);
      return;
    }
    const file = await resolveStatic(rendererDir, url.pathname);
    if (!file) return text(res, 404, 'AdapterLens: not found.\n', headers);
    sendFile(req, res, file, headers);
  }

  // No listener may throw: an exception in an 'upgrade' or 'request' listener is an
  // uncaught exception, which ends the process and the run in progress.
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    try {
      handleUpgrade(req, socket, head);
    } catch {
      refuseUpgrade(socket, 400, 'Bad Request', 'AdapterLens: bad request\n');
    }
  });
  server.on('clientError', (_err, socket) => {
    // Malformed HTTP (bad header syntax, oversized headers): answer 400 and close, as Node's default does, without throwing.
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });

  function handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    if (hostHeaderCount(req) > 1) return refuseUpgrade(socket, 400, 'Bad Request', TWO_HOSTS);
    const hostHeader = req.headers.host;
    if (!hostCheck?.allows(hostHeader)) return refuseUpgrade(socket, 403, 'Forbidden', 'Host header refused\n');
    const url = requestUrl(req.url);
    if (!url) return refuseUpgrade(socket, 400, 'Bad Request', BAD_TARGET);
    if (url.pathname !== WS_RPC_PATH) return refuseUpgrade(socket, 404, 'Not Found', `the RPC is at ${WS_RPC_PATH}\n`);
    if (!hostCheck.allowsOrigin(req.headers.origin, hostHeader)) return refuseUpgrade(socket, 403, 'Forbidden', 'Origin refused\n');
    if (!authorize(req, url, port, token)) return refuseUpgrade(socket, 401, 'Unauthorized', UNAUTHORIZED);
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;
  hostCheck = new HostCheck(host, port);
  const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : urlHost(host);

  return {
    host,
    port,
    token,
    url: `http://${shownHost}:${port}/?${SERVE_TOKEN_PARAM}=${token}`,
    close: async () => {
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
