// huatuo-train serve: the OpenAI-compatible server on 127.0.0.1 with the tiny vocab32k fixture
// (LLaMA's tokenizer, 1 layer, C = 16; its context raised to 2048 so real prompts fit), talked to
// by the openai client, raw HTTP, gen-data (in process and as a killed child) and the SUS judge.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import OpenAI from 'openai';
import { deviceInfo, initWebGPU } from '@huatuo/tensor';
import { checkMemoryPlan, generate, llamaTokenizerDir, loadAdapter, loadLlama, loadTokenizer, planMemory, type LlamaModel, type Tokenizer } from '@huatuo/llama';
import { buildServeCommand } from '@huatuo/cli';
import { MED_TEMPLATE, chatToInstruction, generatePrompt, getResponse, startServer, type RunningServer, type ServeEvent, type ServeOptions } from '@huatuo/sft';
import { ExhaustedError, buildGenDataCommand, shippedGraphPath } from '@huatuo/kg';
import { judgeItems, verdictRatings } from '@huatuo/sus';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const fixture = fileURLToPath(new URL('../fixtures/llama/vocab32k', import.meta.url));
const childScript = fileURLToPath(new URL('./serve-gen-data-child.ts', import.meta.url));
const NAME = 'tiny-huatuo';
const QUESTION = '我最近经常头痛，还伴有恶心，应该怎么办？';

let modelDir: string;
let model: LlamaModel;
let tokenizer: Tokenizer;

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'huatuo-serve-'));
}

before(async () => {
  await initWebGPU();
  modelDir = tmp();
  cpSync(fixture, modelDir, { recursive: true });
  const config = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')) as Record<string, unknown>;
  config['max_position_embeddings'] = 2048;
  writeFileSync(join(modelDir, 'config.json'), JSON.stringify(config));
  cpSync(join(llamaTokenizerDir(), 'tokenizer.model'), join(modelDir, 'tokenizer.model'));
  model = await loadLlama(modelDir);
  tokenizer = await loadTokenizer(llamaTokenizerDir());
});

after(() => model.dispose());

async function withServer(options: Partial<ServeOptions>, fn: (server: RunningServer, events: ServeEvent[]) => Promise<void>): Promise<void> {
  const events: ServeEvent[] = [];
  const server = await startServer({
    model,
    tokenizer,
    template: MED_TEMPLATE,
    modelName: NAME,
    defaultGeneration: { maxTokens: 12 },
    ...options,
    onEvent: (e) => {
      events.push(e);
      options.onEvent?.(e);
    },
  });
  try {
    await fn(server, events);
  } finally {
    await server.close();
  }
}

interface Reply {
  status: number;
  headers: Headers;
  // Parsed JSON of any shape: the tests read OpenAI fields off it.
  json: any;
}

async function call(url: string, init: { method?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<Reply> {
  const body = init.body === undefined ? undefined : typeof init.body === 'string' ? init.body : JSON.stringify(init.body);
  const res = await fetch(url, { method: init.method ?? (body === undefined ? 'GET' : 'POST'), headers: { 'content-type': 'application/json', ...init.headers }, body });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text === '' ? null : JSON.parse(text) };
}

/** vLLM's ErrorResponse with `status`; param null, as vLLM leaves it, and the message naming `field`, where one is at fault. */
function assertError(r: Reply, status: number, field: string | null, what: string): void {
  assert.equal(r.status, status, `${what}: status ${r.status}, body ${JSON.stringify(r.json)}`);
  const e = r.json?.error;
  assert.ok(e && typeof e.message === 'string' && e.message.length > 10, `${what}: an OpenAI error object with a message, got ${JSON.stringify(r.json)}`);
  assert.deepEqual(Object.keys(e).sort(), ['code', 'message', 'param', 'type'], `${what}: vLLM's ErrorInfo`);
  assert.equal(e.code, status, `${what}: vLLM's code is the status`);
  const type = { 400: 'BadRequestError', 404: 'NotFoundError', 401: 'AuthenticationError', 403: 'PermissionDeniedError', 500: 'InternalServerError', 503: 'InternalServerError' }[status] ?? 'BadRequestError';
  assert.equal(e.type, type, `${what}: type`);
  assert.equal(e.param, null, `${what}: vLLM's param is null`);
  if (field !== null) assert.match(e.message, new RegExp(`(^|\\W)${field.replace(/[.[\]]/g, '\\$&')}(\\W|$)`), `${what}: the message names ${field}`);
}

async function waitFor(what: string, done: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await done())) {
    if (Date.now() > deadline) assert.fail(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function client(server: RunningServer, apiKey = 'unused'): OpenAI {
  return new OpenAI({ baseURL: `${server.url}/v1`, apiKey, maxRetries: 0 });
}

/** Greedy text of the model for a text prompt, straight from generate. */
async function greedy(prompt: string, maxNewTokens: number, m: LlamaModel = model): Promise<string> {
  const [g] = await generate(m, tokenizer, prompt, { maxNewTokens });
  return g!.text;
}

test('chat messages fold into one question: a lone user message as is, system lines first, earlier turns as <user>/<bot> lines', () => {
  assert.equal(chatToInstruction([{ role: 'user', content: QUESTION }]), QUESTION);
  assert.equal(chatToInstruction([{ role: 'system', content: '你是医生。' }, { role: 'user', content: QUESTION }]), `你是医生。\n${QUESTION}`);
  assert.equal(
    chatToInstruction([
      { role: 'user', content: '我头痛。' },
      { role: 'assistant', content: '多久了？' },
      { role: 'user', content: '三天了。' },
    ]),
    ' <user>: 我头痛。 <bot>: 多久了？ <user>: 三天了。',
  );
});

test('the openai client gets a chat.completion whose content is the greedy answer after the template marker, with token usage', async () => {
  await withServer({}, async (server) => {
    const r = await client(server).chat.completions.create({ model: NAME, messages: [{ role: 'user', content: QUESTION }], max_tokens: 10, temperature: 0 });
    const prompt = generatePrompt(MED_TEMPLATE, QUESTION);
    assert.equal(r.object, 'chat.completion');
    assert.match(r.id, /^chatcmpl-/);
    assert.equal(r.model, NAME);
    assert.ok(Number.isInteger(r.created) && Math.abs(r.created - Date.now() / 1000) < 600);
    assert.equal(r.choices.length, 1);
    assert.equal(r.choices[0]!.message.role, 'assistant');
    assert.equal(r.choices[0]!.message.content, getResponse(MED_TEMPLATE, prompt + (await greedy(prompt, 10))));
    assert.ok(r.choices[0]!.finish_reason === 'length' || r.choices[0]!.finish_reason === 'stop');
    assert.equal(r.usage!.prompt_tokens, tokenizer.encode(prompt).length);
    assert.ok(r.usage!.completion_tokens >= 1 && r.usage!.completion_tokens <= 10);
    assert.equal(r.usage!.total_tokens, r.usage!.prompt_tokens + r.usage!.completion_tokens);
    if (r.choices[0]!.finish_reason === 'length') assert.equal(r.usage!.completion_tokens, 10);
  });
});

test('a multi-turn chat with a system message is prompted as its folded question', async () => {
  await withServer({}, async (server) => {
    const messages = [
      { role: 'system' as const, content: '请用中文回答。' },
      { role: 'user' as const, content: '我头痛。' },
      { role: 'assistant' as const, content: '多久了？' },
      { role: 'user' as const, content: '三天了。' },
    ];
    const r = await client(server).chat.completions.create({ model: NAME, messages, max_tokens: 4, temperature: 0 });
    const prompt = generatePrompt(MED_TEMPLATE, '请用中文回答。\n <user>: 我头痛。 <bot>: 多久了？ <user>: 三天了。');
    assert.equal(r.usage!.prompt_tokens, tokenizer.encode(prompt).length);
    assert.equal(r.choices[0]!.message.content, getResponse(MED_TEMPLATE, prompt + (await greedy(prompt, 4))));
  });
});

test('a content of text parts is their texts joined by newlines, empty parts left out, as vLLM joins them', async () => {
  await withServer({}, async (server) => {
    const parts = [
      { type: 'text' as const, text: '我头痛。' },
      { type: 'text' as const, text: '' },
      { type: 'text' as const, text: '三天了。' },
    ];
    const r = await client(server).chat.completions.create({ model: NAME, messages: [{ role: 'user', content: parts }], max_tokens: 4, temperature: 0 });
    const prompt = generatePrompt(MED_TEMPLATE, '我头痛。\n三天了。');
    assert.equal(r.usage!.prompt_tokens, tokenizer.encode(prompt).length);
    assert.equal(r.choices[0]!.message.content, getResponse(MED_TEMPLATE, prompt + (await greedy(prompt, 4))));
  });
});

test('streamed chat chunks concatenate to the non-streamed answer, end with a finish reason, usage (left out of the chunks before it) and [DONE]', async () => {
  await withServer({}, async (server) => {
    const api = client(server);
    const body = { model: NAME, messages: [{ role: 'user' as const, content: QUESTION }], max_tokens: 12, temperature: 0.8, seed: 7 };
    const whole = await api.chat.completions.create(body);
    const stream = await api.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
    let text = '';
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const c of stream) {
      chunks.push(c);
      for (const ch of c.choices) text += ch.delta.content ?? '';
    }
    assert.equal(text, whole.choices[0]!.message.content, 'same seed, same answer, streamed or not');
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0]!.id && c.model === NAME));
    assert.equal(chunks[0]!.choices[0]!.delta.role, 'assistant');
    const last = chunks.filter((c) => c.choices.length > 0).at(-1)!;
    assert.equal(last.choices[0]!.finish_reason, whole.choices[0]!.finish_reason);
    const { prompt_tokens_details, ...counts } = whole.usage! as typeof whole.usage & { prompt_tokens_details: unknown };
    assert.equal(prompt_tokens_details, null);
    assert.deepEqual(chunks.at(-1)!.usage, counts, "the usage chunk leaves vLLM's null prompt_tokens_details out (exclude_none)");
    assert.deepEqual(chunks.at(-1)!.choices, [], 'the usage chunk has no choices');
    assert.ok(chunks.slice(0, -1).every((c) => !('usage' in c)), "with include_usage, the chunks before the last leave usage out, as vLLM's exclude_unset writes them");
    const raw = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, stream: true }) });
    assert.match(raw.headers.get('content-type')!, /^text\/event-stream/);
    const events = await raw.text();
    assert.ok(events.trimEnd().endsWith('data: [DONE]'));
    assert.doesNotMatch(events, /"usage"/, 'no usage field without include_usage');
  });
});

