// huatuo-train serve as OpenAI clients reach it, over real HTTP on 127.0.0.1 with the tiny vocab32k
// fixture (LLaMA's tokenizer): request targets as base URLs and proxies write them, OpenAI's 64-bit
// seeds, legacy logprobs 0 and null, streamed replies on connections the client asks to close, and HEAD.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initWebGPU } from '@huatuo/tensor';
import { llamaTokenizerDir, loadLlama, loadTokenizer, type LlamaModel, type Tokenizer } from '@huatuo/llama';
import { MED_TEMPLATE, startServer, type RunningServer } from '@huatuo/sft';
import { rawExchange } from '../http/raw-request.ts';

const fixture = fileURLToPath(new URL('../fixtures/llama/vocab32k', import.meta.url));
const NAME = 'tiny-huatuo';
// Short: the fixture's context is 64 tokens, and HuaTuo's template takes about 48 of them.
const QUESTION = 'hi';

let model: LlamaModel;
let tokenizer: Tokenizer;

before(async () => {
  await initWebGPU();
  const dir = mkdtempSync(join(tmpdir(), 'huatuo-serve-clients-'));
  cpSync(fixture, dir, { recursive: true });
  model = await loadLlama(dir);
  tokenizer = await loadTokenizer(llamaTokenizerDir());
});

after(() => model.dispose());

async function withServer(fn: (server: RunningServer) => Promise<void>): Promise<void> {
  const server = await startServer({ model, tokenizer, template: MED_TEMPLATE, modelName: NAME, defaultGeneration: { maxTokens: 4 } });
  try {
    await fn(server);
  } finally {
    await server.close();
  }
}

interface Reply {
  status: number;
  // Parsed JSON of any shape: the tests read OpenAI fields off it.
  json: any;
}

/** POSTs `body` (an object, or JSON text sent as it is) or GETs `url`. */
async function call(url: string, body?: unknown): Promise<Reply> {
  const text = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  const res = await fetch(url, { method: text === undefined ? 'GET' : 'POST', headers: { 'content-type': 'application/json' }, body: text });
  return { status: res.status, json: await res.json() };
}

/** Status and JSON body of a raw exchange on a connection the request asks to close. */
function parseRaw(text: string): Reply {
  const [head, body] = text.split('\r\n\r\n', 2) as [string, string];
  return { status: Number(head.split(' ')[1]), json: JSON.parse(body) };
}

