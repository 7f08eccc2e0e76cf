// huatuo-train serve against other web pages and oversized prompts, over real HTTP on
// 127.0.0.1 with the tiny vocab32k fixture (LLaMA's tokenizer, context raised to 2048): Host,
// Origin, CORS and content-type checks, prompts refused by length before tokenizing, prompts
// tokenized off the event loop, and the Retry-After estimate.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initWebGPU } from '@huatuo/tensor';
import { llamaTokenizerDir, loadLlama, loadTokenizer, type LlamaModel, type Tokenizer } from '@huatuo/llama';
import { buildServeCommand } from '@huatuo/cli';
import { ConfigError, MED_TEMPLATE, generatePrompt, longestPieceChars, retryAfterSeconds, startServer, type RunningServer, type ServeOptions } from '@huatuo/sft';
import { rawRequest, type RawReply } from '../http/raw-request.ts';

const fixture = fileURLToPath(new URL('../fixtures/llama/vocab32k', import.meta.url));
const NAME = 'tiny-huatuo';
const QUESTION = '我最近经常头痛，还伴有恶心，应该怎么办？';

let model: LlamaModel;
let tokenizer: Tokenizer;

before(async () => {
  await initWebGPU();
  const dir = mkdtempSync(join(tmpdir(), 'huatuo-serve-access-'));
  cpSync(fixture, dir, { recursive: true });
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  config['max_position_embeddings'] = 2048;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  model = await loadLlama(dir);
  tokenizer = await loadTokenizer(llamaTokenizerDir());
});

after(() => model.dispose());