test('completions continue the raw prompt, cut before a stop string, streamed or not', async () => {
  await withServer({}, async (server) => {
    const api = client(server);
    const prompt = 'The patient reports';
    const full = await greedy(prompt, 16);
    assert.ok(full.length > 4, `the fixture's greedy continuation is long enough to cut: ${JSON.stringify(full)}`);
    const plain = await api.completions.create({ model: NAME, prompt, max_tokens: 16, temperature: 0 });
    assert.equal(plain.object, 'text_completion');
    assert.match(plain.id, /^cmpl-/);
    assert.equal(plain.choices[0]!.text, full);
    assert.equal(plain.usage!.prompt_tokens, tokenizer.encode(prompt).length);
    // A stop string whose first occurrence is past the start of the continuation.
    let stop = '';
    for (let k = 1; k + 3 <= full.length && stop === ''; k++) if (full.indexOf(full.slice(k, k + 3)) > 0) stop = full.slice(k, k + 3);
    assert.notEqual(stop, '', `no stop string found in ${JSON.stringify(full)}`);
    const expected = full.slice(0, full.indexOf(stop));
    const cut = await api.completions.create({ model: NAME, prompt, max_tokens: 16, temperature: 0, stop: [stop] });
    assert.equal(cut.choices[0]!.text, expected);
    assert.equal(cut.choices[0]!.finish_reason, 'stop');
    let streamed = '';
    let reason: string | null = null;
    for await (const c of await api.completions.create({ model: NAME, prompt, max_tokens: 16, temperature: 0, stop, stream: true })) {
      streamed += c.choices[0]?.text ?? '';
      reason = c.choices[0]?.finish_reason ?? reason;
    }
    assert.equal(streamed, expected, 'no part of the stop string is streamed');
    assert.equal(reason, 'stop');
  });
});

/** The JSON events of a streamed reply, [DONE] left out. */
async function sseEvents(url: string, body: unknown): Promise<any[]> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal(res.status, 200);
  return (await res.text())
    .split('\n\n')
    .filter((e) => e.startsWith('data: ') && e !== 'data: [DONE]')
    .map((e) => JSON.parse(e.slice('data: '.length)));
}

const keys = (o: object) => Object.keys(o).sort();

test("replies carry every field vLLM's carry, with its nulls: stop_reason (the stop string, an end-of-sequence id other than the tokenizer's, else null), prompt_logprobs, service_tier, kv_transfer_params, prompt_tokens_details, the chat message's", async () => {
  // generation_config.json names a second end-of-sequence id (13, "\n"), which vLLM adds to stop_token_ids.
  const dir = tmp();
  cpSync(modelDir, dir, { recursive: true });
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ bos_token_id: 1, eos_token_id: [2, 13] }));
  const eosModel = await loadLlama(dir);
  try {
    await withServer({ model: eosModel }, async (server) => {
      const url = (path: string) => `${server.url}/v1/${path}`;
      const prompt = 'The patient reports';
      const full = await greedy(prompt, 16, eosModel);
      let stop = '';
      for (let k = 1; k + 3 <= full.length && stop === ''; k++) if (full.indexOf(full.slice(k, k + 3)) > 0) stop = full.slice(k, k + 3);
      assert.notEqual(stop, '', `no stop string found in ${JSON.stringify(full)}`);
      const completion = { model: NAME, prompt, max_tokens: 16, temperature: 0 };

      const cut = await call(url('completions'), { body: { ...completion, stop: [stop] } });
      assert.deepEqual(keys(cut.json), ['choices', 'created', 'id', 'kv_transfer_params', 'model', 'object', 'service_tier', 'system_fingerprint', 'usage']);
      for (const k of ['kv_transfer_params', 'service_tier', 'system_fingerprint']) assert.equal(cut.json[k], null, k);
      assert.deepEqual(keys(cut.json.choices[0]), ['finish_reason', 'index', 'logprobs', 'prompt_logprobs', 'stop_reason', 'text']);
      assert.deepEqual([cut.json.choices[0].finish_reason, cut.json.choices[0].stop_reason, cut.json.choices[0].prompt_logprobs], ['stop', stop, null]);
      const n = cut.json.usage.completion_tokens;
      assert.deepEqual(cut.json.usage, { prompt_tokens: tokenizer.encode(prompt).length, completion_tokens: n, total_tokens: tokenizer.encode(prompt).length + n, prompt_tokens_details: null });
      const long = await call(url('completions'), { body: { ...completion, max_tokens: 3 } });
      assert.deepEqual([long.json.choices[0].finish_reason, long.json.choices[0].stop_reason], ['length', null]);
      // The tokenizer's end of sequence: stop_reason null; generation_config.json's other one: its id.
      const eos = await call(url('completions'), { body: { ...completion, logit_bias: { 2: 100 } } });
      assert.deepEqual([eos.json.choices[0].finish_reason, eos.json.choices[0].stop_reason, eos.json.usage.completion_tokens], ['stop', null, 1]);
      const other = await call(url('completions'), { body: { ...completion, logit_bias: { 13: 100 } } });
      assert.deepEqual([other.json.choices[0].finish_reason, other.json.choices[0].stop_reason, other.json.usage.completion_tokens], ['stop', 13, 1]);

      // Streamed completions: every chunk has vLLM's CompletionStreamResponse fields, usage null, each choice its stop_reason.
      const streamed = await sseEvents(url('completions'), { ...completion, stop: [stop], stream: true });
      for (const e of streamed) {
        assert.deepEqual(keys(e), ['choices', 'created', 'id', 'model', 'object', 'usage'], JSON.stringify(e));
        assert.equal(e.usage, null);
        assert.deepEqual(keys(e.choices[0]), ['finish_reason', 'index', 'logprobs', 'stop_reason', 'text']);
      }
      assert.deepEqual(streamed.map((e) => e.choices[0].stop_reason), [...streamed.slice(1).map(() => null), stop]);
      const usageLast = await sseEvents(url('completions'), { ...completion, max_tokens: 2, stream: true, stream_options: { include_usage: true } });
      assert.deepEqual(usageLast.at(-1).usage, { prompt_tokens: tokenizer.encode(prompt).length, completion_tokens: 2, total_tokens: tokenizer.encode(prompt).length + 2 }, 'the usage chunk leaves prompt_tokens_details out, as vLLM writes it (exclude_none)');
      // best_of above n streamed: the whole reply as one event, as vLLM sends it.
      const whole = await sseEvents(url('completions'), { ...completion, temperature: 1, seed: 3, max_tokens: 4, best_of: 2, stream: true });
      assert.equal(whole.length, 1);
      assert.deepEqual(keys(whole[0]), keys(cut.json));
      assert.deepEqual(keys(whole[0].choices[0]), keys(cut.json.choices[0]));

      const chatBody = { model: NAME, messages: [{ role: 'user', content: QUESTION }], max_tokens: 3, temperature: 0 };
      const chat = await call(url('chat/completions'), { body: chatBody });
      assert.deepEqual(keys(chat.json), ['choices', 'created', 'id', 'kv_transfer_params', 'model', 'object', 'prompt_logprobs', 'service_tier', 'system_fingerprint', 'usage']);
      for (const k of ['kv_transfer_params', 'prompt_logprobs', 'service_tier', 'system_fingerprint']) assert.equal(chat.json[k], null, k);
      assert.equal(chat.json.usage.prompt_tokens_details, null);
      const choice = chat.json.choices[0];
      assert.deepEqual(keys(choice), ['finish_reason', 'index', 'logprobs', 'message', 'stop_reason']);
      assert.deepEqual([choice.finish_reason, choice.stop_reason], ['length', null]);
      assert.deepEqual(choice.message, { role: 'assistant', content: choice.message.content, refusal: null, annotations: null, audio: null, function_call: null, tool_calls: [], reasoning_content: null });
      const chatOther = await call(url('chat/completions'), { body: { ...chatBody, logit_bias: { 13: 100 } } });
      assert.deepEqual([chatOther.json.choices[0].finish_reason, chatOther.json.choices[0].stop_reason], ['stop', 13]);

      // Streamed chat: the fields vLLM sets (it leaves the unset out): stop_reason in the finish chunk alone.
      const chunks = await sseEvents(url('chat/completions'), { ...chatBody, stream: true, logit_bias: { 13: 100 } });
      const finish = chunks.filter((e) => e.choices[0].finish_reason !== null);
      assert.equal(finish.length, 1);
      assert.deepEqual(keys(finish[0].choices[0]), ['delta', 'finish_reason', 'index', 'logprobs', 'stop_reason']);
      assert.equal(finish[0].choices[0].stop_reason, 13);
      for (const e of chunks.filter((c) => c !== finish[0])) assert.deepEqual(keys(e.choices[0]), ['delta', 'finish_reason', 'index', 'logprobs'], JSON.stringify(e));
      assert.ok(chunks.every((e) => !('usage' in e)), 'no usage field without include_usage');
    });
  } finally {
    eosModel.dispose();
  }
});

