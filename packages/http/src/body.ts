// Reading a request body under a size limit, and writing a JSON reply.

import type { IncomingMessage, ServerResponse } from 'node:http';

/** A request body over the server's limit; `declared` is its Content-Length when it gave one. */
export class BodyTooLargeError extends Error {
  override readonly name = 'BodyTooLargeError';
  constructor(
    readonly limit: number,
    readonly declared: number | null,
  ) {
    super(`request body is ${declared === null ? 'more than' : `${declared} bytes,`} over the limit of ${limit} bytes`);
  }
}

/**
 * Reads the whole body of `req`, refusing one over `limit` bytes with {@link BodyTooLargeError}:
 * at once when Content-Length says so, otherwise as soon as the bytes read pass it.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      reject(new BodyTooLargeError(limit, declared));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > limit) {
        over = true;
        reject(new BodyTooLargeError(limit, null));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!over) resolve(Buffer.concat(chunks));
    });
    req.on('error', reject);
  });
}

/** Writes `body` as a JSON reply with its length, unless a reply has already begun. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}
