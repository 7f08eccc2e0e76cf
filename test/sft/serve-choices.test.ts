// Several choices per request (OpenAI's n) from the OpenAI-compatible server, as vLLM returns them, on the
// tiny vocab32k fixture: the n sequences decode as one batch of the prompt repeated, choice i sampling as a
// request of its own seeded with seed + i (vLLM's ParentRequest), greedy choices equal, streamed chunks
// carrying each choice's index, usage counting the prompt once, and a stop string ending one choice alone
// (its finish chunk streamed as it ends); best_of > n returning the n most likely of best_of sequences.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { initWebGPU } from '@huatuo/tensor';
import { generate, llamaTokenizerDir, loadLlama, loadTokenizer, type LlamaModel, type Tokenizer } from '@huatuo/llama';
import { MED_TEMPLATE, startServer, type RunningServer, type ServeOptions } from '@huatuo/sft';

const fixture = fileURLToPath(new URL('../fixtures/llama/vocab32k', import.meta.url));
const NAME = 'tiny-huatuo';
const QUESTION = '我最近经常头痛，还伴有恶心，应该怎么办？';
const PROMPT = '问题：感冒了怎么办？\n回答：';

let model: LlamaModel;
let tokenizer: Tokenizer;

before(async () => {
  await initWebGPU();
  const dir = mkdtempSync(join(tmpdir(), 'huatuo-choices-'));
  cpSync(fixture, dir, { recursive: true });
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  config['max_position_embeddings'] = 2048;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  cpSync(join(llamaTokenizerDir(), 'tokenizer.model'), join(dir, 'tokenizer.model'));
  model = await loadLlama(dir);
  tokenizer = await loadTokenizer(llamaTokenizerDir());
});

after(() => model.dispose());

async function withServer(options: Partial<ServeOptions>, fn: (server: RunningServer, api: OpenAI) => Promise<void>): Promise<void> {
  const server = await startServer({ model, tokenizer, template: MED_TEMPLATE, modelName: NAME, defaultGeneration: { maxTokens: 8 }, ...options });
  try {
    await fn(server, new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 }));
  } finally {
    await server.close();
  }
}