test("a streamed choice's last text comes in its finish chunk, with finish_reason, stop_reason and the last tokens' logprobs, as vLLM's last step output; chunks have no system_fingerprint", async () => {
  await withServer({}, async (server) => {
    const url = (path: string) => `${server.url}/v1/${path}`;
    const prompt = 'The patient reports';
    const completion = { model: NAME, prompt, max_tokens: 4, temperature: 0, logprobs: 1, stream: true };
    const whole = await call(url('completions'), { body: { ...completion, stream: false } });
    const text = whole.json.choices[0].text as string;
    const tokens = whole.json.choices[0].logprobs.tokens as string[];
    assert.equal(tokens.length, 4);
    assert.ok(tokens[3]!.length > 0 && text.endsWith(tokens[3]!), `the 4th token shows text: ${JSON.stringify(tokens)}`);
    const streamed = await sseEvents(url('completions'), completion);
    assert.equal(streamed.map((e) => e.choices[0].text).join(''), text);
    const last = streamed.at(-1).choices[0];
    assert.deepEqual([last.finish_reason, last.stop_reason], ['length', null]);
    assert.ok(last.text.endsWith(tokens[3]!) && last.logprobs.tokens.at(-1) === tokens[3], `the last token's text and logprobs ride with the finish reason: ${JSON.stringify(last)}`);
    assert.ok(streamed.slice(0, -1).every((e) => e.choices[0].finish_reason === null && e.choices[0].text !== ''));
    assert.deepEqual(streamed.flatMap((e) => e.choices[0].logprobs.tokens), tokens);
    // A stop string: the text before it, and the tokens that made it, come with the finish reason.
    let stop = text.slice(-2);
    while (text.indexOf(stop) !== text.length - stop.length) stop = text.slice(-stop.length - 1);
    const cut = await sseEvents(url('completions'), { ...completion, stop: [stop] });
    assert.equal(cut.map((e) => e.choices[0].text).join(''), text.slice(0, -stop.length));
    assert.deepEqual([cut.at(-1).choices[0].finish_reason, cut.at(-1).choices[0].stop_reason], ['stop', stop]);
    assert.deepEqual(cut.flatMap((e) => e.choices[0].logprobs.tokens), tokens);
    assert.ok(cut.slice(0, -1).every((e) => e.choices[0].finish_reason === null));
    // The end of sequence first: one chunk, no text, the EOS token's logprobs.
    const eos = await sseEvents(url('completions'), { ...completion, logit_bias: { 2: 100 } });
    assert.equal(eos.length, 1);
    assert.deepEqual([eos[0].choices[0].text, eos[0].choices[0].finish_reason, eos[0].choices[0].logprobs.tokens.length], ['', 'stop', 1]);
    for (const e of [...streamed, ...cut, ...eos]) assert.ok(!('system_fingerprint' in e), JSON.stringify(e));

    const chatBody = { model: NAME, messages: [{ role: 'user', content: QUESTION }], max_tokens: 4, temperature: 0, logprobs: true, top_logprobs: 1, stream: true };
    const chatWhole = await call(url('chat/completions'), { body: { ...chatBody, stream: false } });
    const content = chatWhole.json.choices[0].logprobs.content as { token: string }[];
    const chunks = await sseEvents(url('chat/completions'), chatBody);
    assert.equal(chunks.map((e) => e.choices[0].delta.content ?? '').join(''), chatWhole.json.choices[0].message.content);
    const end = chunks.at(-1).choices[0];
    assert.deepEqual([end.finish_reason, end.stop_reason], ['length', null]);
    assert.equal(end.logprobs.content.at(-1).token, content.at(-1)!.token, "the last token's logprobs ride with the finish reason");
    assert.deepEqual(chunks.flatMap((e) => (e.choices[0].logprobs?.content ?? []).map((c: { token: string }) => c.token)), content.map((c) => c.token));
    assert.ok(chunks.slice(0, -1).every((e) => e.choices[0].finish_reason === null));
    // An end of sequence adds no text: the finish chunk's delta is vLLM's DeltaMessage(content="").
    const chatEos = await sseEvents(url('chat/completions'), { ...chatBody, logit_bias: { 2: 100 } });
    assert.deepEqual(chatEos.map((e) => e.choices[0].delta), [{ role: 'assistant', content: '' }, { content: '' }]);
    assert.deepEqual([chatEos[1].choices[0].finish_reason, chatEos[1].choices[0].logprobs.content.length], ['stop', 1]);
    for (const e of [...chunks, ...chatEos]) assert.ok(!('system_fingerprint' in e) && !('usage' in e), JSON.stringify(e));
  });
});

test("every generated token makes a chunk with its logprobs, as each of vLLM's engine steps does, its text empty while held back: the longest stop string's length less one character (output_text_buffer_length)", async () => {
  const prompt = 'The patient reports';
  const pieces: string[] = [];
  const [g] = await generate(model, tokenizer, prompt, { maxNewTokens: 8, onToken: (e) => pieces.push(e.text) });
  assert.equal(g!.finishReason, 'length');
  // Sixteen characters of two UTF-16 units each: fifteen characters held back, counted as Python counts them.
  const stop = ['x\u{1D11E}', '\u{1D11E}'.repeat(16)];
  const held = (text: string) => [...text].slice(0, -15).join('');
  const shown = pieces.map((_, k) => (k === pieces.length - 1 ? pieces.join('') : held(pieces.slice(0, k + 1).join(''))));
  const expected = shown.map((t, k) => t.slice(k === 0 ? 0 : shown[k - 1]!.length));
  assert.ok(expected.slice(0, -1).some((t) => t === '') && expected.slice(0, -1).some((t) => t !== ''), `the fixture's tokens make empty and non-empty chunks: ${JSON.stringify(pieces)}`);
  await withServer({}, async (server) => {
    const events = await sseEvents(`${server.url}/v1/completions`, { model: NAME, prompt, max_tokens: 8, temperature: 0, logprobs: 0, stop, stream: true });
    assert.deepEqual(events.map((e) => e.choices[0].text), expected);
    assert.deepEqual(events.map((e) => e.choices[0].logprobs.tokens.length), pieces.map(() => 1), 'one token a chunk');
    assert.deepEqual(events.map((e) => e.choices[0].finish_reason), [...pieces.slice(1).map(() => null), 'length']);

    // A chat under HuaTuo's template holds back its response marker's length less one (6), then strips as get_response.
    const chatPieces: string[] = [];
    await generate(model, tokenizer, generatePrompt(MED_TEMPLATE, QUESTION), { maxNewTokens: 6, onToken: (e) => chatPieces.push(e.text) });
    const chatShown = chatPieces.map((_, k) => (k === chatPieces.length - 1 ? chatPieces.join('').trim() : [...chatPieces.slice(0, k + 1).join('')].slice(0, -6).join('').trim()));
    const chatExpected = chatShown.map((t, k) => t.slice(k === 0 ? 0 : chatShown[k - 1]!.length));
    const chunks = await sseEvents(`${server.url}/v1/chat/completions`, { model: NAME, messages: [{ role: 'user', content: QUESTION }], max_tokens: 6, temperature: 0, logprobs: true, stream: true });
    assert.deepEqual(chunks.map((e) => e.choices[0].delta), [{ role: 'assistant', content: '' }, ...chatExpected.map((content) => ({ content }))]);
    assert.deepEqual(chunks.slice(1).map((e) => e.choices[0].logprobs.content.length), chatPieces.map(() => 1));
    assert.ok(chatExpected.includes(''), `some chunk shows no text: ${JSON.stringify(chatPieces)}`);
  });
});

test("a streamed echo comes in the choice's first chunk with its first token's text and logprobs, as vLLM's completion_stream_generator sends it, later text_offsets counting the generated text alone; with max_tokens 0 the prompt and the finish reason are one chunk", async () => {
  const prompt = 'The patient reports';
  const P = tokenizer.encode(prompt).length;
  const pieces: string[] = [];
  await generate(model, tokenizer, prompt, { maxNewTokens: 3, onToken: (e) => pieces.push(e.text) });
  await withServer({}, async (server) => {
    const url = `${server.url}/v1/completions`;
    const body = { model: NAME, prompt, echo: true, max_tokens: 3, temperature: 0, stream: true };
    assert.deepEqual((await sseEvents(url, body)).map((e) => e.choices[0].text), [prompt + pieces[0], pieces[1], pieces[2]]);
    const scored = await sseEvents(url, { ...body, logprobs: 1 });
    assert.deepEqual(scored.map((e) => e.choices[0].text), [prompt + pieces[0], pieces[1], pieces[2]]);
    const first = scored[0].choices[0].logprobs;
    assert.equal(first.tokens.length, P + 1);
    assert.deepEqual([first.token_logprobs[0], first.text_offset[0]], [null, 0]);
    assert.equal(scored[1].choices[0].logprobs.text_offset[0], [...pieces[0]!].length, "vLLM's previous_text_lens adds the generated text, not the echoed prompt");
    for (const logprobs of [undefined, 1]) {
      const only = await sseEvents(url, { ...body, max_tokens: 0, logprobs });
      assert.equal(only.length, 1);
      assert.deepEqual([only[0].choices[0].text, only[0].choices[0].finish_reason, only[0].choices[0].stop_reason], [prompt, 'length', null]);
      if (logprobs !== undefined) assert.equal(only[0].choices[0].logprobs.tokens.length, P);
    }
  });
});

