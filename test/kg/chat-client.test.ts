// ChatClient's retry rules, those of the OpenAI SDKs: 408, 409, 429 and 5xx are retried (after the
// wait retry-after-ms or Retry-After asks for), x-should-retry overrides, and any other 4xx fails at
// once with the server's message and what to change: a refusal of one request's content (400, 413,
// 422) fails that request, one of the key, model or URL (401, 403, 404) throws.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type OutgoingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiError, ChatClient, ExhaustedError, generateData, loadShippedGraph } from '@huatuo/kg';

interface Reply {
  status: number;
  headers?: OutgoingHttpHeaders;
  body: unknown;
}

const OK: Reply = { status: 200, body: { choices: [{ index: 0, message: { role: 'assistant', content: 'fine' }, finish_reason: 'stop' }] } };

/** A server answering POST /v1/chat/completions with `replies` in turn (the last one repeats) and GET /v1/models with `models`. */
async function replyServer(replies: Reply[], models?: string[]): Promise<{ url: string; posts: number[]; close: () => Promise<void> }> {
  const posts: number[] = [];
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.method === 'GET' && req.url === '/v1/models' && models) {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ object: 'list', data: models.map((id) => ({ id, object: 'model' })) }));
        return;
      }
      posts.push(Date.now());
      const reply = replies[Math.min(posts.length - 1, replies.length - 1)]!;
      res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers }).end(typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    posts,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function client(url: string, maxRetries = 2, model = 'm'): ChatClient {
  return new ChatClient({ apiUrl: url, model, apiKey: undefined, timeoutMs: 5000, maxRetries, retryBaseMs: 1, temperature: 0.7 });
}

const USER = [{ role: 'user' as const, content: 'hi' }];

function openAiError(message: string, code: string | null = null): unknown {
  return { error: { message, type: 'invalid_request_error', param: null, code } };
}

test('408, 409, 429 and 5xx are retried and then succeed', async () => {
  for (const status of [408, 409, 429, 500, 502, 503]) {
    const server = await replyServer([{ status, body: openAiError('busy') }, OK]);
    try {
      assert.deepEqual(await client(server.url).complete(USER), { ok: true, content: 'fine', attempts: 2 }, `HTTP ${status}`);
    } finally {
      await server.close();
    }
  }
});

test("a 401, 403 or 404 fails at once with the server's message and a hint for its status", async () => {
  const cases: [number, string, RegExp][] = [
    [401, 'Incorrect API key provided', /--api-key-env \(OPENAI_API_KEY by default\)/],
    [403, 'You are not allowed to sample from this model', /--api-key-env and --model/],
    [404, 'Not Found', /check --api-url: the base ending in \/v1/],
  ];
  for (const [status, message, hint] of cases) {
    const server = await replyServer([{ status, body: openAiError(message) }, OK]);
    try {
      await assert.rejects(client(server.url).complete(USER), (e: unknown) => {
        assert.ok(e instanceof ApiError, String(e));
        assert.equal(e.status, status);
        assert.ok(e.message.includes(`HTTP ${status}: ${message}`), e.message);
        assert.match(e.message, hint);
        assert.doesNotMatch(e.message, /server is up|--timeout-ms/);
        return true;
      });
      assert.equal(server.posts.length, 1, `HTTP ${status} is not retried`);
    } finally {
      await server.close();
    }
  }
});

test("a 400, 413 or 422 fails that request at once, not retried, with the server's message and a hint", async () => {
  const cases: [number, string][] = [
    [400, "This model's maximum context length is 2048 tokens. However, your messages resulted in 3000 tokens."],
    [413, 'request body too large'],
    [422, 'temperature: must be at most 2'],
  ];
  for (const [status, message] of cases) {
    const server = await replyServer([{ status, body: openAiError(message) }, OK]);
    try {
      const r = await client(server.url).complete(USER);
      assert.equal(r.ok, false, `HTTP ${status}`);
      if (!r.ok) {
        assert.equal(r.error, `HTTP ${status}: ${message}`);
        assert.match(r.hint, /lower --attributes-per-sample/);
        assert.equal(r.attempts, 1);
      }
      assert.equal(server.posts.length, 1, `HTTP ${status} is not retried`);
    } finally {
      await server.close();
    }
  }
});

test('gen-data drops a sample whose request the server refuses (400) and goes on; refusals of every request stop it', async () => {
  const { entities } = await loadShippedGraph();
  const reply = { choices: [{ index: 0, message: { role: 'assistant', content: '' }, finish_reason: 'stop' }] };
  const tooLong: Reply = { status: 400, body: openAiError("This model's maximum context length is 2048 tokens.") };
  // One refusal among answers: the run goes on through the graph (whose three entities run out, as the
  // empty answers are dropped) instead of stopping at the refusal.
  const server = await replyServer([tooLong, { status: 200, body: reply }]);
  try {
    const out = join(mkdtempSync(join(tmpdir(), 'kg-refused-')), 'out.jsonl');
    const dropped: string[] = [];
    await assert.rejects(
      generateData({ entities: entities.slice(0, 3), out, count: 2, seed: 1, minAttributes: 1, maxAttributes: 1, similarityThreshold: 0.85, llm: { client: client(server.url, 1), model: 'm' }, concurrency: 1, maxConsecutiveFailures: 2, onDrop: (reason) => dropped.push(reason) }),
      (e: unknown) => e instanceof ExhaustedError,
    );
    assert.equal(dropped[0], 'request-failed');
    assert.ok(server.posts.length > 2, `the run went on after the refusal (${server.posts.length} requests)`);
  } finally {
    await server.close();
  }
  const always = await replyServer([tooLong]);
  try {
    const out = join(mkdtempSync(join(tmpdir(), 'kg-refused-')), 'out.jsonl');
    await assert.rejects(
      generateData({ entities: entities.slice(0, 20), out, count: 5, seed: 1, minAttributes: 1, maxAttributes: 1, similarityThreshold: 0.85, llm: { client: client(always.url, 1), model: 'm' }, concurrency: 1, maxConsecutiveFailures: 2 }),
      (e: unknown) => e instanceof ApiError && /2 requests in a row failed/.test(e.message) && /lower --attributes-per-sample/.test(e.message),
    );
    assert.equal(always.posts.length, 2, 'refusals are not retried');
  } finally {
    await always.close();
  }
});

test('a model the server does not serve (404 model_not_found) is refused naming the models GET /v1/models lists', async () => {
  const refusal = openAiError('The model `qwen2.5-7b-instruct` does not exist; this server serves "lora-llama-med" (see GET /v1/models)', 'model_not_found');
  const server = await replyServer([{ status: 404, body: refusal }], ['lora-llama-med']);
  try {
    await assert.rejects(client(server.url, 2, 'qwen2.5-7b-instruct').complete(USER), (e: unknown) => e instanceof ApiError && e.status === 404 && /pass the name the server serves: --model lora-llama-med$/.test(e.message));
    assert.equal(server.posts.length, 1);
  } finally {
    await server.close();
  }
  const unlisted = await replyServer([{ status: 404, body: refusal }]);
  try {
    await assert.rejects(client(unlisted.url).complete(USER), (e: unknown) => e instanceof ApiError && /check --model \(m\): it must be a model the server serves/.test(e.message));
  } finally {
    await unlisted.close();
  }
});

test('x-should-retry overrides the status, as the OpenAI SDKs obey it', async () => {
  const retried = await replyServer([{ status: 400, headers: { 'x-should-retry': 'true' }, body: openAiError('try again') }, OK]);
  try {
    assert.deepEqual(await client(retried.url).complete(USER), { ok: true, content: 'fine', attempts: 2 });
  } finally {
    await retried.close();
  }
  const final = await replyServer([{ status: 503, headers: { 'x-should-retry': 'false' }, body: openAiError('shutting down') }, OK]);
  try {
    const r = await client(final.url).complete(USER);
    assert.equal(r.ok, false);
    assert.equal(final.posts.length, 1);
  } finally {
    await final.close();
  }
});

test('a retry waits as long as retry-after-ms or Retry-After asks, not the shorter backoff', async () => {
  for (const [headers, ms] of [[{ 'retry-after-ms': '300' }, 300], [{ 'retry-after': '1' }, 1000], [{ 'retry-after-ms': '250', 'retry-after': '30' }, 250]] as const) {
    const server = await replyServer([{ status: 429, headers, body: openAiError('slow down') }, OK]);
    try {
      assert.equal((await client(server.url).complete(USER)).ok, true);
      const waited = server.posts[1]! - server.posts[0]!;
      assert.ok(waited >= ms - 20, `${JSON.stringify(headers)}: retried after ${waited} ms`);
    } finally {
      await server.close();
    }
  }
});

test('when retries run out, the run stops with a hint fitting the failure', async () => {
  const { entities } = await loadShippedGraph();
  for (const [reply, hint, not] of [
    [{ status: 429, headers: { 'retry-after': '0' }, body: openAiError('Rate limit reached') }, /lower --concurrency, or raise --max-retries/, /--timeout-ms/],
    [{ status: 500, body: openAiError('internal') }, /the server failed \(see its log\)/, /--timeout-ms/],
  ] as const) {
    const server = await replyServer([reply]);
    try {
      const out = join(mkdtempSync(join(tmpdir(), 'kg-retries-')), 'out.jsonl');
      await assert.rejects(
        generateData({ entities: entities.slice(0, 20), out, count: 5, seed: 1, minAttributes: 1, maxAttributes: 1, similarityThreshold: 0.85, llm: { client: client(server.url, 1), model: 'm' }, concurrency: 1, maxConsecutiveFailures: 2 }),
        (e: unknown) => e instanceof ApiError && /2 requests in a row failed/.test(e.message) && hint.test(e.message) && !not.test(e.message),
      );
    } finally {
      await server.close();
    }
  }
});
