// Who may talk to a local server: the Host header must name the bound address, localhost or an
// allowed name (DNS rebinding), a browser Origin must be the server's own or an allowed one
// (CORS, preflights included), and API bodies must be declared as JSON (no "simple" form posts).

import type { IncomingMessage, ServerResponse } from 'node:http';

/** Options of {@link AccessGuard}: what to allow beyond the server's own address and page. */
export interface AccessOptions {
  /**
   * More Host header values to accept (`--allowed-hosts`), e.g. a reverse proxy's public name.
   * A name alone matches any port; `name:port` matches that port only.
   */
  allowedHosts?: readonly string[];
  /** Origins whose pages may call the server cross-origin (`--cors-origin`), e.g. `http://localhost:5173`; `*` allows any. */
  corsOrigins?: readonly string[];
}

/** A request the guard refuses: the server answers it in its own error format. */
export interface Refusal {
  status: number;
  message: string;
  /** Machine-readable reason: host_not_allowed, origin_not_allowed or unsupported_media_type. */
  code: string;
}

/** An `allowedHosts` or `corsOrigins` entry that cannot be used; `option` names which list. */
export class AccessConfigError extends Error {
  override readonly name = 'AccessConfigError';
  constructor(
    readonly option: 'allowedHosts' | 'corsOrigins',
    message: string,
  ) {
    super(message);
  }
}

const HOST_NAME = /^(?:\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*)$/;

/** Splits a Host header value into a lowercase name and a port (null when absent). */
function splitHost(value: string): { name: string; port: number | null } | null {
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d{1,5}))?$/.exec(value.trim().toLowerCase());
  if (m === null || !HOST_NAME.test(m[1]!)) return null;
  return { name: m[1]!, port: m[2] === undefined ? null : Number(m[2]) };
}

/**
 * Checks `allowedHosts` entries (names, bracketed IPv6 addresses, optionally `:port`) and
 * returns them lowercased; throws {@link AccessConfigError} naming the first bad one.
 */
export function normalizeAllowedHosts(list: readonly string[]): string[] {
  return list.map((entry) => {
    const host = splitHost(entry);
    if (host === null || entry.trim() === '') {
      throw new AccessConfigError('allowedHosts', `"${entry}" is not a host name; give names like "gpu-box.lan" or "gpu-box.lan:8000", comma-separated`);
    }
    return host.port === null ? host.name : `${host.name}:${host.port}`;
  });
}

/**
 * Checks `corsOrigins` entries (`scheme://host[:port]`, or `*`) and returns them as URL
 * origins; throws {@link AccessConfigError} naming the first bad one.
 */
export function normalizeCorsOrigins(list: readonly string[]): string[] {
  return list.map((entry) => {
    const e = entry.trim();
    if (e === '*') return e;
    let url: URL | null = null;
    try {
      url = new URL(e);
    } catch {
      url = null;
    }
    if (url === null || !/^https?:$/.test(url.protocol) || url.origin === 'null' || url.pathname !== '/' || url.search !== '' || url.hash !== '' || /\/./.test(e.slice(url.protocol.length + 2))) {
      throw new AccessConfigError('corsOrigins', `"${entry}" is not an origin; give scheme://host[:port] with no path, e.g. http://localhost:5173, or * for any page`);
    }
    return url.origin;
  });
}

const WILDCARD = new Set(['0.0.0.0', '::', '[::]']);
const bracket = (address: string): string => (address.includes(':') && !address.startsWith('[') ? `[${address}]` : address).toLowerCase();

/**
 * Decides which requests a server bound to `host` (as given to listen) at `address:port`
 * answers. The Host header must be `localhost`, the bound address (with 127.0.0.1 and [::1]
 * for a wildcard bind such as 0.0.0.0) or an allowed name, with the server's port. A request with an Origin
 * header must come from the server's own origin or an allowed one; allowed cross-origin
 * requests get Access-Control-Allow-Origin and preflights (OPTIONS) are answered with the
 * methods and headers asked for.
 *
 * @example
 * const guard = new AccessGuard({ host: '127.0.0.1', address: '127.0.0.1', port: 8000 }, { corsOrigins: ['http://localhost:5173'] });
 * const refusal = guard.check(req, res, ['GET', 'POST']); // null: go on; 'preflight': answered
 */