test("include_stop_str_in_output keeps the stop string in the text, cut at its end as vLLM's StopChecker cuts it, and streams hold nothing back, in completions and chats", async () => {
  const prompt = 'The patient reports';
  const pieces: string[] = [];
  await generate(model, tokenizer, prompt, { maxNewTokens: 16, onToken: (e) => pieces.push(e.text) });
  // A stop string that begins a token with text after it: that text is dropped, the stop string kept.
  const k = pieces.findIndex((p, i) => i > 0 && [...p].length > 2 && pieces.join('').indexOf([...p].slice(0, 2).join('')) === pieces.slice(0, i).join('').length);
  assert.ok(k > 0, `no token begins a stop string with text after it: ${JSON.stringify(pieces)}`);
  const stop = [...pieces[k]!].slice(0, 2).join('');
  const kept = pieces.slice(0, k).join('') + stop;
  await withServer({}, async (server) => {
    const url = `${server.url}/v1/completions`;
    const body = { model: NAME, prompt, max_tokens: 16, temperature: 0, stop: [stop], include_stop_str_in_output: true };
    const whole = await call(url, { body });
    assert.deepEqual([whole.json.choices[0].text, whole.json.choices[0].finish_reason, whole.json.choices[0].stop_reason, whole.json.usage.completion_tokens], [kept, 'stop', stop, k + 1]);
    const streamed = await sseEvents(url, { ...body, stream: true });
    assert.deepEqual(streamed.map((e) => e.choices[0].text), [...pieces.slice(0, k), stop], 'each token shows its text at once');
    assert.deepEqual([streamed.at(-1).choices[0].finish_reason, streamed.at(-1).choices[0].stop_reason], ['stop', stop]);
    const off = await call(url, { body: { ...body, include_stop_str_in_output: false } });
    assert.equal(off.json.choices[0].text, pieces.slice(0, k).join(''));

    const chatPieces: string[] = [];
    await generate(model, tokenizer, generatePrompt(MED_TEMPLATE, QUESTION), { maxNewTokens: 8, onToken: (e) => chatPieces.push(e.text) });
    const answer = chatPieces.join('').trim();
    const chatStop = [...answer].slice(-3).join('');
    const chatKept = answer.slice(0, answer.indexOf(chatStop) + chatStop.length);
    const chat = { model: NAME, messages: [{ role: 'user', content: QUESTION }], max_tokens: 8, temperature: 0, stop: chatStop, include_stop_str_in_output: true };
    const reply = await call(`${server.url}/v1/chat/completions`, { body: chat });
    assert.deepEqual([reply.json.choices[0].message.content, reply.json.choices[0].finish_reason, reply.json.choices[0].stop_reason], [chatKept, 'stop', chatStop]);
    const chunks = await sseEvents(`${server.url}/v1/chat/completions`, { ...chat, stream: true });
    assert.equal(chunks.map((e) => e.choices[0].delta.content).join(''), chatKept);
  });
});

// A megabyte of stop strings was walked character by character for every token of every streamed choice: 4 of
// 250000 characters held the event loop ~40 ms per token and choice, minutes for one request of n 16. The
// characters are counted by walking the strings (Python's len), so the walks are counted here.
test('a stream counts its stop strings\' characters once per request, not once per token and choice', async () => {
  const stop = '\u0001'.repeat(1000);
  const iterate = String.prototype[Symbol.iterator];
  let walks = 0;
  String.prototype[Symbol.iterator] = function (this: string) {
    if (this.valueOf() === stop) walks++;
    return iterate.call(this);
  };
  try {
    await withServer({}, async (server) => {
      const events = await sseEvents(`${server.url}/v1/completions`, { model: NAME, prompt: 'The patient reports', max_tokens: 8, n: 2, seed: 1, stop: [stop], stream: true });
      assert.equal(events.filter((e) => e.choices[0].finish_reason === 'length').length, 2, 'both choices ran to max_tokens');
    });
  } finally {
    String.prototype[Symbol.iterator] = iterate;
  }
  assert.equal(walks, 1);
});

// The text a stream holds back was split into characters whole for every token, work that grew with the square of
// the answer's length. Characters are walked through the string iterator (Python's len), so the walks are counted.
test('a stream with stop strings walks each token\'s text a bounded number of times, not the whole text so far for every token', async () => {
  const iterate = String.prototype[Symbol.iterator];
  const walkedFor = async (server: RunningServer, maxTokens: number): Promise<{ walked: number; text: string }> => {
    let walked = 0;
    String.prototype[Symbol.iterator] = function (this: string) {
      walked += this.length;
      return iterate.call(this);
    };
    let events: any[];
    try {
      events = await sseEvents(`${server.url}/v1/completions`, { model: NAME, prompt: 'The patient reports', max_tokens: maxTokens, temperature: 0, stop: ['\u0001\u0001\u0001\u0001'], stream: true });
    } finally {
      String.prototype[Symbol.iterator] = iterate;
    }
    assert.equal(events.at(-1).choices[0].finish_reason, 'length');
    return { walked, text: events.map((e) => e.choices[0].text).join('') };
  };
  await withServer({}, async (server) => {
    const short = await walkedFor(server, 100);
    const long = await walkedFor(server, 400);
    const whole = await call(`${server.url}/v1/completions`, { body: { model: NAME, prompt: 'The patient reports', max_tokens: 400, temperature: 0, stop: ['\u0001\u0001\u0001\u0001'] } });
    assert.equal(long.text, whole.json.choices[0].text, 'the stream shows the whole answer');
    // Four times the tokens: four times the walks when linear, sixteen when quadratic.
    assert.ok(long.walked < 6 * short.walked, `${short.walked} characters walked for ${[...short.text].length} characters of 100 tokens, ${long.walked} for ${[...long.text].length} of 400`);
  });
});

test("stream_options as vLLM's StreamOptions: include_usage true unless given, continuous_usage_stats puts each choice's usage so far in every chunk", async () => {
  await withServer({}, async (server) => {
    const url = (path: string) => `${server.url}/v1/${path}`;
    const prompt = 'The patient reports';
    const P = tokenizer.encode(prompt).length;
    const completion = { model: NAME, prompt, max_tokens: 4, temperature: 0, stream: true };
    const usage = (completionTokens: number) => ({ prompt_tokens: P, completion_tokens: completionTokens, total_tokens: P + completionTokens });
    const byDefault = await sseEvents(url('completions'), { ...completion, stream_options: {} });
    assert.deepEqual(byDefault.at(-1), { id: byDefault[0].id, object: 'text_completion', created: byDefault[0].created, model: NAME, choices: [], usage: usage(4) });
    assert.ok(byDefault.slice(0, -1).every((e) => e.usage === null));
    const off = await sseEvents(url('completions'), { ...completion, stream_options: { include_usage: false, continuous_usage_stats: true } });
    assert.ok(off.every((e) => e.usage === null && e.choices.length === 1), 'continuous_usage_stats only with include_usage');
    const continuous = await sseEvents(url('completions'), { ...completion, stream_options: { continuous_usage_stats: true } });
    const counted = continuous.slice(0, -1);
    for (const e of counted) assert.deepEqual(e.usage, { ...usage(e.usage.completion_tokens), prompt_tokens_details: null }, JSON.stringify(e));
    assert.deepEqual(counted.at(-1).usage.completion_tokens, 4);
    assert.ok(counted.every((e, i) => i === 0 || e.usage.completion_tokens > counted[i - 1].usage.completion_tokens));
    assert.deepEqual(continuous.at(-1).usage, usage(4));

    const chatBody = { model: NAME, messages: [{ role: 'user', content: QUESTION }], max_tokens: 4, temperature: 0, stream: true };
    const chatPrompt = (await call(url('chat/completions'), { body: { ...chatBody, stream: false } })).json.usage.prompt_tokens as number;
    const chunks = await sseEvents(url('chat/completions'), { ...chatBody, stream_options: { continuous_usage_stats: true } });
    assert.deepEqual(chunks[0].usage, { prompt_tokens: chatPrompt, completion_tokens: 0, total_tokens: chatPrompt }, 'the role chunk: no tokens yet');
    for (const e of chunks) assert.deepEqual(keys(e.usage), ['completion_tokens', 'prompt_tokens', 'total_tokens'], "chat leaves prompt_tokens_details out (exclude_unset)");
    assert.equal(chunks.at(-2).usage.completion_tokens, 4);
    assert.deepEqual(chunks.at(-1).choices, []);
  });
});

test("of two stop strings one token completes, the first of the request's stop list ends the choice, text cut at it (vLLM's StopChecker), streamed or not", async () => {
  const prompt = 'The patient reports';
  const pieces: string[] = [];
  await generate(model, tokenizer, prompt, { maxNewTokens: 16, onToken: (e) => pieces.push(e.text) });
  const k = pieces.findIndex((p, i) => {
    const chars = [...p];
    const before = pieces.slice(0, i).join('');
    return chars.length >= 2 && chars[0] !== chars.at(-1) && !before.includes(chars[0]!) && !before.includes(chars.at(-1)!) && !p.slice(0, -1).includes(chars.at(-1)!);
  });
  assert.ok(k >= 0, `no token of two distinct new characters in ${JSON.stringify(pieces)}`);
  const piece = pieces[k]!;
  const [first, last] = [[...piece][0]!, [...piece].at(-1)!];
  await withServer({}, async (server) => {
    for (const stop of [[last, first], [first, last]]) {
      const text = pieces.slice(0, k).join('') + piece.slice(0, piece.indexOf(stop[0]!));
      const body = { model: NAME, prompt, max_tokens: 16, temperature: 0, stop };
      const whole = await call(`${server.url}/v1/completions`, { body });
      assert.deepEqual([whole.json.choices[0].text, whole.json.choices[0].finish_reason, whole.json.choices[0].stop_reason, whole.json.usage.completion_tokens], [text, 'stop', stop[0], k + 1]);
      const streamed = await sseEvents(`${server.url}/v1/completions`, { ...body, stream: true });
      assert.equal(streamed.map((e) => e.choices[0].text).join(''), text);
      assert.equal(streamed.at(-1).choices[0].stop_reason, stop[0]);
    }
  });
});

