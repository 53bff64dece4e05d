// The built renderer (out/renderer) as static files. Only files under the root are
// served: the decoded path is resolved against it and, after following symlinks,
// must still be inside it. Unknown extension-less paths get index.html (client-side
// routes); anything else missing is a 404.
import fs from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.txt': 'text/plain; charset=utf-8',
  '.wasm': 'application/wasm',
};

export function mimeType(file: string): string {
  return MIME[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
}

function inside(root: string, p: string): boolean {
  return p === root || p.startsWith(root + path.sep);
}

async function statFile(p: string): Promise<fs.Stats | null> {
  try {
    return await fs.promises.stat(p);
  } catch {
    return null;
  }
}

/** The file a URL path names under `root`, or null (outside the root, or missing). */
export async function resolveStatic(root: string, pathname: string): Promise<string | null> {
  let decoded: string;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    return null;
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return null;
  const realRoot = await fs.promises.realpath(root);
  let file = path.resolve(realRoot, `.${path.posix.normalize(`/${decoded}`)}`);
  if (!inside(realRoot, file)) return null;
  let st = await statFile(file);
  if (st?.isDirectory()) {
    file = path.join(file, 'index.html');
    st = await statFile(file);
  }
  if (!st && path.extname(decoded) === '') {
    file = path.join(realRoot, 'index.html');
    st = await statFile(file);
  }
  if (!st?.isFile()) return null;
  const real = await fs.promises.realpath(file);
  return inside(realRoot, real) ? real : null;
}

/** Sends a file (GET and HEAD). */
export function sendFile(req: IncomingMessage, res: ServerResponse, file: string, headers: Record<string, string>): void {
  const size = fs.statSync(file).size;
  res.writeHead(200, {
    ...headers,
    'Content-Type': mimeType(file),
    'Content-Length': String(size),
    // The page must be re-fetched (it is where the token check happens); hashed assets could be cached, but are small.
    'Cache-Control': 'no-cache',
  });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  const stream = fs.createReadStream(file);
  stream.on('error', () => res.destroy());
  stream.pipe(res);
}
