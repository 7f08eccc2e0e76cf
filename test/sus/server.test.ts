// The annotation server over real HTTP on 127.0.0.1: tokens, bad input, crash safety, the
// access checks against other pages, and the page itself in Chromium.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { ANNOTATION_PAGE, RatingStore, StudyError, buildSusCommand, createStudy, loadStudy, orderFor, startAnnotationServer, type ResponseRecord } from '@huatuo/sus';
import { rawRequest } from '../http/raw-request.ts';

const MODELS = ['secret-model-a', 'secret-model-b'];
function makeStudy(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sus-serve-'));
  const rs: ResponseRecord[] = MODELS.flatMap((model, k) =>
    Array.from({ length: 4 }, (_, i) => ({ id: `q${i}`, question: `问题 ${i}：胸闷气短怎么办？`, model, response: `回答 ${i}-${k}：请尽快就医。` })));
  createStudy(dir, { responses: rs, annotators: ['a1', 'a2'], seed: 8 });
  return dir;
}

async function call(base: string, path: string, opts: { token?: string; method?: string; body?: string } = {}): Promise<{ status: number; body: Record<string, unknown>; text: string }> {
  const res = await fetch(base + path, {
    method: opts.method ?? 'GET',
    headers: { ...(opts.token === undefined ? {} : { authorization: `Bearer ${opts.token}` }), 'content-type': 'application/json' },
    ...(opts.body === undefined ? {} : { body: opts.body }),
  });
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try { body = JSON.parse(text); } catch { /* the page is HTML */ }
  return { status: res.status, body, text };
}

test('the API answers 403 to a wrong or missing token, 400 to bad JSON or ratings, 413 to a large body, and never shows other annotators\' ratings or model names', async () => {
  const dir = makeStudy();
  const { tokens } = loadStudy(dir);
  const s = await startAnnotationServer(dir, { port: 0 });
  try {
    assert.equal((await call(s.url, '/a/not-a-token')).status, 403);
    assert.equal((await call(s.url, '/api/session')).status, 403);
    const wrong = await call(s.url, '/api/session', { token: 'nope' });
    assert.equal(wrong.status, 403);
    assert.match(String(wrong.body['error']), /wrong annotator token/);
    const page = await call(s.url, `/a/${tokens['a1']}`);
    assert.equal(page.status, 200);
    assert.equal(page.text, ANNOTATION_PAGE);
    const t1 = tokens['a1']!;
    const t2 = tokens['a2']!;
    const item0 = (await call(s.url, '/api/items/0', { token: t2 })).body;
    const post = (token: string, body: string) => call(s.url, '/api/ratings', { token, method: 'POST', body });
    assert.equal((await post(t2, JSON.stringify({ code: item0['code'], dimension: 'safety', value: 3 }))).status, 200);
    const bad = await post(t1, '{"code": ');
    assert.equal(bad.status, 400);
    assert.match(String(bad.body['error']), /not valid JSON/);
    assert.match(String((await post(t1, JSON.stringify({ code: item0['code'], dimension: 'safety', value: 4 }))).body['error']), /value must be 1, 2 or 3; got 4/);
    assert.match(String((await post(t1, JSON.stringify({ code: item0['code'], dimension: 'tone', value: 2 }))).body['error']), /dimension must be one of/);
    assert.match(String((await post(t1, JSON.stringify({ code: 'RXXXX', dimension: 'safety', value: 2 }))).body['error']), /unknown item code/);
    assert.equal((await post(t1, JSON.stringify({ code: item0['code'], dimension: 'safety', value: 1, pad: 'x'.repeat(20000) }))).status, 413);
    const a1Items = await Promise.all(Array.from({ length: 8 }, (_, i) => call(s.url, `/api/items/${i}`, { token: t1 })));
    const seen = a1Items.find((r) => r.body['code'] === item0['code'])!;
    assert.deepEqual(seen.body['ratings'], { safety: null, usability: null, smoothness: null });
    const all = [page.text, ...a1Items.map((r) => r.text), (await call(s.url, '/api/session', { token: t1 })).text].join('\n');
    for (const m of MODELS) assert.ok(!all.includes(m), `${m} leaked`);
    assert.ok(!all.includes(t2), 'another token leaked');
    assert.equal((await call(s.url, '/api/items/8', { token: t1 })).status, 404);
  } finally {
    await s.close();
  }
  const store = RatingStore.open(join(dir, 'ratings.sqlite'));
  assert.deepEqual(store.list().map((r) => [r.annotator, r.dimension, r.value]), [['a2', 'safety', 3]]);
  store.close();
});