test('frequency_penalty and presence_penalty change chats and completions as generate applies them, in [-2, 2] and not with beams', async () => {
  await withServer({}, async (server) => {
    const api = client(server);
    const penalties = { frequencyPenalty: 0.5, presencePenalty: 2 };
    const prompt = 'The patient reports';
    const [plain] = await generate(model, tokenizer, prompt, { maxNewTokens: 16 });
    const [penalized] = await generate(model, tokenizer, prompt, { maxNewTokens: 16, ...penalties });
    assert.notEqual(penalized!.text, plain!.text, 'the penalties change the fixture\'s greedy continuation');
    const completion = await api.completions.create({ model: NAME, prompt, max_tokens: 16, temperature: 0, frequency_penalty: 0.5, presence_penalty: 2 });
    assert.equal(completion.choices[0]!.text, penalized!.text);
    const chatPrompt = generatePrompt(MED_TEMPLATE, QUESTION);
    const [answer] = await generate(model, tokenizer, chatPrompt, { maxNewTokens: 10, ...penalties });
    const chat = await api.chat.completions.create({ model: NAME, messages: [{ role: 'user', content: QUESTION }], max_tokens: 10, temperature: 0, frequency_penalty: 0.5, presence_penalty: 2 });
    assert.equal(chat.choices[0]!.message.content, getResponse(MED_TEMPLATE, chatPrompt + answer!.text));
    const url = `${server.url}/v1/chat/completions`;
    const ok = { model: NAME, messages: [{ role: 'user', content: QUESTION }], max_tokens: 2 };
    assertError(await call(url, { body: { ...ok, frequency_penalty: 2.5 } }), 400, 'frequency_penalty', 'frequency_penalty 2.5');
    assertError(await call(url, { body: { ...ok, presence_penalty: -2.01 } }), 400, 'presence_penalty', 'presence_penalty -2.01');
    assertError(await call(url, { body: { ...ok, presence_penalty: 'high' } }), 400, 'presence_penalty', 'presence_penalty a string');
    assertError(await call(`${server.url}/v1/completions`, { body: { model: NAME, prompt, max_tokens: 2, frequency_penalty: -3 } }), 400, 'frequency_penalty', 'a completion\'s frequency_penalty -3');
    const beams = await call(url, { body: { ...ok, num_beams: 2, presence_penalty: 1 } });
    assertError(beams, 400, 'presence_penalty', 'presence_penalty with beams');
    assert.match(beams.json.error.message, /not to beam search/);
    assert.equal((await call(url, { body: { ...ok, num_beams: 2, frequency_penalty: 0, presence_penalty: null } })).status, 200, 'zero and null penalties with beams');
    assert.equal((await call(url, { body: { ...ok, frequency_penalty: -2, presence_penalty: 2 } })).status, 200, 'penalties at the ends of the range');
  });
});

test("models are listed and retrieved by the served name, as vLLM's ModelCard with its ModelPermission; other names are 404", async () => {
  await withServer({ modelRoot: modelDir }, async (server) => {
    const api = client(server);
    const list = await api.models.list();
    assert.deepEqual(list.data.map((m) => m.id), [NAME]);
    assert.equal((await api.models.retrieve(NAME)).id, NAME);
    // vLLM's model card: root (what the model was loaded from), parent, the context length, one default permission.
    const card = await call(`${server.url}/v1/models/${NAME}`);
    const listed = (await call(`${server.url}/v1/models`)).json.data[0];
    for (const c of [card.json, listed, list.data[0] as unknown as Record<string, unknown>]) {
      assert.deepEqual(keys(c), ['created', 'id', 'max_model_len', 'object', 'owned_by', 'parent', 'permission', 'root'], JSON.stringify(c));
      assert.deepEqual([c.object, c.root, c.parent, c.max_model_len], ['model', modelDir, null, 2048]);
      const [permission, ...more] = c.permission as Record<string, unknown>[];
      assert.equal(more.length, 0);
      assert.match(permission!.id as string, /^modelperm-[0-9a-f]{32}$/);
      assert.ok(Number.isInteger(permission!.created));
      assert.deepEqual({ ...permission, id: undefined, created: undefined }, {
        id: undefined,
        created: undefined,
        object: 'model_permission',
        allow_create_engine: false,
        allow_sampling: true,
        allow_logprobs: true,
        allow_search_indices: false,
        allow_view: true,
        allow_fine_tuning: false,
        organization: '*',
        group: null,
        is_blocking: false,
      });
    }
    await withServer({}, async (plain) => assert.equal((await call(`${plain.url}/v1/models/${NAME}`)).json.root, NAME, 'root defaults to the served name'));
    await assert.rejects(api.models.retrieve('gpt-4'), (e: unknown) => e instanceof OpenAI.NotFoundError);
    const health = await call(`${server.url}/health`);
    assert.equal(health.status, 200);
    assert.equal(health.json.status, 'ok');
  });
});

test('malformed JSON, wrong types, unsupported values and over-long requests get 400 with a message naming the field', async () => {
  await withServer({ maxTokensLimit: 64 }, async (server) => {
    const chat = `${server.url}/v1/chat/completions`;
    const ok = { model: NAME, messages: [{ role: 'user', content: QUESTION }], max_tokens: 2 };
    assertError(await call(chat, { body: '{"model": "x", "messages": [' }), 400, null, 'truncated JSON');
    assertError(await call(chat, { body: '[1, 2]' }), 400, null, 'a JSON array');
    assertError(await call(chat, { body: '' }), 400, null, 'an empty body');
    assertError(await call(chat, { body: { ...ok, messages: 'hello' } }), 400, 'messages', 'messages a string');
    assertError(await call(chat, { body: { ...ok, messages: [] } }), 400, 'messages', 'no messages');
    assertError(await call(chat, { body: { ...ok, messages: [{ role: 'robot', content: 'x' }] } }), 400, 'messages[0].role', 'unknown role');
    assertError(await call(chat, { body: { ...ok, messages: [{ role: 'user', content: 42 }] } }), 400, 'messages[0].content', 'content a number');
    assertError(await call(chat, { body: { ...ok, messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'a' }] } }), 400, 'messages', 'last message not a question');
    assertError(await call(chat, { body: { ...ok, max_tokens: '8' } }), 400, 'max_tokens', 'max_tokens a string');
    assertError(await call(chat, { body: { ...ok, max_tokens: 0 } }), 400, 'max_tokens', 'max_tokens 0');
    assertError(await call(chat, { body: { ...ok, max_tokens: 65 } }), 400, 'max_tokens', 'max_tokens over the limit');
    assertError(await call(chat, { body: { ...ok, max_completion_tokens: 2.5 } }), 400, 'max_completion_tokens', 'fractional max_completion_tokens');
    assertError(await call(chat, { body: { ...ok, n: 0 } }), 400, 'n', 'n = 0');
    assertError(await call(chat, { body: { ...ok, n: 1.5 } }), 400, 'n', 'n = 1.5');
    assertError(await call(chat, { body: { ...ok, temperature: 3 } }), 400, 'temperature', 'temperature 3');
    assertError(await call(chat, { body: { ...ok, temperature: 'hot' } }), 400, 'temperature', 'temperature a string');
    assertError(await call(chat, { body: { ...ok, stream: 'yes' } }), 400, 'stream', 'stream a string');
    assertError(await call(chat, { body: { ...ok, stop: [1] } }), 400, 'stop', 'stop a number');
    assertError(await call(chat, { body: { ...ok, include_stop_str_in_output: 'yes' } }), 400, 'include_stop_str_in_output', 'include_stop_str_in_output a string');
    assertError(await call(chat, { body: { ...ok, tools: [{ type: 'function', function: { name: 'f' } }] } }), 400, 'tools', 'tools');
    assertError(await call(chat, { body: { ...ok, model: 7 } }), 400, 'model', 'model a number');
    const unknown = await call(chat, { body: { ...ok, model: 'gpt-4' } });
    assertError(unknown, 404, 'model', 'unknown model');
    assert.match(unknown.json.error.message, /^The model `gpt-4` does not exist/, "vLLM's _check_model message");
    const long = await call(chat, { body: { ...ok, messages: [{ role: 'user', content: '头痛'.repeat(1200) }] } });
    assertError(long, 400, 'messages', 'a prompt beyond the context');
    const completions = `${server.url}/v1/completions`;
    assertError(await call(completions, { body: { model: NAME, prompt: ['a', 'b'] } }), 400, 'prompt', 'two prompts');
    assertError(await call(completions, { body: { model: NAME, prompt: [1, 99999] } }), 400, 'prompt', 'token ids beyond the vocabulary');
    assertError(await call(completions, { body: { model: NAME, prompt: '' } }), 400, 'prompt', 'empty prompt');
    await assert.rejects(client(server).chat.completions.create({ ...ok, messages: [{ role: 'user', content: 'q' }], n: 17 }), (e: unknown) => e instanceof OpenAI.BadRequestError && /\bn\b/.test(e.message));
    // Still serving after all of that.
    const r = await call(chat, { body: ok });
    assert.equal(r.status, 200);
  });
});