test('request targets as clients write them: repeated slashes from a base URL ending in /, the absolute form, and an id that does not percent-decode (404, not 500)', async () => {
  await withServer(async (server) => {
    const chat = await call(`${server.url}//v1/chat/completions`, { model: NAME, messages: [{ role: 'user', content: QUESTION }], max_tokens: 2 });
    assert.equal(chat.status, 200, JSON.stringify(chat.json));
    assert.equal(chat.json.object, 'chat.completion');
    const models = await call(`${server.url}/v1//models/`);
    assert.equal(models.status, 200, JSON.stringify(models.json));
    assert.deepEqual(models.json.data.map((m: { id: string }) => m.id), [NAME]);
    const host = `127.0.0.1:${server.port}`;
    const absolute = parseRaw((await rawExchange(server.port, `GET http://${host}/v1/models/${NAME} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)).text);
    assert.equal(absolute.status, 200, JSON.stringify(absolute.json));
    assert.equal(absolute.json.id, NAME);
    const undecodable = await call(`${server.url}/v1/models/%E0%A4`);
    assert.equal(undecodable.status, 404, JSON.stringify(undecodable.json));
    assert.deepEqual([undecodable.json.error.type, undecodable.json.error.code], ['NotFoundError', 404]);
  });
});

test("seed takes OpenAI's whole 64-bit range: 2^63 - 1 as Python sends it is accepted and repeats its answer; beyond the range is refused", async () => {
  await withServer(async (server) => {
    const chat = `${server.url}/v1/chat/completions`;
    const body = (seed: string) => `{"model": "${NAME}", "messages": [{"role": "user", "content": "${QUESTION}"}], "max_tokens": 6, "temperature": 1, "seed": ${seed}}`;
    const first = await call(chat, body('9223372036854775807'));
    assert.equal(first.status, 200, JSON.stringify(first.json));
    const again = await call(chat, body('9223372036854775807'));
    assert.equal(again.json.choices[0].message.content, first.json.choices[0].message.content, 'the same seed samples the same answer');
    assert.equal((await call(chat, body('-9223372036854775808'))).status, 200);
    const beyond = await call(chat, body('18446744073709551616'));
    assert.equal(beyond.status, 400);
    assert.deepEqual([beyond.json.error.param, beyond.json.error.message.split(':')[0]], [null, 'seed']);
    assert.equal((await call(chat, body('1.5'))).status, 400, 'a fractional seed');
  });
});

test('legacy completions answer logprobs 0 with the sampled tokens\' log probabilities alone, and logprobs null with none', async () => {
  await withServer(async (server) => {
    const completions = `${server.url}/v1/completions`;
    const zero = await call(completions, { model: NAME, prompt: 'The patient', max_tokens: 2, logprobs: 0 });
    assert.equal(zero.status, 200, JSON.stringify(zero.json));
    const lp = zero.json.choices[0].logprobs;
    assert.equal(lp.tokens.length, zero.json.usage.completion_tokens);
    // Each step's map holds the token's own entry only (OpenAI: up to logprobs + 1).
    lp.top_logprobs.forEach((m: Record<string, number>, i: number) => assert.deepEqual(m, { [lp.tokens[i]]: lp.token_logprobs[i] }));
    const none = await call(completions, { model: NAME, prompt: 'The patient', max_tokens: 2, logprobs: null });
    assert.equal(none.status, 200, JSON.stringify(none.json));
    assert.equal(none.json.choices[0].logprobs, null);
  });
});

test('a streamed reply closes a connection the client asked to close, keeps the others open, and tells reverse proxies not to buffer it', async () => {
  await withServer(async (server) => {
    const host = `127.0.0.1:${server.port}`;
    const body = JSON.stringify({ model: NAME, messages: [{ role: 'user', content: QUESTION }], max_tokens: 3, stream: true });
    const post = (connection: string) => `POST /v1/chat/completions HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\n${connection}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    const closing = await rawExchange(server.port, post('Connection: close\r\n'), 10_000);
    assert.ok(closing.text.includes('data: [DONE]'), closing.text);
    assert.ok(closing.closedByServer, 'the server closed the connection after the stream, as "Connection: close" asks');
    const head = closing.text.split('\r\n\r\n', 1)[0]!.toLowerCase();
    assert.match(head, /^x-accel-buffering: no$/m);
    assert.doesNotMatch(head, /^connection: keep-alive$/m);
    const kept = await rawExchange(server.port, post(''), 500);
    assert.ok(kept.text.includes('data: [DONE]'), kept.text);
    assert.ok(!kept.closedByServer, 'a keep-alive connection stays open after the stream');
  });
});

test('HEAD is answered wherever GET is, as uptime monitors and curl -I send it: the headers of the GET reply and no body', async () => {
  await withServer(async (server) => {
    for (const path of ['/health', '/v1/models', `/v1/models/${NAME}`]) {
      const head = await fetch(`${server.url}${path}`, { method: 'HEAD' });
      assert.equal(head.status, 200, `HEAD ${path}`);
      assert.match(head.headers.get('content-type')!, /^application\/json/);
      assert.equal(await head.text(), '');
    }
    const wrong = await fetch(`${server.url}/v1/models`, { method: 'DELETE' });
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.get('allow'), 'GET, HEAD');
    assert.equal((await fetch(`${server.url}/v1/chat/completions`, { method: 'HEAD' })).status, 405);
  });
});
