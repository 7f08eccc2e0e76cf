// The access checks shared by the local servers, on a plain node:http server on 127.0.0.1:
// Host names (DNS rebinding), Origins and CORS preflights, JSON-only bodies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AccessConfigError, AccessGuard, normalizeAllowedHosts, normalizeCorsOrigins, sendJson, type AccessOptions } from '@huatuo/http';
import { rawRequest } from './raw-request.ts';

async function withGuarded(options: AccessOptions, fn: (base: string, port: number) => Promise<void>, host = '127.0.0.1'): Promise<void> {
  let guard: AccessGuard | null = null;
  const server = createServer((req, res) => {
    const verdict = guard!.check(req, res, ['GET', 'POST']);
    if (verdict === 'preflight') return;
    if (verdict !== null) return sendJson(res, verdict.status, { error: verdict.message, code: verdict.code });
    if (req.method === 'POST') {
      const json = guard!.requireJson(req);
      if (json !== null) return sendJson(res, json.status, { error: json.message, code: json.code });
    }
    req.resume();
    sendJson(res, 200, { ok: true });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const address = server.address() as AddressInfo;
  guard = new AccessGuard({ host, address: address.address, port: address.port }, options);
  try {
    await fn(`http://127.0.0.1:${address.port}`, address.port);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

test('only Host headers naming the bound address or localhost with the port, or an allowed name, are answered', async () => {
  await withGuarded({ allowedHosts: ['gpu-box.lan', 'proxy.example:8443'] }, async (base, port) => {
    const status = async (host: string) => (await rawRequest(base, '/', { headers: { host } })).status;
    assert.equal(await status(`127.0.0.1:${port}`), 200);
    assert.equal(await status(`localhost:${port}`), 200);
    assert.equal(await status(`LOCALHOST:${port}`), 200);
    assert.equal(await status('gpu-box.lan'), 200);
    assert.equal(await status(`gpu-box.lan:${port}`), 200);
    assert.equal(await status('proxy.example:8443'), 200);
    assert.equal(await status('proxy.example'), 403, 'a name:port entry allows that port only');
    assert.equal(await status(`localhost:${port + 1}`), 403);
    assert.equal(await status('localhost'), 403, 'no port is port 80');
    assert.equal(await status(`attacker.example:${port}`), 403, 'a rebound DNS name');
    assert.equal(await status(`[::1]:${port}`), 403, 'bound to 127.0.0.1, not ::1');
    const refused = await rawRequest(base, '/', { headers: { host: `attacker.example:${port}` } });
    assert.match(JSON.parse(refused.text).error, /Host "attacker\.example:\d+" is not this server's address .*--allowed-hosts/);
  });
  await withGuarded({}, async (base, port) => {
    const status = async (host: string) => (await rawRequest(base, '/', { headers: { host } })).status;
    assert.equal(await status(`127.0.0.1:${port}`), 200);
    assert.equal(await status(`[::1]:${port}`), 200, 'a wildcard bind answers loopback names');
    assert.equal(await status(`0.0.0.0:${port}`), 200, 'and the address it was given');
    assert.equal(await status(`somebody.example:${port}`), 403);
  }, '0.0.0.0');
});

test('a page of another origin is refused unless allowed; the server\'s own origin and requests without Origin pass', async () => {
  await withGuarded({}, async (base, port) => {
    const post = (headers: Record<string, string>) => rawRequest(base, '/', { body: '{}', headers: { 'content-type': 'application/json', ...headers } });
    assert.equal((await post({})).status, 200);
    assert.equal((await post({ origin: `http://127.0.0.1:${port}` })).status, 200);
    const evil = await post({ origin: 'http://attacker.example' });
    assert.equal(evil.status, 403);
    assert.equal(evil.headers['access-control-allow-origin'], undefined);
    assert.match(JSON.parse(evil.text).error, /cross-origin request from http:\/\/attacker\.example refused.*--cors-origin http:\/\/attacker\.example/);
    assert.equal((await post({ origin: 'null' })).status, 403);
  });
});

test('allowed origins get Access-Control-Allow-Origin and Vary: Origin, and their preflights are answered with methods and headers', async () => {
  await withGuarded({ corsOrigins: ['http://localhost:5173'] }, async (base) => {
    const ok = await rawRequest(base, '/', { body: '{}', headers: { 'content-type': 'application/json', origin: 'http://localhost:5173' } });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['access-control-allow-origin'], 'http://localhost:5173');
    assert.match(String(ok.headers['vary']), /\bOrigin\b/);
    const preflight = await rawRequest(base, '/v1/chat/completions', {
      method: 'OPTIONS',
      headers: { origin: 'http://localhost:5173', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type, x-stainless-os' },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers['access-control-allow-origin'], 'http://localhost:5173');
    assert.equal(preflight.headers['access-control-allow-methods'], 'GET, POST');
    assert.equal(preflight.headers['access-control-allow-headers'], 'authorization, content-type, x-stainless-os');
    assert.match(String(preflight.headers['vary']), /Origin, Access-Control-Request-Method, Access-Control-Request-Headers/);
    const other = await rawRequest(base, '/', { method: 'OPTIONS', headers: { origin: 'http://localhost:5174', 'access-control-request-method': 'POST' } });
    assert.equal(other.status, 403);
    assert.equal(other.headers['access-control-allow-origin'], undefined);
  });
  await withGuarded({ corsOrigins: ['*'] }, async (base) => {
    const any = await rawRequest(base, '/', { headers: { origin: 'https://anything.example' } });
    assert.equal(any.status, 200);
    assert.equal(any.headers['access-control-allow-origin'], '*');
  });
});

test('bodies not declared as application/json get 415: the types a cross-site form or fetch may send without a preflight', async () => {
  await withGuarded({}, async (base) => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      const r = await rawRequest(base, '/', { body: '{"model": "m"}', headers: { 'content-type': type } });
      assert.equal(r.status, 415, type);
      assert.match(JSON.parse(r.text).error, /Content-Type: application\/json/);
    }
    assert.equal((await rawRequest(base, '/', { body: '{}' })).status, 415, 'no content type');
    assert.equal((await rawRequest(base, '/', { body: '{}', headers: { 'content-type': 'Application/JSON; charset=utf-8' } })).status, 200);
  });
});

test('allowed hosts and origins are checked when given, naming the bad entry', () => {
  assert.deepEqual(normalizeAllowedHosts(['GPU-box.lan', 'proxy.example:8443', '[::1]']), ['gpu-box.lan', 'proxy.example:8443', '[::1]']);
  assert.throws(() => normalizeAllowedHosts(['http://gpu-box.lan']), (e: unknown) => e instanceof AccessConfigError && e.option === 'allowedHosts' && /"http:\/\/gpu-box\.lan" is not a host name/.test(e.message));
  assert.deepEqual(normalizeCorsOrigins(['http://localhost:5173', 'HTTPS://Example.com', '*']), ['http://localhost:5173', 'https://example.com', '*']);
  for (const bad of ['localhost:5173', 'http://localhost:5173/app', 'file:///tmp/x.html']) {
    assert.throws(() => normalizeCorsOrigins([bad]), (e: unknown) => e instanceof AccessConfigError && e.option === 'corsOrigins' && e.message.includes(bad), bad);
  }
});