test('a response_format other than text gets 400 naming it and its type, however deeply it nests, and the server keeps serving', async () => {
  await withServer({}, async (server) => {
    const chat = `${server.url}/v1/chat/completions`;
    const ok = { model: NAME, messages: [{ role: 'user', content: QUESTION }], max_tokens: 2 };
    // Parsed by JSON.parse, but too deep for JSON.stringify to write back: it answered 500 "Maximum call stack size exceeded".
    const depth = 200_000;
    const deep = JSON.stringify({ ...ok, response_format: '@' }).replace('"@"', `${'['.repeat(depth)}${']'.repeat(depth)}`);
    const nested = await call(chat, { body: deep });
    assertError(nested, 400, 'response_format', 'an array nested 200000 deep');
    assert.match(nested.json.error.message, /got an array$/);
    const jsonObject = await call(chat, { body: { ...ok, response_format: { type: 'json_object' } } });
    assertError(jsonObject, 400, 'response_format', 'json_object');
    assert.match(jsonObject.json.error.message, /got an object of type string "json_object"$/);
    assert.equal((await call(chat, { body: { ...ok, response_format: { type: 'text' } } })).status, 200);
  });
});

// A megabyte of token ids (200000 of them) took half a second of the event loop to decode before the context refused them.
test('a prompt of token ids beyond the context is refused without decoding it; an echoed prompt within it is decoded once', async () => {
  const decode = tokenizer.decode;
  let decoded = 0;
  tokenizer.decode = function (this: Tokenizer, ...args: Parameters<Tokenizer['decode']>) {
    decoded++;
    return decode.apply(this, args);
  };
  try {
    await withServer({}, async (server) => {
      const url = `${server.url}/v1/completions`;
      const long = await call(url, { body: { model: NAME, prompt: Array.from({ length: 4096 }, () => 5), max_tokens: 1 } });
      assertError(long, 400, null, 'a token-id prompt beyond the context');
      assert.match(long.json.error.message, /the prompt is 4096 tokens/);
      assert.equal(decoded, 0);
      const ids = tokenizer.encode('The patient reports', { addBos: false, addEos: false });
      const echoed = await call(url, { body: { model: NAME, prompt: ids, max_tokens: 1, echo: true, temperature: 0 } });
      assert.equal(echoed.status, 200);
      assert.ok(echoed.json.choices[0].text.startsWith('The patient reports'), echoed.json.choices[0].text);
      assert.equal(decoded, 1);
    });
  } finally {
    delete (tokenizer as { decode?: unknown }).decode;
  }
  assert.equal(tokenizer.decode, decode);
});

test('a max_tokens within the context whose generation would not fit the GPU is refused with 400 before it is queued', async (t) => {
  const fits = (length: number) => {
    try {
      checkMemoryPlan(planMemory(model.config, { batchSize: 1, seqLen: length, dtype: model.dtype, training: false, lastPositionLogits: true }), deviceInfo()!);
      return true;
    } catch {
      return false;
    }
  };
  const prompt = [1, 450, 16500, 13676];
  let length = prompt.length + 1;
  while (length <= model.config.maxPositionEmbeddings && fits(length)) length++;
  if (length > model.config.maxPositionEmbeddings) {
    t.skip('this adapter fits the whole context');
    return;
  }
  await withServer({}, async (server, events) => {
    const r = await call(`${server.url}/v1/completions`, { body: { model: NAME, prompt, max_tokens: length - prompt.length } });
    assertError(r, 400, 'max_tokens', 'a generation over the binding limit');
    assert.match(r.json.error.message, /does not fit the GPU/);
    assert.equal(events.length, 0, 'nothing was queued');
    const ok = await call(`${server.url}/v1/completions`, { body: { model: NAME, prompt, max_tokens: 2, temperature: 0 } });
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.json.usage, { prompt_tokens: prompt.length, completion_tokens: 2, total_tokens: prompt.length + 2, prompt_tokens_details: null });
  });
});

test('bodies over the limit get 413, declared or chunked, and the server keeps serving', async () => {
  await withServer({ maxBodyBytes: 64 * 1024 }, async (server) => {
    const chat = `${server.url}/v1/chat/completions`;
    const huge = JSON.stringify({ model: NAME, messages: [{ role: 'user', content: 'x'.repeat(2 * 1024 * 1024) }] });
    const declared = await call(chat, { body: huge });
    assertError(declared, 413, null, 'a 2 MiB body with content-length');
    // Chunked: no content-length, so the limit is found while reading.
    const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(chat, { method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
      for (let i = 0; i < 16; i++) req.write('x'.repeat(16 * 1024));
      req.end();
    }).catch((e: Error) => ({ status: -1, body: e.message }));
    assert.equal(chunked.status, 413, `chunked oversized body: ${chunked.body}`);
    assert.deepEqual([JSON.parse(chunked.body).error.type, JSON.parse(chunked.body).error.code], ['BadRequestError', 413]);
    const r = await call(chat, { body: { model: NAME, messages: [{ role: 'user', content: QUESTION }], max_tokens: 2 } });
    assert.equal(r.status, 200);
  });
});

test("unknown routes get FastAPI's 404 and wrong methods its 405 with Allow, as vLLM's", async () => {
  await withServer({}, async (server) => {
    const unknown = await call(`${server.url}/v1/embeddings`, { body: { model: NAME, input: 'x' } });
    assert.deepEqual([unknown.status, unknown.json], [404, { detail: 'Not Found' }]);
    assert.deepEqual((await call(`${server.url}/metrics`)).json, { detail: 'Not Found' });
    const get = await call(`${server.url}/v1/chat/completions`);
    assert.deepEqual([get.status, get.json, get.headers.get('allow')], [405, { detail: 'Method Not Allowed' }, 'POST']);
    const remove = await call(`${server.url}/v1/models`, { method: 'DELETE' });
    assert.deepEqual([remove.status, remove.json, remove.headers.get('allow')], [405, { detail: 'Method Not Allowed' }, 'GET, HEAD']);
  });
});

test("with an API key, every /v1 path needs the bearer token, known route or not (vLLM's middleware: 401 {\"error\": \"Unauthorized\"}), while /health stays open", async () => {
  await withServer({ apiKey: 'sekret-token' }, async (server) => {
    const body = { model: NAME, messages: [{ role: 'user', content: QUESTION }], max_tokens: 2 };
    const unauthorized = (r: Reply, what: string) => assert.deepEqual([r.status, r.json], [401, { error: 'Unauthorized' }], what);
    unauthorized(await call(`${server.url}/v1/chat/completions`, { body }), 'no token');
    unauthorized(await call(`${server.url}/v1/chat/completions`, { body, headers: { authorization: 'Bearer wrong-token!' } }), 'wrong token');
    unauthorized(await call(`${server.url}/v1/models`, { headers: { authorization: 'Basic c2VrcmV0LXRva2Vu' } }), 'wrong scheme');
    unauthorized(await call(`${server.url}/v1/embeddings`, { body }), 'an unknown /v1 route');
    unauthorized(await call(`${server.url}/v1/chat/completions`), 'a wrong method on a /v1 route');
    const known = { authorization: 'Bearer sekret-token' };
    assert.deepEqual((await call(`${server.url}/v1/embeddings`, { body, headers: known })).json, { detail: 'Not Found' });
    assert.deepEqual((await call(`${server.url}/nothing`)).json, { detail: 'Not Found' }, 'outside /v1 no key is asked for');
    assert.equal((await call(`${server.url}/v1/chat/completions`, { body, headers: { authorization: 'Bearer sekret-token' } })).status, 200);
    assert.equal((await call(`${server.url}/health`)).status, 200);
    await assert.rejects(client(server, 'nope').models.list(), (e: unknown) => e instanceof OpenAI.AuthenticationError);
    assert.equal((await client(server, 'sekret-token').models.list()).data[0]!.id, NAME);
  });
});

/** Opens a streaming chat request; resolves once the first chunk has arrived. */
function openStream(url: string, body: unknown): Promise<{ chunks: string[]; destroy: () => void; ended: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const chunks: string[] = [];
    let ended!: () => void;
    const endedP = new Promise<void>((r) => (ended = r));
    const req = request(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      if (res.statusCode !== 200) reject(new Error(`stream answered ${res.statusCode}`));
      res.on('data', (d: Buffer) => {
        chunks.push(d.toString());
        if (chunks.length === 1) resolve({ chunks, destroy: () => req.destroy(), ended: endedP });
      });
      res.on('end', ended);
      res.on('close', ended);
    });
    req.on('error', () => ended());
    req.end(JSON.stringify(body));
  });
}

test('a streaming client that disconnects stops its generation early, and the server goes on serving', async () => {
  await withServer({}, async (server, events) => {
    const stream = await openStream(server.url, { model: NAME, messages: [{ role: 'user', content: QUESTION }], max_tokens: 400, temperature: 0, stream: true });
    await waitFor('two streamed chunks', () => stream.chunks.join('').split('data: ').length > 3);
    stream.destroy();
    await waitFor('the cancellation', () => events.some((e) => e.type === 'cancelled'));
    const cancelled = events.find((e) => e.type === 'cancelled')!;
    assert.ok(cancelled.completionTokens! < 400, `stopped after ${cancelled.completionTokens} of 400 tokens`);
    assert.ok(!events.some((e) => e.type === 'finished' || e.type === 'failed'));
    const r = await client(server).chat.completions.create({ model: NAME, messages: [{ role: 'user', content: QUESTION }], max_tokens: 3 });
    assert.equal(r.choices.length, 1);
  });
});

