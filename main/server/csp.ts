// The Content-Security-Policy of the renderer, in one place for both hosts of it: the
// Electron window (file://, no network at all) and `adapterlens serve` (http://, the RPC
// WebSocket on the same origin). The renderer's index.html carries a meta policy too;
// a browser enforces both, so neither may be looser than needed.

/** `connectSrc`: extra sources for fetch/WebSocket (serve: its own ws:// origin). */
export function contentSecurityPolicy(connectSrc: string[] = []): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "font-src 'self'",
    `connect-src 'self'${connectSrc.map((s) => ` ${s}`).join('')}`,
    "worker-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}