export class AccessGuard {
  private readonly names: Set<string>;
  private readonly anyPortNames: Set<string>;
  private readonly hostPorts: Set<string>;
  private readonly origins: Set<string>;
  private readonly anyOrigin: boolean;

  constructor(
    private readonly bound: { host: string; address: string; port: number },
    options: AccessOptions = {},
  ) {
    const own = ['localhost', bracket(bound.address), bracket(bound.host)];
    if (WILDCARD.has(bracket(bound.host)) || WILDCARD.has(bracket(bound.address))) own.push('127.0.0.1', '[::1]');
    this.names = new Set(own);
    this.anyPortNames = new Set();
    this.hostPorts = new Set();
    for (const h of normalizeAllowedHosts(options.allowedHosts ?? [])) (h.includes(':') && !h.endsWith(']') ? this.hostPorts : this.anyPortNames).add(h);
    const origins = normalizeCorsOrigins(options.corsOrigins ?? []);
    this.anyOrigin = origins.includes('*');
    this.origins = new Set(origins);
  }

  /** Whether a Host header value names this server. */
  hostAllowed(value: string | undefined): boolean {
    if (value === undefined) return false;
    const host = splitHost(value);
    if (host === null) return false;
    const port = host.port ?? 80;
    if (this.anyPortNames.has(host.name) || this.hostPorts.has(`${host.name}:${port}`)) return true;
    return this.names.has(host.name) && port === this.bound.port;
  }

  /**
   * Checks Host and Origin. Returns a {@link Refusal}, `'preflight'` when it has answered a
   * CORS preflight itself, or null when the request may go on (CORS headers are then set on
   * `res` for an allowed cross-origin request). `methods` are the ones the server accepts.
   */
  check(req: IncomingMessage, res: ServerResponse, methods: readonly string[]): Refusal | 'preflight' | null {
    const host = req.headers.host;
    if (!this.hostAllowed(host)) {
      return {
        status: 403,
        code: 'host_not_allowed',
        message: `Host "${host ?? ''}" is not this server's address (${[...this.names].map((n) => `${n}:${this.bound.port}`).join(', ')}); if you reach it through another name, start it with --allowed-hosts NAME`,
      };
    }
    const origin = req.headers.origin;
    if (origin === undefined) return null;
    res.setHeader('vary', 'Origin');
    const own = origin.toLowerCase() === `http://${host!.toLowerCase()}` || origin.toLowerCase() === `https://${host!.toLowerCase()}`;
    if (!own && !(this.anyOrigin || this.origins.has(origin))) {
      return {
        status: 403,
        code: 'origin_not_allowed',
        message: `cross-origin request from ${origin} refused; to let pages of that origin call this server, start it with --cors-origin ${origin}`,
      };
    }
    if (!own) res.setHeader('access-control-allow-origin', this.anyOrigin ? '*' : origin);
    const asked = req.headers['access-control-request-method'];
    if (req.method !== 'OPTIONS' || asked === undefined) return null;
    res.setHeader('vary', 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers');
    const headers: Record<string, string> = {
      'access-control-allow-methods': methods.join(', '),
      'access-control-max-age': '600',
      'content-length': '0',
    };
    const askedHeaders = req.headers['access-control-request-headers'];
    if (askedHeaders !== undefined) headers['access-control-allow-headers'] = askedHeaders;
    res.writeHead(204, headers);
    res.end();
    return 'preflight';
  }

  /** Refuses (415) a body not declared as JSON: browsers send text/plain and form types cross-origin without a preflight. */
  requireJson(req: IncomingMessage): Refusal | null {
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type === 'application/json') return null;
    return {
      status: 415,
      code: 'unsupported_media_type',
      message: `request body must be JSON with "Content-Type: application/json", got ${type === '' ? 'no Content-Type' : `"${type}"`}`,
    };
  }
}