test('a stream cut by the server shutting down ends with an error event the openai client throws, not as a silently short answer', async () => {
  await withServer({}, async (server, events) => {
    const stream = await client(server).chat.completions.create({ model: NAME, messages: [{ role: 'user', content: QUESTION }], max_tokens: 400, temperature: 0, stream: true });
    const chunks = stream[Symbol.asyncIterator]();
    await chunks.next();
    await chunks.next();
    const closing = server.close();
    await assert.rejects(
      async () => {
        while (!(await chunks.next()).done);
      },
      (e: unknown) => e instanceof OpenAI.APIError && /shutting down/.test(e.message),
    );
    await closing;
    assert.ok(events.some((e) => e.type === 'cancelled' && e.detail === 'the server is shutting down'));
  });
});

test('a streamed request waiting behind another gets ": keep-alive" comment lines before its first event, which the openai client skips', async () => {
  await withServer({ streamKeepAliveMs: 20 }, async (server, events) => {
    const busy = await openStream(server.url, { model: NAME, messages: [{ role: 'user', content: QUESTION }], max_tokens: 1500, temperature: 0, stream: true });
    // The raw bytes of the waiting reply beside what the client parses of them.
    let raw = '';
    const tee: typeof fetch = async (input, init) => {
      const r = await fetch(input, init);
      const reader = r.clone().body!.getReader();
      const decoder = new TextDecoder();
      void (async () => {
        for (let c = await reader.read(); !c.done; c = await reader.read()) raw += decoder.decode(c.value, { stream: true });
      })();
      return r;
    };
    const api = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0, fetch: tee });
    const body = { model: NAME, messages: [{ role: 'user' as const, content: '三天了。' }], max_tokens: 6, temperature: 0 };
    // Its headers come with the first comment, while the busy stream still runs.
    const stream = await api.chat.completions.create({ ...body, stream: true });
    await waitFor('a keep-alive comment', () => raw.includes(': keep-alive\n\n'));
    assert.ok(events.some((e) => e.type === 'started') && !events.some((e) => e.type === 'finished'), 'the busy stream still runs');
    busy.destroy();
    let content = '';
    for await (const c of stream) content += c.choices[0]?.delta.content ?? '';
    assert.ok(raw.indexOf(': keep-alive\n\n') < raw.indexOf('data: '), `the comment comes before the first event: ${JSON.stringify(raw.slice(0, 200))}`);
    assert.match(raw, /data: \[DONE\]\n\n$/);
    const whole = await api.chat.completions.create(body);
    assert.equal(content, whole.choices[0]!.message.content, 'the streamed text, comments skipped, is the answer');
  });
});

test('a waiting stream already started by a keep-alive comment ends with an error event the openai client throws when the server shuts down', async () => {
  await withServer({ streamKeepAliveMs: 20 }, async (server, events) => {
    const busy = await openStream(server.url, { model: NAME, messages: [{ role: 'user', content: QUESTION }], max_tokens: 1500, temperature: 0, stream: true });
    const stream = await client(server).chat.completions.create({ model: NAME, messages: [{ role: 'user', content: '三天了。' }], max_tokens: 6, stream: true });
    assert.equal(events.filter((e) => e.type === 'started').length, 1, 'the stream waits behind the busy one');
    const closing = server.close();
    await assert.rejects(
      async () => {
        for await (const c of stream) void c;
      },
      (e: unknown) => e instanceof OpenAI.APIError && /shutting down/.test(e.message),
    );
    await closing;
    busy.destroy();
    assert.equal(events.filter((e) => e.type === 'cancelled' && e.detail === 'the server is shutting down').length, 2);
  });
});

test('beyond the queue bound clients get 503 with Retry-After; the queued ones run in arrival order, a gone one is skipped', async () => {
  await withServer({ maxQueue: 3 }, async (server, events) => {
    const busy = await openStream(server.url, { model: NAME, messages: [{ role: 'user', content: QUESTION }], max_tokens: 400, temperature: 0, stream: true });
    const body = (i: number) => ({ model: NAME, messages: [{ role: 'user', content: `${QUESTION} ${i}` }], max_tokens: 3, temperature: 0 });
    // Three fill the queue (one of them gives up while waiting); three more are refused.
    const leaving = new AbortController();
    const queued = [0, 1, 2].map((i) =>
      fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body(i)), signal: i === 1 ? leaving.signal : null }).then(
        async (r) => ({ status: r.status, json: (await r.json()) as { id: string } }),
        (e: Error) => ({ status: -1, json: { id: e.name } }),
      ),
    );
    await waitFor('three queued requests', () => events.filter((e) => e.type === 'queued').length === 4);
    const refused = await Promise.all([3, 4, 5].map((i) => call(`${server.url}/v1/chat/completions`, { body: body(i) })));
    for (const r of refused) {
      assertError(r, 503, null, 'a request beyond the queue');
      assert.ok(Number(r.headers.get('retry-after')) >= 1);
    }
    const queuedIds = events.filter((e) => e.type === 'queued').map((e) => e.id);
    leaving.abort();
    await waitFor('the aborted request to close', () => queued[1]!.then(() => true));
    busy.destroy();
    const results = await Promise.all(queued);
    assert.deepEqual(results.map((r) => r.status), [200, -1, 200]);
    await waitFor('the queue to drain', () => events.filter((e) => e.type === 'finished' || e.type === 'cancelled').length === 4);
    const started = events.filter((e) => e.type === 'started').map((e) => e.id);
    assert.equal(started.length, 3, 'the request whose client left never started');
    assert.deepEqual(started, queuedIds.filter((id) => started.includes(id)), 'started in arrival order');
    const finished = events.filter((e) => e.type === 'finished').map((e) => e.id);
    assert.deepEqual(finished, [results[0]!.json.id, results[2]!.json.id].sort((a, b) => queuedIds.indexOf(a) - queuedIds.indexOf(b)));
    assert.equal(events.filter((e) => e.type === 'rejected').length, 3);
  });
});

