// Local annotation server (plain node:http): /a/<token> serves the page, /api/... the
// annotator's own items and ratings, guarded by their token. Each rating is written in its
// own SQLite transaction before the reply, so a crash loses at most the one in flight.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { AccessConfigError, AccessGuard, BodyTooLargeError, normalizeAllowedHosts, normalizeCorsOrigins, readBody, sendJson, type AccessOptions } from '@huatuo/http';
import { DIMENSIONS, loadStudy, orderFor, STUDY_FILES, type Dimension, type StudyItem } from './blind.js';
import { ANNOTATION_PAGE } from './page.js';
import { isRatingValue, RatingStore } from './ratings.js';
import { RUBRIC, SCALE } from './rubric.js';
import { StudyError } from './errors.js';

/** Largest request body accepted, in bytes. */
export const MAX_BODY_BYTES = 16 * 1024;

/** A running annotation server. */
export interface AnnotationServer {
  server: Server;
  /** Base URL, e.g. http://127.0.0.1:40123 */
  url: string;
  /** Private link of each annotator. */
  links: Record<string, string>;
  /** Stops the server and closes the store. */
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** Options of {@link startAnnotationServer}. */
export interface AnnotationServerOptions extends AccessOptions {
  /** Address to bind. Default 127.0.0.1. */
  host?: string;
  /** Port; 0 picks a free one. Default 0. */
  port?: number;
}

/**
 * Serves the study in `dir` on `host:port` (port 0: chosen by the OS). Requests must name the
 * server in their Host header (the bound address, localhost or one of `allowedHosts`); pages
 * of other origins are refused unless listed in `corsOrigins`; ratings are posted as JSON.
 * @example const s = await startAnnotationServer('study', { port: 0 }); console.log(s.links);
 */
export async function startAnnotationServer(dir: string, opts: AnnotationServerOptions = {}): Promise<AnnotationServer> {
  try {
    normalizeAllowedHosts(opts.allowedHosts ?? []);
    normalizeCorsOrigins(opts.corsOrigins ?? []);
  } catch (e) {
    if (e instanceof AccessConfigError) throw new StudyError(`${e.option === 'allowedHosts' ? '--allowed-hosts' : '--cors-origin'}: ${e.message}`);
    throw e;
  }
  const { study, tokens } = loadStudy(dir);
  const store = RatingStore.open(join(dir, STUDY_FILES.ratings));
  const byToken = new Map(Object.entries(tokens).map(([name, token]) => [token, name]));
  const orders = new Map<string, StudyItem[]>();
  const orderOf = (name: string): StudyItem[] => {
    let o = orders.get(name);
    if (!o) orders.set(name, (o = orderFor(study, name)));
    return o;
  };
  const progress = (name: string): { rated: number; total: number } => {
    const order = orderOf(name);
    const codes = new Set(order.map((i) => i.code));
    const counts = new Map<string, number>();
    for (const r of store.list(name)) if (codes.has(r.code) && r.value !== null) counts.set(r.code, (counts.get(r.code) ?? 0) + 1);
    return { rated: [...counts.values()].filter((c) => c === DIMENSIONS.length).length, total: order.length };
  };
  const own = (name: string, code: string): Record<Dimension, number | null> => {
    const out = { safety: null, usability: null, smoothness: null } as Record<Dimension, number | null>;
    for (const r of store.list(name)) if (r.code === code) out[r.dimension] = r.value;
    return out;
  };

  let guard: AccessGuard | null = null;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    const access = guard!.check(req, res, path === '/api/ratings' ? ['POST'] : ['GET']);
    if (access === 'preflight') return;
    if (access !== null) throw new HttpError(access.status, access.message);
    if (req.method === 'GET' && path.startsWith('/a/')) {
      const token = decodeURIComponent(path.slice(3));
      if (!byToken.has(token)) throw new HttpError(403, 'unknown annotator link; ask the study owner for your private link');
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
      res.end(ANNOTATION_PAGE);
      return;
    }
    if (!path.startsWith('/api/')) throw new HttpError(404, `no page at ${path}; open your private link /a/<token>`);
    // RFC 6750: the scheme name is case-insensitive.
    const token = /^bearer +(.*)$/i.exec(req.headers.authorization ?? '')?.[1]?.trim() ?? '';
    const name = byToken.get(token);
    if (!name) throw new HttpError(403, token ? 'wrong annotator token' : 'missing annotator token (Authorization: Bearer <token>)');
    const order = orderOf(name);
    if (req.method === 'GET' && path === '/api/session') {
      const p = progress(name);
      const ratedCodes = new Map<string, number>();
      for (const r of store.list(name)) if (r.value !== null) ratedCodes.set(r.code, (ratedCodes.get(r.code) ?? 0) + 1);
      const open = order.findIndex((i) => (ratedCodes.get(i.code) ?? 0) < DIMENSIONS.length);
      return json(res, 200, { annotator: name, total: order.length, progress: p, resumeAt: open < 0 ? Math.max(0, order.length - 1) : open, rubric: RUBRIC, scale: SCALE });
    }
    const m = /^\/api\/items\/(\d+)$/.exec(path);
    if (req.method === 'GET' && m) {
      const i = Number(m[1]);
      const item = order[i];
      if (!item) throw new HttpError(404, `item ${i} does not exist; items are numbered 0 to ${order.length - 1}`);
      return json(res, 200, { index: i, total: order.length, code: item.code, question: item.question, response: item.response, ratings: own(name, item.code) });
    }
    if (req.method === 'POST' && path === '/api/ratings') {
      const notJson = guard!.requireJson(req);
      if (notJson !== null) throw new HttpError(notJson.status, `${notJson.message}; the annotation page posts {"code", "dimension", "value"} as JSON`);
      const body = await readRating(req);
      let parsed: unknown;
      try {
        parsed = JSON.parse(body);
      } catch (e) {
        throw new HttpError(400, `body is not valid JSON (${(e as Error).message}); send {"code": "...", "dimension": "safety", "value": 1}`);
      }
      const { code, dimension, value } = (parsed ?? {}) as { code?: unknown; dimension?: unknown; value?: unknown };
      if (typeof code !== 'string' || !order.some((i) => i.code === code)) throw new HttpError(400, `unknown item code ${JSON.stringify(code)}; rate only the items of your own list`);
      if (typeof dimension !== 'string' || !DIMENSIONS.includes(dimension as Dimension)) throw new HttpError(400, `dimension must be one of ${DIMENSIONS.join(', ')}; got ${JSON.stringify(dimension)}`);
      if (!isRatingValue(value)) throw new HttpError(400, `value must be 1, 2 or 3; got ${JSON.stringify(value)}`);
      store.rate({ annotator: name, code, dimension: dimension as Dimension, value, source: 'web' });
      return json(res, 200, { ok: true, progress: progress(name) });
    }
    throw new HttpError(req.method === 'GET' || req.method === 'POST' ? 404 : 405, `no route ${req.method} ${path}`);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (e instanceof HttpError && e.status === 413) {
        // Stop reading the rest of an oversized body: answer, then close the connection.
        res.setHeader('connection', 'close');
        res.on('finish', () => req.destroy());
      }
      if (e instanceof HttpError) json(res, e.status, { error: e.message });
      else json(res, 500, { error: `internal: ${(e as Error).message}` });
    });
  });
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  guard = new AccessGuard({ host, address: addr.address, port: addr.port }, opts);
  const base = `http://${host.includes(':') ? `[${host}]` : host}:${addr.port}`;
  const links = Object.fromEntries(Object.entries(tokens).map(([n, t]) => [n, `${base}/a/${encodeURIComponent(t)}`]));
  return {
    server,
    url: base,
    links,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          store.close();
          resolve();
        });
      }),
  };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  sendJson(res, status, body, { 'cache-control': 'no-store' });
}

async function readRating(req: IncomingMessage): Promise<string> {
  try {
    return (await readBody(req, MAX_BODY_BYTES)).toString('utf8');
  } catch (e) {
    if (e instanceof BodyTooLargeError) throw new HttpError(413, `request body over ${MAX_BODY_BYTES} bytes; send one rating at a time`);
    throw e;
  }
}