// Parsed JSON of any shape: the tests read OpenAI fields off it.
async function post(server: RunningServer, path: string, body: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${server.url}/v1/${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

/** The JSON events of a streamed reply, [DONE] checked last and left out. */
async function events(server: RunningServer, path: string, body: unknown): Promise<any[]> {
  const res = await fetch(`${server.url}/v1/${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body as object, stream: true }) });
  assert.equal(res.status, 200);
  const data = (await res.text()).split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice('data: '.length));
  assert.equal(data.at(-1), '[DONE]');
  return data.slice(0, -1).map((d) => JSON.parse(d));
}

test('n = 3 sampled with a seed: three choices, each what generate makes of the prompt alone with seed + i, with its own penalties; the same again for the same seed', async () => {
  await withServer({}, async (server) => {
    const bias = { '29871': 3, '30330': -5 };
    const body = { model: NAME, prompt: PROMPT, n: 3, seed: 7, max_tokens: 10, temperature: 1, frequency_penalty: 1.5, presence_penalty: 0.5, logit_bias: bias, logprobs: 2 };
    const first = await post(server, 'completions', body);
    assert.equal(first.status, 200, JSON.stringify(first.json));
    const choices = first.json.choices as any[];
    assert.deepEqual(choices.map((c) => c.index), [0, 1, 2]);
    const ids = tokenizer.encode(PROMPT);
    let completionTokens = 0;
    for (const [i, c] of choices.entries()) {
      const [alone] = await generate(model, tokenizer, [ids], {
        maxNewTokens: 10,
        doSample: true,
        temperature: 1,
        topK: 0,
        topP: 1,
        frequencyPenalty: 1.5,
        presencePenalty: 0.5,
        logitBias: new Map([[29871, 3], [30330, -5]]),
        seed: 7 + i,
        logprobs: 2,
      });
      assert.equal(c.text, alone!.text, `choice ${i}`);
      assert.equal(c.finish_reason, alone!.finishReason === 'length' ? 'length' : 'stop');
      assert.equal(c.logprobs.tokens.length, alone!.tokens.length);
      c.logprobs.token_logprobs.forEach((lp: number, t: number) => assert.ok(Math.abs(lp - alone!.logprobs![t]!.logprob) < 1e-5, `choice ${i} token ${t}`));
      completionTokens += alone!.tokens.length;
    }
    assert.ok(new Set(choices.map((c) => c.text)).size > 1, 'sampled choices differ');
    assert.deepEqual(first.json.usage, { prompt_tokens: ids.length, completion_tokens: completionTokens, total_tokens: ids.length + completionTokens, prompt_tokens_details: null });
    const again = await post(server, 'completions', body);
    assert.deepEqual(again.json.choices, first.json.choices);
  });
});

test('greedy n = 2 (temperature 0) gives two choices equal to n = 1\'s; best_of other than n, n above --max-choices and n with beams are refused', async () => {
  await withServer({ maxChoices: 2 }, async (server, api) => {
    const body = { model: NAME, messages: [{ role: 'user' as const, content: QUESTION }], temperature: 0, max_tokens: 6 };
    const one = await api.chat.completions.create(body);
    const two = await api.chat.completions.create({ ...body, n: 2 });
    assert.equal(two.choices.length, 2);
    assert.deepEqual(two.choices.map((c) => c.index), [0, 1]);
    for (const c of two.choices) assert.deepEqual({ ...c, index: 0 }, one.choices[0]);
    assert.equal(two.usage!.prompt_tokens, one.usage!.prompt_tokens);
    assert.equal(two.usage!.completion_tokens, 2 * one.usage!.completion_tokens);
    const over = await post(server, 'chat/completions', { ...body, n: 3 });
    assert.equal(over.status, 400);
    assert.equal(over.json.error.param, null);
    assert.match(over.json.error.message, /^n: .*--max-choices/);
    for (const refused of [{ n: 2, best_of: 1 }, { n: 1, best_of: 2, temperature: 0 }, { n: 1, best_of: 3 }]) {
      const bestOf = await post(server, 'completions', { model: NAME, prompt: PROMPT, ...refused });
      assert.equal(bestOf.status, 400, JSON.stringify(refused));
      assert.deepEqual([bestOf.json.error.param, bestOf.json.error.message.split(':')[0]], [null, 'best_of']);
    }
    const chatBestOf = await post(server, 'chat/completions', { ...body, temperature: 1, best_of: 2 });
    assert.equal(chatBestOf.status, 400);
    assert.deepEqual([chatBestOf.json.error.param, chatBestOf.json.error.message.split(':')[0]], [null, 'best_of']);
    assert.equal((await post(server, 'completions', { model: NAME, prompt: PROMPT, n: 2, best_of: 2, max_tokens: 2 })).status, 200);
    const beams = await post(server, 'chat/completions', { ...body, n: 2, num_beams: 2 });
    assert.equal(beams.status, 400);
    assert.deepEqual([beams.json.error.param, beams.json.error.message.split(':')[0]], [null, 'n']);
  });
});

test('best_of 4 with n = 2: the two of the four sequences (seed + i) of the highest cumulative log-probability under the distributions sampled from, most likely first; streamed as one event holding the whole reply, then [DONE], as vLLM streams it', async () => {
  await withServer({}, async (server) => {
    const body = { model: NAME, prompt: PROMPT, n: 2, best_of: 4, seed: 9, max_tokens: 8, temperature: 0.8, top_p: 0.95, presence_penalty: 0.4, logprobs: 1 };
    const ids = tokenizer.encode(PROMPT);
    const options = { maxNewTokens: 8, doSample: true, temperature: 0.8, topK: 0, topP: 0.95, presencePenalty: 0.4, cumulativeLogprob: true, logprobs: 1 };
    const all = await Promise.all([0, 1, 2, 3].map(async (i) => (await generate(model, tokenizer, [ids], { ...options, seed: 9 + i }))[0]!));
    const order = all.map((g, i) => ({ g, i })).sort((a, b) => b.g.cumulativeLogprob! - a.g.cumulativeLogprob!);
    assert.ok(new Set(all.map((g) => g.cumulativeLogprob)).size === 4, 'four different sequences');
    const best = order.slice(0, 2).map(({ g }) => g);
    // Not the first two sequences: ranking picks others.
    assert.notDeepEqual(order.slice(0, 2).map(({ i }) => i), [0, 1], 'the seeds should rank in another order for this check to tell');
    for (const stream of [false, true]) {
      const res = await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, stream }) });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', stream ? /text\/event-stream/ : /application\/json/);
      let json: any;
      if (stream) {
        const events = (await res.text()).split('\n\n').filter((e) => e !== '');
        assert.equal(events.length, 2, 'one event with the whole reply, then [DONE]');
        assert.ok(events[0]!.startsWith('data: ') && events[1] === 'data: [DONE]');
        json = JSON.parse(events[0]!.slice('data: '.length));
        assert.equal(json.object, 'text_completion');
      } else json = (await res.json()) as any;
      assert.deepEqual(json.choices.map((c: any) => c.index), [0, 1]);
      assert.deepEqual(json.choices.map((c: any) => c.text), best.map((g) => g.text));
      assert.deepEqual(json.choices.map((c: any) => c.logprobs.tokens.length), best.map((g) => g.tokens.length));
      assert.equal(json.usage.completion_tokens, best[0]!.tokens.length + best[1]!.tokens.length);
    }
  });
});

test('streamed n = 3 chunks, reassembled by index, are the choices not streamed, with one role chunk and one finish each, and usage last', async () => {
  await withServer({}, async (server, api) => {
    const chat = { model: NAME, messages: [{ role: 'user' as const, content: QUESTION }], n: 3, seed: 11, max_tokens: 8 };
    const whole = await api.chat.completions.create(chat);
    const chunks = await events(server, 'chat/completions', { ...chat, stream_options: { include_usage: true } });
    for (const [i, c] of whole.choices.entries()) {
      const mine = chunks.filter((e) => e.choices.length > 0 && e.choices[0].index === i).map((e) => e.choices[0]);
      assert.ok(chunks.every((e) => e.choices.length <= 1));
      assert.deepEqual(mine[0].delta, { role: 'assistant', content: '' });
      assert.equal(mine.map((d) => d.delta.content ?? '').join(''), c.message.content, `choice ${i}`);
      assert.deepEqual(mine.filter((d) => d.finish_reason !== null).map((d) => d.finish_reason), [c.finish_reason]);
    }
    assert.deepEqual(chunks.at(-1).choices, []);
    const { prompt_tokens_details, ...counts } = whole.usage as typeof whole.usage & { prompt_tokens_details: unknown };
    assert.equal(prompt_tokens_details, null);
    assert.deepEqual(chunks.at(-1).usage, counts, "vLLM's usage chunk leaves the null prompt_tokens_details out");

    // Completions streamed with logprobs, through the openai SDK.
    const completion = { model: NAME, prompt: PROMPT, n: 2, seed: 3, max_tokens: 6, logprobs: 1 };
    const plain = await api.completions.create(completion);
    const texts = ['', ''];
    const tokens: string[][] = [[], []];
    for await (const e of await api.completions.create({ ...completion, stream: true })) {
      for (const c of e.choices) {
        texts[c.index] += c.text;
        tokens[c.index]!.push(...(c.logprobs?.tokens ?? []));
      }
    }
    assert.deepEqual(texts, plain.choices.map((c) => c.text));
    assert.deepEqual(tokens, plain.choices.map((c) => c.logprobs!.tokens));
  });
});

test('a stop string that one choice reaches ends that choice alone; the others decode on as they did without it', async () => {
  await withServer({}, async (server) => {
    const body = { model: NAME, prompt: PROMPT, n: 3, seed: 5, max_tokens: 12 };
    const free = (await post(server, 'completions', body)).json.choices as any[];
    assert.ok(free.every((c) => c.finish_reason === 'length'));
    // A short piece of choice 0's text, past its start, that the other two never write.
    const text: string = free[0].text;
    let stop: string | null = null;
    for (let len = 1; stop === null && len <= 4; len++) {
      for (let at = 1; at + len <= text.length; at++) {
        const s = text.slice(at, at + len);
        if (s.trim() !== '' && !free[1].text.includes(s) && !free[2].text.includes(s) && text.indexOf(s) === at) {
          stop = s;
          break;
        }
      }
    }
    assert.ok(stop !== null, `no stop string found in ${JSON.stringify(text)}`);
    const stopped = await post(server, 'completions', { ...body, stop: [stop] });
    const choices = stopped.json.choices as any[];
    assert.equal(choices[0].text, text.slice(0, text.indexOf(stop)));
    assert.equal(choices[0].finish_reason, 'stop');
    for (const i of [1, 2]) {
      assert.equal(choices[i].text, free[i].text);
      assert.equal(choices[i].finish_reason, 'length');
    }
    assert.ok(stopped.json.usage.completion_tokens < 36);

    // Streamed, choice 0's finish chunk comes as it stops, before the others' later text (as OpenAI and vLLM send it).
    const chunks = (await events(server, 'completions', { ...body, stop: [stop] })).map((e) => e.choices[0]);
    const end = chunks.findIndex((c) => c.index === 0 && c.finish_reason !== null);
    assert.equal(chunks[end].finish_reason, 'stop');
    assert.ok(chunks.slice(end + 1).some((c) => c.index !== 0 && c.text !== ''), 'the other choices should stream text after choice 0 finished');
    for (const [i, c] of choices.entries()) {
      const mine = chunks.filter((d) => d.index === i);
      assert.equal(mine.map((d) => d.text).join(''), c.text, `choice ${i}`);
      assert.deepEqual(mine.filter((d) => d.finish_reason !== null).map((d) => d.finish_reason), [c.finish_reason], `choice ${i}`);
    }
  });
});
