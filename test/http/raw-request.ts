// One HTTP request with headers fetch would not let a test set (Host, Origin), for the tests of
// the servers' access checks, and raw bytes on one connection for what a client library would hide.
import { request } from 'node:http';
import { connect } from 'node:net';

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

/** What a server wrote back on one connection, and whether it closed the connection itself. */
export interface RawExchange {
  text: string;
  closedByServer: boolean;
}

/**
 * Writes `bytes` (a whole HTTP request, as a client would put it on the wire) to 127.0.0.1:`port`
 * and collects the answer until the server closes the connection or `waitMs` pass after its last byte.
 */
export function rawExchange(port: number, bytes: string, waitMs = 2000): Promise<RawExchange> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const finish = (closedByServer: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text: Buffer.concat(chunks).toString('utf8'), closedByServer });
    };
    let timer = setTimeout(() => finish(false), waitMs);
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      clearTimeout(timer);
      timer = setTimeout(() => finish(false), waitMs);
    });
    socket.on('end', () => finish(true));
    socket.on('error', reject);
    socket.write(bytes);
  });
}
