// One HTTP request with headers fetch would not let a test set (Host, Origin), for the tests of
// the servers' access checks.
import { request } from 'node:http';

/** A reply: status, lowercase headers and the body as text. */
export interface RawReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** Sends `method path` to the server at `base` (http://host:port) with exactly these headers. */
export function rawRequest(base: string, path: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<RawReply> {
  const url = new URL(path, base);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port, path: url.pathname + url.search, method: init.method ?? (init.body === undefined ? 'GET' : 'POST'), headers: init.headers ?? {}, setHost: !('host' in (init.headers ?? {})) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(init.body);
  });
}