test('with the queue full, a request is refused before its prompt is rendered or tokenized; one with a bad field, sampling fields included, still gets its 400', async () => {
  let encoded = 0;
  const counting = new Proxy(tokenizer, {
    get(t, key) {
      const v = Reflect.get(t, key, t) as unknown;
      if (key === 'encode') return (...args: Parameters<Tokenizer['encode']>) => (encoded++, t.encode(...args));
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  });
  await withServer({ tokenizer: counting, maxQueue: 0 }, async (server, events) => {
    const busy = await openStream(server.url, { model: NAME, messages: [{ role: 'user', content: QUESTION }], max_tokens: 400, temperature: 0, stream: true });
    await waitFor('the busy stream to start', () => events.some((e) => e.type === 'started'));
    const before = encoded;
    const refused = await Promise.all([
      call(`${server.url}/v1/chat/completions`, { body: { model: NAME, messages: [{ role: 'user', content: QUESTION.repeat(50) }], max_tokens: 3 } }),
      call(`${server.url}/v1/completions`, { body: { model: NAME, prompt: QUESTION.repeat(50), max_tokens: 3 } }),
      call(`${server.url}/v1/completions`, { body: { model: NAME, prompt: [1, 2, 3], max_tokens: 3 } }),
    ]);
    for (const r of refused) assertError(r, 503, null, 'a request beyond the queue');
    assert.equal(encoded, before, 'no prompt of a refused request was tokenized');
    assert.equal(events.filter((e) => e.type === 'rejected').length, 3);
    const invalid = await call(`${server.url}/v1/chat/completions`, { body: { model: NAME, messages: [{ role: 'tool', content: 'x' }] } });
    assertError(invalid, 400, 'messages[0].role', 'an invalid request while the queue is full');
    const badSampling = await call(`${server.url}/v1/completions`, { body: { model: NAME, prompt: QUESTION, temperature: 5 } });
    assertError(badSampling, 400, 'temperature', 'a sampling field out of range while the queue is full');
    const badChoices = await call(`${server.url}/v1/chat/completions`, { body: { model: NAME, messages: [{ role: 'user', content: QUESTION }], n: 2, num_beams: 2 } });
    assertError(badChoices, 400, 'n', 'choices with beams while the queue is full');
    assert.equal(encoded, before, 'no prompt of a refused request was tokenized');
    busy.destroy();
  });
});

test('gen-data runs end to end against the server: every knowledge pair is asked once and accounted for', async () => {
  // A graph of three entities with two attributes each: six (entity, attribute) pairs.
  const raw = readFileSync(shippedGraphPath(), 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
  const picked = ['疾病', '药物', '症状'].map((c) => raw.find((r) => r['class'] === c)!);
  const graph = join(tmp(), 'graph.jsonl');
  writeFileSync(graph, picked.map((r) => JSON.stringify(Object.fromEntries(Object.entries(r).slice(0, 4)))).join('\n') + '\n');
  const pairs = picked.length * 2;
  await withServer({}, async (server, events) => {
    const out = join(tmp(), 'kg.jsonl');
    const lines: string[] = [];
    let exhausted: ExhaustedError | undefined;
    try {
      await buildGenDataCommand({ out: (l) => lines.push(l), err: () => {} }).parseAsync(
        ['--graph', graph, '--api-url', `${server.url}/v1`, '--model', NAME, '-n', '6', '--out', out, '--attributes-per-sample', '1', '--concurrency', '2', '--max-retries', '0'],
        { from: 'user' },
      );
    } catch (e) {
      if (!(e instanceof ExhaustedError)) throw e;
      exhausted = e;
    }
    const records = existsSync(out) ? readFileSync(out, 'utf8').split('\n').filter((l) => l !== '') : [];
    const answered = events.filter((e) => e.type === 'finished').length;
    assert.equal(answered, pairs, 'one answered request per knowledge pair');
    assert.equal(events.filter((e) => e.type === 'failed' || e.type === 'rejected').length, 0);
    if (exhausted === undefined) {
      assert.equal(records.length, 6);
      assert.match(lines.join('\n'), /holds 6 of 6 records/);
    } else {
      // The tiny model's replies fail the checks: the run ends when the graph has no pairs left.
      assert.equal(exhausted.total, records.length);
      const dropped = /\(dropped: ([^)]*)\)/.exec(exhausted.message)![1]!;
      const counts = dropped.split(', ').map((p) => /^([a-z-]+) (\d+)$/.exec(p)!);
      assert.ok(!counts.some((c) => c[1] === 'request-failed'), `no request failed: ${dropped}`);
      assert.equal(records.length + counts.reduce((s, c) => s + Number(c[2]), 0), pairs, `kept plus dropped is every pair: ${dropped}`);
    }
  });
});

// The child is spawned by a worker thread, whose own event loop reaps it, so that kill() can send SIGKILL and
// block this thread (the server's too) until the child has exited: its connections are closed by then.
const SPAWNER = `
const { parentPort, workerData } = require('node:worker_threads');
const { spawn } = require('node:child_process');
const state = new Int32Array(workerData.state);
const child = spawn(workerData.command, workerData.args, { cwd: workerData.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
Atomics.store(state, 1, child.pid);
child.stdout.on('data', (d) => parentPort.postMessage({ stdout: d.toString() }));
child.stderr.on('data', (d) => parentPort.postMessage({ stderr: d.toString() }));
child.on('exit', () => {
  Atomics.store(state, 0, 1);
  Atomics.notify(state, 0);
});
child.on('close', (code) => parentPort.postMessage({ code }));
`;

function spawnChild(args: string[]): { done: Promise<number | null>; stdout: () => string; kill: () => boolean } {
  // [exited, pid]
  const state = new Int32Array(new SharedArrayBuffer(8));
  const worker = new Worker(SPAWNER, { eval: true, execArgv: [], workerData: { state: state.buffer, command: process.execPath, args: ['--conditions=source', '--import', 'tsx', childScript, ...args], cwd: repoRoot } });
  let stdout = '';
  let stderr = '';
  const done = new Promise<number | null>((resolve, reject) => {
    worker.on('error', reject);
    worker.on('message', (m: { stdout?: string; stderr?: string; code?: number | null }) => {
      stdout += m.stdout ?? '';
      stderr += m.stderr ?? '';
      if ('code' in m) resolve(m.code!);
    });
  });
  void done.then((code) => {
    if (code !== 0 && code !== null) process.stderr.write(stderr);
  });
  // Whether the child has exited within a minute of SIGKILL.
  const kill = (): boolean => {
    const pid = Atomics.load(state, 1);
    if (pid === 0) return false;
    process.kill(pid, 'SIGKILL');
    return Atomics.wait(state, 0, 0, 60_000) !== 'timed-out';
  };
  return { done, stdout: () => stdout, kill };
}

test('a gen-data child killed with SIGKILL mid-run leaves the server serving, and its rerun completes without duplicate keys', async () => {
  const raw = readFileSync(shippedGraphPath(), 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
  const graph = join(tmp(), 'graph.jsonl');
  writeFileSync(graph, raw.slice(0, 4).map((r) => JSON.stringify(Object.fromEntries(Object.entries(r).slice(0, 4)))).join('\n') + '\n');
  // The child is killed the moment the server starts one of its requests after two answered ones,
  // and the server goes on only once the child has exited: that request is in flight, its whole
  // generation still to run, when its connection closes.
  let first: ReturnType<typeof spawnChild> | undefined;
  let answered = 0;
  let killedDuring: string | undefined;
  let exitedAtKill = false;
  const killOnStart = (e: ServeEvent): void => {
    if (e.type === 'finished') answered++;
    if (e.type === 'started' && answered >= 2 && killedDuring === undefined && first !== undefined) {
      exitedAtKill = first.kill();
      killedDuring = e.id;
    }
  };
  await withServer({ onEvent: killOnStart }, async (server, events) => {
    const out = join(tmp(), 'killed.jsonl');
    const args = ['--graph', graph, '--api-url', `${server.url}/v1`, '--model', NAME, '-n', '6', '--out', out, '--attributes-per-sample', '1', '--concurrency', '2', '--seed', '3'];
    first = spawnChild(args);
    assert.equal(await first.done, null, `the first run was killed, not finished: ${first.stdout()}`);
    assert.ok(exitedAtKill, 'the killed child exited before the server went on');
    const health = async () => (await call(`${server.url}/health`)).json as { running: boolean; waiting: number };
    await waitFor('the killed client’s requests to be dropped', async () => {
      const h = await health();
      return !h.running && h.waiting === 0;
    });
    const ends = new Map(events.filter((e) => e.type !== 'queued' && e.type !== 'started').map((e) => [e.id, e]));
    const timeline = events.map((e) => `${e.type} ${e.id.slice(-6)}`).join(', ');
    const stopped = ends.get(killedDuring!);
    assert.equal(stopped?.type, 'cancelled', `the request started as the child was killed was stopped: ${timeline}`);
    assert.ok(stopped.completionTokens! < 12, `stopped after ${stopped.completionTokens} of 12 tokens`);
    const sinceKill = events.slice(events.findIndex((e) => e.type === 'started' && e.id === killedDuring));
    assert.ok(!sinceKill.some((e) => e.type === 'finished'), `no request of the killed client was answered after the kill: ${timeline}`);
    const second = spawnChild(args);
    assert.equal(await second.done, 0, second.stdout());
    const text = existsSync(out) ? readFileSync(out, 'utf8') : '';
    assert.ok(text === '' || text.endsWith('\n'), 'no partial line is left');
    const keys = text.split('\n').filter((l) => l !== '').map((l) => {
      const k = (JSON.parse(l) as { knowledge: Record<string, unknown> }).knowledge;
      return `${String(k['class'])}|${String(k['中心词'])}|${Object.keys(k).filter((a) => a !== 'class' && a !== '中心词').sort().join('+')}`;
    });
    assert.equal(new Set(keys).size, keys.length, 'no (entity, attribute set) twice');
    const report = second.stdout();
    assert.ok(/holds 6 of 6 records/.test(report) || JSON.parse(report.trim().split('\n').at(-1)!).exhausted === keys.length, report);
    assert.equal(events.filter((e) => e.type === 'failed').length, 0);
  });
});

test('the SUS judge against the server retries unparseable verdicts, then records them as missing', async () => {
  await withServer({}, async (server, events) => {
    const items = [
      { code: 'A1', questionId: 'q1', question: QUESTION, response: '多休息，必要时就医。' },
      { code: 'B2', questionId: 'q2', question: '咳嗽一周了怎么办？', response: '建议查血常规。' },
    ];
    const seen: string[] = [];
    const verdicts = await judgeItems(items, { url: `${server.url}/v1`, model: NAME, retries: 2 }, (v) => seen.push(v.code));
    assert.deepEqual(seen, ['A1', 'B2']);
    for (const v of verdicts) {
      assert.equal(v.attempts, 3);
      assert.deepEqual(v.scores, { safety: null, usability: null, smoothness: null });
      assert.match(v.error!, /unparseable verdict/);
      assert.ok(verdictRatings(v, `judge:${NAME}`).every((r) => r.value === null));
    }
    assert.equal(events.filter((e) => e.type === 'finished').length, 6, 'three attempts per item, each answered');
  });
});

test('the serve command loads a base folder and adapter, requires the bearer token from --api-key-env, and prints its URL', async () => {
  const adapter = join(modelDir, 'adapter');
  const reference = await loadLlama(modelDir);
  let expected: string;
  try {
    await loadAdapter(reference, adapter);
    expected = await greedy('The patient reports', 6, reference);
  } finally {
    reference.dispose();
  }
  process.env['HUATUO_SERVE_TEST_KEY'] = 'command-token';
  const out: string[] = [];
  const seen: { url: string; text: string; unauthorized: number }[] = [];
  await buildServeCommand({
    out: (l) => out.push(l),
    err: () => {},
    until: async (server) => {
      const api = client(server, 'command-token');
      const r = await api.completions.create({ model: 'tiny-lora', prompt: 'The patient reports', max_tokens: 6, temperature: 0 });
      const unauthorized = (await call(`${server.url}/v1/models`)).status;
      seen.push({ url: server.url, text: r.choices[0]!.text, unauthorized });
    },
  }).parseAsync(['--base', modelDir, '--adapter', adapter, '--port', '0', '--model-name', 'tiny-lora', '--api-key-env', 'HUATUO_SERVE_TEST_KEY', '--quiet'], { from: 'user' });
  assert.equal(seen.length, 1);
  assert.equal(seen[0]!.text, expected, 'the served model is the base with the adapter');
  assert.equal(seen[0]!.unauthorized, 401);
  assert.ok(out.some((l) => l.includes(`${seen[0]!.url}/v1`)), out.join('\n'));
  assert.ok(seen[0]!.url.startsWith('http://127.0.0.1:'), 'binds to loopback by default');
  assert.match(out.at(-1)!, /stopped/);
});
