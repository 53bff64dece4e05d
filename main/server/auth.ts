// Who may talk to `adapterlens serve`. Three checks, all cheap:
//  - the access token: random, printed once in the URL; the first page load carries it
//    as ?token=, which sets an HttpOnly SameSite=Strict cookie so the page's assets and
//    its WebSocket are authorized without it. Any process on the machine can reach a
//    loopback port; only the one who started the server knows the token.
//  - the Host header must name this server (the bound host or a loopback name): a page
//    on another site that re-points its DNS name at 127.0.0.1 (DNS rebinding) sends
//    its own name, and is refused before the token is even looked at.
//  - a WebSocket's Origin, when present (browsers always send it), must be this
//    server's own: another site's page cannot open the RPC socket with our cookie.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { SERVE_TOKEN_PARAM } from '../../shared/rpc.js';

export function newAccessToken(): string {
  return randomBytes(24).toString('base64url');
}

export function sameToken(given: string | null | undefined, token: string): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Cookies are shared by every port of a host: the name carries the port, so two servers do not overwrite each other's. */
export function cookieName(port: number): string {
  return `adapterlens_${port}`;
}

export function sessionCookie(port: number, token: string): string {
  return `${cookieName(port)}=${token}; HttpOnly; SameSite=Strict; Path=/`;
}

function cookieValue(req: IncomingMessage, name: string): string | null {
  const header = req.headers.cookie;
  if (!header) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

export function queryToken(url: URL): string | null {
  return url.searchParams.get(SERVE_TOKEN_PARAM);
}

export type Authorization = 'query' | 'cookie' | null;

/** How the request proves it knows the token: its query, its cookie, or not at all. */
export function authorize(req: IncomingMessage, url: URL, port: number, token: string): Authorization {
  if (sameToken(queryToken(url), token)) return 'query';
  if (sameToken(cookieValue(req, cookieName(port)), token)) return 'cookie';
  return null;
}

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'];

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '[::]';
}

/** "[::1]" for IPv6 literals, as they appear in a Host header and a URL. */
export function urlHost(host: string): string {
  return net.isIPv6(host) ? `[${host}]` : host;
}

export class HostCheck {
  private readonly names: Set<string>;
  private readonly wildcard: boolean;

  constructor(bindHost: string, private readonly port: number) {
    this.wildcard = isWildcard(bindHost);
    this.names = new Set([...LOOPBACK_NAMES, urlHost(bindHost).toLowerCase()]);
    if (this.wildcard) this.names.add(os.hostname().toLowerCase());
  }

  /** Whether a Host header names this server. */
  allows(hostHeader: string | undefined): boolean {
    if (!hostHeader) return false;
    const m = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d+))?$/i.exec(hostHeader.trim());
    if (!m) return false;
    const name = m[1]!.toLowerCase();
    const port = m[2] === undefined ? 80 : Number(m[2]);
    if (port !== this.port) return false;
    if (this.names.has(name)) return true;
    // Bound to every interface: any of the machine's addresses may be used, but never a DNS name
    // (the rebinding attack needs one).
    return this.wildcard && net.isIP(name.replace(/^\[|\]$/g, '')) !== 0;
  }

  /** A WebSocket Origin header is acceptable: absent (not a browser) or this very server. */
  allowsOrigin(origin: string | undefined, hostHeader: string | undefined): boolean {
    if (origin === undefined) return true;
    return hostHeader !== undefined && origin.toLowerCase() === `http://${hostHeader.trim().toLowerCase()}`;
  }
}