/** The tokenizer, counting the texts of `minChars` or more that its encode is given. */
function countingTokenizer(minChars: number): { tokenizer: Tokenizer; long: () => number } {
  let long = 0;
  const counted = new Proxy(tokenizer, {
    get(target, key) {
      if (key === 'encode') {
        return (text: string, options?: Parameters<Tokenizer['encode']>[1]) => {
          if (text.length >= minChars) long++;
          return target.encode(text, options);
        };
      }
      const v = Reflect.get(target, key) as unknown;
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  return { tokenizer: counted, long: () => long };
}

async function withServer(options: Partial<ServeOptions>, fn: (server: RunningServer) => Promise<void>): Promise<void> {
  const server = await startServer({ model, tokenizer, template: MED_TEMPLATE, modelName: NAME, defaultGeneration: { maxTokens: 4 }, ...options });
  try {
    await fn(server);
  } finally {
    await server.close();
  }
}

const chat = (content = QUESTION) => JSON.stringify({ model: NAME, messages: [{ role: 'user', content }], max_tokens: 3, temperature: 0 });
const json = { 'content-type': 'application/json' };
const error = (r: RawReply): { message: string; type: string; code: number; param: string | null } => JSON.parse(r.text).error;

test('requests naming another Host, from pages of other origins, or with non-JSON bodies are refused before any work', async () => {
  await withServer({}, async (server) => {
    const evilHost = await rawRequest(server.url, '/health', { headers: { host: `attacker.example:${server.port}` } });
    assert.equal(evilHost.status, 403);
    assert.deepEqual([error(evilHost).type, error(evilHost).code], ['PermissionDeniedError', 403]);
    assert.match(error(evilHost).message, /attacker\.example/);
    assert.equal((await rawRequest(server.url, '/health', { headers: { host: `localhost:${server.port}` } })).status, 200);
    const rebound = await rawRequest(server.url, '/v1/chat/completions', { body: chat(), headers: { ...json, host: `attacker.example:${server.port}` } });
    assert.equal(rebound.status, 403);
    const plain = await rawRequest(server.url, '/v1/chat/completions', { body: chat(), headers: { 'content-type': 'text/plain;charset=UTF-8' } });
    assert.equal(plain.status, 415);
    assert.deepEqual([error(plain).type, error(plain).code], ['BadRequestError', 415]);
    const crossSite = await rawRequest(server.url, '/v1/chat/completions', { body: chat(), headers: { ...json, origin: 'https://attacker.example' } });
    assert.equal(crossSite.status, 403);
    assert.deepEqual([error(crossSite).type, error(crossSite).code], ['PermissionDeniedError', 403]);
    assert.match(error(crossSite).message, /--cors-origin https:\/\/attacker\.example/);
    const sameOrigin = await rawRequest(server.url, '/v1/chat/completions', { body: chat(), headers: { ...json, origin: server.url } });
    assert.equal(sameOrigin.status, 200, sameOrigin.text);
  });
});

test('with --cors-origin, the allowed page\'s preflight is answered and its requests carry Access-Control-Allow-Origin, exposing Retry-After and x-request-id', async () => {
  const page = 'http://localhost:5173';
  await withServer({ corsOrigins: [page], allowedHosts: ['gpu-box.lan'] }, async (server) => {
    const preflight = await rawRequest(server.url, '/v1/chat/completions', {
      method: 'OPTIONS',
      headers: { origin: page, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers['access-control-allow-origin'], page);
    assert.equal(preflight.headers['access-control-allow-methods'], 'POST');
    assert.equal(preflight.headers['access-control-allow-headers'], 'authorization,content-type');
    assert.match(String(preflight.headers['vary']), /^Origin, /);
    const r = await rawRequest(server.url, '/v1/chat/completions', { body: chat(), headers: { ...json, origin: page, host: 'gpu-box.lan' } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers['access-control-allow-origin'], page);
    assert.match(String(r.headers['vary']), /Origin/);
    assert.equal(r.headers['access-control-expose-headers'], 'retry-after, x-request-id', "the page's openai client can read a 503's Retry-After and the request id");
    assert.equal(r.headers['x-request-id'], JSON.parse(r.text).id);
    assert.equal((await rawRequest(server.url, '/v1/models', { headers: { origin: 'http://localhost:5174' } })).status, 403);
  });
  await assert.rejects(
    buildServeCommand({ out: () => {}, err: () => {} }).parseAsync(['--cors-origin', 'localhost:5173'], { from: 'user' }),
    (e: unknown) => e instanceof ConfigError && e.flag === '--cors-origin' && /scheme:\/\/host/.test(e.message),
  );
});

test('a prompt longer than the context can hold in characters is refused without tokenizing it, while /health keeps answering', async () => {
  const { tokenizer: counted, long } = countingTokenizer(100_000);
  await withServer({ tokenizer: counted }, async (server) => {
    const huge = '头痛'.repeat(150_000);
    const refusal = rawRequest(server.url, '/v1/chat/completions', { body: chat(huge), headers: json });
    const health = await rawRequest(server.url, '/health');
    assert.equal(health.status, 200);
    const r = await refusal;
    assert.equal(r.status, 400);
    assert.deepEqual([error(r).type, error(r).code], ['BadRequestError', 400]);
    assert.equal(error(r).param, null, "vLLM's param is null; the message names the field");
    const bound = 2048 * longestPieceChars(tokenizer);
    assert.match(error(r).message, new RegExp(`is ${generatePrompt(MED_TEMPLATE, huge).length} characters.* at most ${bound} fit; shorten the messages$`));
    const completion = await rawRequest(server.url, '/v1/completions', { body: JSON.stringify({ model: NAME, prompt: 'a'.repeat(1_000_000) }), headers: json });
    assert.equal(completion.status, 400);
    assert.equal(error(completion).param, null);
    assert.match(error(completion).message, /shorten the prompt$/);
    assert.equal(long(), 0, 'the huge prompts were never tokenized');
  });
});

test('with tokenizerDir, prompts are tokenized on a worker thread: same answers, and /health is served while a long prompt is encoded', async () => {
  const direct = await (async () => {
    let text = '';
    await withServer({}, async (server) => {
      text = (await rawRequest(server.url, '/v1/chat/completions', { body: chat(), headers: json })).text;
    });
    return JSON.parse(text);
  })();
  const { tokenizer: counted, long } = countingTokenizer(1);
  await withServer({ tokenizer: counted, tokenizerDir: llamaTokenizerDir() }, async (server) => {
    const probes = long();
    const r = JSON.parse((await rawRequest(server.url, '/v1/chat/completions', { body: chat(), headers: json })).text);
    assert.equal(r.choices[0].message.content, direct.choices[0].message.content);
    assert.equal(r.usage.prompt_tokens, tokenizer.encode(generatePrompt(MED_TEMPLATE, QUESTION)).length);
    // Within the character bound, but far more tokens than the context: refused after tokenizing.
    const order: string[] = [];
    const longPrompt = rawRequest(server.url, '/v1/completions', { body: JSON.stringify({ model: NAME, prompt: 'hello world '.repeat(2700) }), headers: json }).then((x) => {
      order.push('long prompt');
      return x;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const health = await rawRequest(server.url, '/health');
    order.push('health');
    assert.equal(health.status, 200);
    const refused = await longPrompt;
    assert.equal(refused.status, 400);
    assert.match(error(refused).message, /the prompt is \d{4,} tokens/);
    assert.deepEqual(order, ['health', 'long prompt']);
    assert.equal(long(), probes, 'no prompt was tokenized on the main thread');
  });
});

test('a request without model says the field is missing, and a lowercase bearer scheme is accepted', async () => {
  await withServer({ apiKey: 'sekret-token' }, async (server) => {
    const auth = { ...json, authorization: 'bearer sekret-token' };
    const missing = await rawRequest(server.url, '/v1/chat/completions', { body: JSON.stringify({ messages: [{ role: 'user', content: QUESTION }] }), headers: auth });
    assert.equal(missing.status, 400);
    assert.equal(error(missing).param, null);
    assert.match(error(missing).message, /^model: missing; .*"tiny-huatuo"/);
    assert.doesNotMatch(error(missing).message, /undefined/);
    assert.equal((await rawRequest(server.url, '/v1/models', { headers: { authorization: 'BEARER sekret-token' } })).status, 200);
  });
});

test('Retry-After is the time left of the running generation at its own rate, or at the recent rate before its first token', () => {
  assert.equal(retryAfterSeconds(null, [0.5]), 1, 'nothing running: retry at once');
  assert.equal(retryAfterSeconds({ elapsedSeconds: 2, tokens: 20, maxTokens: 50 }, []), 3);
  assert.equal(retryAfterSeconds({ elapsedSeconds: 0.3, tokens: 3, maxTokens: 4 }, [30]), 1, 'a queue that drains in a second says so, whatever ran before');
  assert.equal(retryAfterSeconds({ elapsedSeconds: 10, tokens: 100, maxTokens: 1000 }, []), 90, 'no 60 s cap: a long generation says how long');
  assert.equal(retryAfterSeconds({ elapsedSeconds: 1, tokens: 0, maxTokens: 40 }, [0.1, 0.3]), 7);
  assert.equal(retryAfterSeconds({ elapsedSeconds: 0, tokens: 0, maxTokens: 40 }, []), 1, 'nothing known yet');
});