test('requests naming another Host, cross-origin pages and non-JSON ratings are refused; the page\'s own JSON posts and a lowercase bearer pass', async () => {
  const dir = makeStudy();
  const { study, tokens } = loadStudy(dir);
  const code = orderFor(study, 'a1')[0]!.code;
  const rating = JSON.stringify({ code, dimension: 'safety', value: 2 });
  const s = await startAnnotationServer(dir, { port: 0 });
  const port = new URL(s.url).port;
  try {
    const rebound = await rawRequest(s.url, `/a/${tokens['a1']}`, { headers: { host: `attacker.example:${port}` } });
    assert.equal(rebound.status, 403);
    assert.match(JSON.parse(rebound.text).error, /--allowed-hosts/);
    assert.equal((await rawRequest(s.url, '/api/session', { headers: { host: `attacker.example:${port}`, authorization: `Bearer ${tokens['a1']}` } })).status, 403);
    assert.equal((await rawRequest(s.url, `/a/${tokens['a1']}`, { headers: { host: `localhost:${port}` } })).status, 200);
    const post = (headers: Record<string, string>) => rawRequest(s.url, '/api/ratings', { body: rating, headers: { authorization: `Bearer ${tokens['a1']}`, ...headers } });
    const form = await post({ 'content-type': 'text/plain;charset=UTF-8' });
    assert.equal(form.status, 415);
    assert.match(JSON.parse(form.text).error, /application\/json/);
    const crossSite = await post({ 'content-type': 'application/json', origin: 'https://attacker.example' });
    assert.equal(crossSite.status, 403);
    assert.match(JSON.parse(crossSite.text).error, /--cors-origin https:\/\/attacker\.example/);
    assert.equal((await post({ 'content-type': 'application/json', origin: s.url })).status, 200, 'the page posts from its own origin');
    const lower = await rawRequest(s.url, '/api/session', { headers: { authorization: `bearer ${tokens['a2']}` } });
    assert.equal(lower.status, 200, lower.text);
    assert.equal(JSON.parse(lower.text).annotator, 'a2');
  } finally {
    await s.close();
  }
  const store = RatingStore.open(join(dir, 'ratings.sqlite'));
  assert.deepEqual(store.list().map((r) => [r.annotator, r.code, r.value]), [['a1', code, 2]], 'only the accepted post was stored');
  store.close();
  const page = 'http://localhost:5173';
  const open = await startAnnotationServer(dir, { port: 0, corsOrigins: [page], allowedHosts: ['study.lan'] });
  try {
    const preflight = await rawRequest(open.url, '/api/ratings', { method: 'OPTIONS', headers: { origin: page, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' } });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers['access-control-allow-origin'], page);
    assert.equal(preflight.headers['access-control-allow-methods'], 'POST');
    assert.equal(preflight.headers['access-control-allow-headers'], 'authorization, content-type');
    const r = await rawRequest(open.url, '/api/session', { headers: { origin: page, host: 'study.lan', authorization: `Bearer ${tokens['a1']}` } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['access-control-allow-origin'], page);
  } finally {
    await open.close();
  }
  await assert.rejects(
    buildSusCommand({ print: () => {} }).parseAsync(['serve', '--study', dir, '--port', '0', '--allowed-hosts', 'http://study.lan'], { from: 'user' }),
    (e: unknown) => e instanceof StudyError && /--allowed-hosts: "http:\/\/study\.lan" is not a host name/.test(e.message),
  );
});

test('ratings acknowledged by the server survive a kill -9 of the server process', async () => {
  const dir = makeStudy();
  const { study, tokens } = loadStudy(dir);
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', join(import.meta.dirname, 'serve-child.ts'), dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        const m = /serving (http:\/\/\S+)/.exec(out);
        if (m) resolve(m[1]!);
      });
      child.on('exit', (code) => reject(new Error(`server exited with ${code}: ${out}`)));
    });
    const codes = orderFor(study, 'a1').slice(0, 3).map((i) => i.code);
    for (const [k, code] of codes.entries()) {
      const r = await call(url, '/api/ratings', { token: tokens['a1']!, method: 'POST', body: JSON.stringify({ code, dimension: 'usability', value: (k % 3) + 1 }) });
      assert.equal(r.status, 200);
    }
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    const store = RatingStore.open(join(dir, 'ratings.sqlite'));
    assert.deepEqual(store.list('a1').map((r) => [r.code, r.value]).sort(), codes.map((c, k) => [c, (k % 3) + 1]).sort());
    store.close();
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});

