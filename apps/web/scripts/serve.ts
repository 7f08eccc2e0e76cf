// Serves the built web app on 127.0.0.1 (building it first when a source is newer): static files
// only, GET and HEAD, with a content security policy that allows no host but this one.
// Usage: npm run web -- [--port 8080] [--rebuild]
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildWeb, distDir, needsBuild } from './build.js';

export { buildWeb } from './build.js';

const types: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json; charset=utf-8',
  '.jsonl': 'application/jsonl; charset=utf-8',
  '.model': 'application/octet-stream',
};

/** Headers of every response: nothing may load from or send to another host. */
export const securityHeaders = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; " +
    "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
  'cross-origin-resource-policy': 'same-origin',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

/**
 * Starts the server on 127.0.0.1 (port 0 picks a free one) and resolves with its URL and a close().
 * Requests whose Host is not this address (DNS rebinding) are refused.
 */
export async function serveWeb({ port = 8080, root = distDir }: { port?: number; root?: string } = {}): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer(async (req, res) => {
    const { port: actual } = server.address() as AddressInfo;
    const hosts = new Set([`127.0.0.1:${actual}`, `localhost:${actual}`]);
    if (!hosts.has(req.headers.host ?? '')) return void res.writeHead(421, { 'content-type': 'text/plain' }).end('wrong Host header\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return void res.writeHead(405, { allow: 'GET, HEAD' }).end();
    let path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    if (path.endsWith('/')) path += 'index.html';
    const file = normalize(join(root, path));
    if (!file.startsWith(root + sep) || path.split('/').some((p) => p.startsWith('.'))) return void res.writeHead(404).end();
    try {
      const body = await readFile(file);
      res.writeHead(200, { ...securityHeaders, 'content-type': types[extname(file)] ?? 'application/octet-stream', 'content-length': body.byteLength });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch {
      res.writeHead(404, { ...securityHeaders, 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  return { url, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name: string): string | undefined => {
    const i = process.argv.indexOf(name);
    return i < 0 ? undefined : process.argv[i + 1];
  };
  if (process.argv.includes('--rebuild') || (await needsBuild())) {
    console.log('building the web app...');
    const files = await buildWeb();
    console.log(`built ${files.length} files, ${(files.reduce((s, f) => s + f.bytes, 0) / 1024 / 1024).toFixed(2)} MiB, in ${distDir}`);
  }
  const port = Number(arg('--port') ?? 8080);
  const { url } = await serveWeb({ port }).catch((err: NodeJS.ErrnoException) => {
    console.error(err.code === 'EADDRINUSE' ? `port ${port} is in use; pass --port <another>` : err.message);
    process.exit(1);
  });
  console.log(`HuaTuo in the browser: ${url}  (Ctrl-C stops; the folder ${distDir} is also deployable as static files)`);
}