const CHROMIUM = '/usr/bin/chromium';
test('in Chromium an annotator rates with the mouse and keys 1-3, goes back, reloads, and finds the ratings and position kept', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing; install Debian's chromium to run the browser test` }, async () => {
  const dir = makeStudy();
  const { study } = loadStudy(dir);
  const order = orderFor(study, 'a1');
  const s = await startAnnotationServer(dir, { port: 0 });
  const profile = mkdtempSync(join(tmpdir(), 'sus-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless=new', '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  try {
    const page = await context.newPage();
    await page.goto(s.links['a1']!);
    await page.locator('#question').filter({ hasText: order[0]!.question }).waitFor();
    assert.equal(await page.locator('#response').textContent(), order[0]!.response);
    assert.match((await page.locator('#rubric').textContent()) ?? '', /安全性.*Safety/s);
    // Item 1 by mouse: 3, 2, 1, then next.
    for (const [d, v] of [['safety', 3], ['usability', 2], ['smoothness', 1]] as const) {
      await page.click(`button[data-dimension="${d}"][data-value="${v}"]`);
      await page.locator(`button[data-dimension="${d}"][data-value="${v}"][aria-pressed="true"]`).waitFor();
    }
    await page.locator('#progress').filter({ hasText: '1 / 8' }).waitFor();
    await page.click('#next');
    await page.locator('#response').filter({ hasText: order[1]!.response }).waitFor();
    // Item 2 by keys: 2, 2, 3 moves on to item 3 by itself.
    await page.keyboard.press('2');
    await page.locator('button[data-dimension="safety"][data-value="2"][aria-pressed="true"]').waitFor();
    await page.keyboard.press('2');
    await page.locator('button[data-dimension="usability"][data-value="2"][aria-pressed="true"]').waitFor();
    await page.keyboard.press('3');
    await page.locator('#response').filter({ hasText: order[2]!.response }).waitFor();
    await page.keyboard.press('1');
    await page.locator('button[data-dimension="safety"][data-value="1"][aria-pressed="true"]').waitFor();
    // Back to item 1 and change one rating.
    await page.keyboard.press('ArrowLeft');
    await page.locator('#response').filter({ hasText: order[1]!.response }).waitFor();
    await page.click('#prev');
    await page.locator('#response').filter({ hasText: order[0]!.response }).waitFor();
    await page.click('button[data-dimension="smoothness"][data-value="2"]');
    await page.locator('button[data-dimension="smoothness"][data-value="2"][aria-pressed="true"]').waitFor();
    // Reload: resumes at the first item not fully rated (item 3), with its safety rating shown.
    await page.reload();
    await page.locator('#response').filter({ hasText: order[2]!.response }).waitFor();
    await page.locator('button[data-dimension="safety"][data-value="1"][aria-pressed="true"]').waitFor();
    await page.locator('#progress').filter({ hasText: '2 / 8' }).waitFor();
    await page.click('#prev');
    await page.locator('#response').filter({ hasText: order[1]!.response }).waitFor();
    await page.locator('button[data-dimension="smoothness"][data-value="3"][aria-pressed="true"]').waitFor();
    const html = await page.content();
    for (const m of MODELS) assert.ok(!html.includes(m));
    const wrong = await page.goto(`${s.url}/a/forged`);
    assert.equal(wrong?.status(), 403);
  } finally {
    await context.close();
    await s.close();
    rmSync(profile, { recursive: true, force: true });
  }
  const store = RatingStore.open(join(dir, 'ratings.sqlite'));
  const got = Object.fromEntries(store.list('a1').map((r) => [`${r.code}:${r.dimension}`, r.value]));
  store.close();
  assert.deepEqual(got, {
    [`${order[0]!.code}:safety`]: 3, [`${order[0]!.code}:usability`]: 2, [`${order[0]!.code}:smoothness`]: 2,
    [`${order[1]!.code}:safety`]: 2, [`${order[1]!.code}:usability`]: 2, [`${order[1]!.code}:smoothness`]: 3,
    [`${order[2]!.code}:safety`]: 1,
  });
});
