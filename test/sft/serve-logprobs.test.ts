// Log probabilities from the OpenAI-compatible server, as vLLM returns them, on the tiny vocab32k fixture:
// chat's logprobs/top_logprobs and legacy completions' logprobs with echo (the loglikelihoods evaluation
// harnesses read), checked against the log-softmax of the model's own forward logits in float64; and
// logit_bias, which moves the picks but not those log probabilities (vLLM's raw_logprobs).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { initWebGPU, noGrad, tensor, toArray } from '@huatuo/tensor';
import { generate, llamaTokenizerDir, loadAdapter, loadLlama, loadTokenizer, promptLogprobs, type LlamaModel, type Tokenizer } from '@huatuo/llama';
import { MED_TEMPLATE, generatePrompt, startServer, type RunningServer } from '@huatuo/sft';

const fixture = fileURLToPath(new URL('../fixtures/llama/vocab32k', import.meta.url));
const NAME = 'tiny-huatuo';
const QUESTION = '我最近经常头痛，还伴有恶心，应该怎么办？';
// f32 logits through the KV cache against one forward pass over the whole sequence.
const TOL = 2e-3;

let model: LlamaModel;
let tokenizer: Tokenizer;
let modelDir: string;

before(async () => {
  await initWebGPU();
  const dir = mkdtempSync(join(tmpdir(), 'huatuo-logprobs-'));
  cpSync(fixture, dir, { recursive: true });
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  config['max_position_embeddings'] = 2048;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  cpSync(join(llamaTokenizerDir(), 'tokenizer.model'), join(dir, 'tokenizer.model'));
  modelDir = dir;
  model = await loadLlama(dir);
  tokenizer = await loadTokenizer(llamaTokenizerDir());
});

after(() => model.dispose());

async function withServer(fn: (server: RunningServer, api: OpenAI) => Promise<void>, served: LlamaModel = model): Promise<void> {
  const server = await startServer({ model: served, tokenizer, template: MED_TEMPLATE, modelName: NAME, defaultGeneration: { maxTokens: 8 } });
  try {
    await fn(server, new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 }));
  } finally {
    await server.close();
  }
}

/** Float64 log-softmax of the model's logits at every position of `ids`, from one forward pass: [T][V]. */
async function forwardLogSoftmax(ids: readonly number[]): Promise<Float64Array[]> {
  const V = model.config.vocabSize;
  const logits = noGrad(() => model.forward(tensor(Int32Array.from(ids), [1, ids.length], { dtype: 'i32' })));
  const host = (await toArray(logits)) as Float32Array;
  logits.dispose();
  return ids.map((_, t) => {
    const row = host.subarray(t * V, (t + 1) * V);
    let m = -Infinity;
    for (const v of row) m = Math.max(m, v);
    let s = 0;
    for (const v of row) s += Math.exp(v - m);
    const lse = m + Math.log(s);
    return Float64Array.from(row, (v) => v - lse);
  });
}

/** Token ids of a row's k most likely tokens, most likely first (ties: lower id). */
function topIds(row: Float64Array, k: number): number[] {
  return Array.from(row.keys()).sort((a, b) => row[b]! - row[a]! || a - b).slice(0, k);
}

/** vLLM's text of a token: decoded alone, with SentencePiece's leading space kept. */
function tokenText(id: number): string {
  const piece = tokenizer.idToPiece(id);
  const text = tokenizer.decode([id]);
  return piece.startsWith('▁') && !text.startsWith(' ') ? ` ${text}` : text;
}

test('chat logprobs with top_logprobs give each generated token the log-softmax of the model\'s logits and its step\'s most likely tokens, as vLLM shapes them', async () => {
  await withServer(async (_server, api) => {
    const promptText = generatePrompt(MED_TEMPLATE, QUESTION);
    const prompt = tokenizer.encode(promptText);
    const [g] = await generate(model, tokenizer, [prompt], { maxNewTokens: 6 });
    const r = await api.chat.completions.create({ model: NAME, messages: [{ role: 'user', content: QUESTION }], max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 3 });
    const content = r.choices[0]!.logprobs!.content!;
    assert.equal(content.length, r.usage!.completion_tokens, 'one entry per generated token');
    assert.deepEqual(content.map((e) => e.token), g!.tokens.map(tokenText));
    const lsm = await forwardLogSoftmax([...prompt, ...g!.tokens]);
    content.forEach((e, i) => {
      const row = lsm[prompt.length - 1 + i]!;
      const id = g!.tokens[i]!;
      assert.ok(Math.abs(e.logprob - row[id]!) <= TOL, `token ${i}: logprob ${e.logprob}, forward pass ${row[id]}`);
      assert.deepEqual(e.bytes, [...Buffer.from(e.token, 'utf8')]);
      assert.equal(e.top_logprobs.length, 3);
      // Greedy: the token is the most likely, so vLLM's list (the token's own entry first) is the top 3.
      assert.deepEqual(e.top_logprobs.map((t) => t.token), topIds(row, 3).map(tokenText), `token ${i}`);
      e.top_logprobs.forEach((t, j) => assert.ok(Math.abs(t.logprob - row[topIds(row, 3)[j]!]!) <= TOL, `token ${i} top ${j}: ${t.logprob}`));
    });
    // logprobs without top_logprobs: each token's own, an empty list beside it.
    const bare = await api.chat.completions.create({ model: NAME, messages: [{ role: 'user', content: QUESTION }], max_tokens: 6, temperature: 0, logprobs: true });
    assert.deepEqual(bare.choices[0]!.logprobs!.content!.map((e) => [e.token, e.top_logprobs.length]), content.map((e) => [e.token, 0]));
    const none = await api.chat.completions.create({ model: NAME, messages: [{ role: 'user', content: QUESTION }], max_tokens: 2, temperature: 0 });
    assert.equal(none.choices[0]!.logprobs, null);
  });
});

test('streamed chat chunks carry the logprobs of their tokens, together those of the reply not streamed', async () => {
  await withServer(async (_server, api) => {
    const body = { model: NAME, messages: [{ role: 'user' as const, content: QUESTION }], max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 2 };
    const whole = await api.chat.completions.create(body);
    const streamed: { token: string; logprob: number }[] = [];
    for await (const c of await api.chat.completions.create({ ...body, stream: true })) {
      for (const e of c.choices[0]?.logprobs?.content ?? []) streamed.push({ token: e.token, logprob: e.logprob });
    }
    const want = whole.choices[0]!.logprobs!.content!;
    assert.deepEqual(streamed.map((e) => e.token), want.map((e) => e.token));
    streamed.forEach((e, i) => assert.ok(Math.abs(e.logprob - want[i]!.logprob) <= 1e-6, `token ${i}`));
  });
});

test('completions with echo and logprobs give the prompt\'s loglikelihood (the first token null) as a forward pass does, as lm-evaluation-harness reads it', async () => {
  await withServer(async (_server, api) => {
    const context = tokenizer.encode('The patient reports a headache and');
    const continuation = tokenizer.encode(' nausea since yesterday', { addBos: false });
    const ids = [...context, ...continuation];
    // lm-evaluation-harness's local-completions: token prompts, echo, logprobs 1, max_tokens 1, temperature 0.
    const r = await api.completions.create({ model: NAME, prompt: [ids], echo: true, logprobs: 1, max_tokens: 1, temperature: 0 });
    const lp = r.choices[0]!.logprobs!;
    assert.equal(lp.tokens!.length, ids.length + 1);
    assert.equal(lp.token_logprobs![0], null);
    assert.equal(lp.top_logprobs![0], null);
    assert.deepEqual(lp.tokens!.slice(0, ids.length), ids.map(tokenText));
    const lsm = await forwardLogSoftmax(ids);
    let want = 0;
    for (let t = context.length; t < ids.length; t++) want += lsm[t - 1]![ids[t]!]!;
    const got = (lp.token_logprobs!.slice(context.length, -1) as number[]).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(got - want) <= TOL * continuation.length, `loglikelihood ${got}, forward pass ${want}`);
    for (let t = 1; t < ids.length; t++) {
      const top = lp.top_logprobs![t]!;
      assert.ok(Math.abs(lp.token_logprobs![t]! - lsm[t - 1]![ids[t]!]!) <= TOL, `prompt token ${t}`);
      // The token's own entry and the most likely one (OpenAI: up to logprobs + 1 entries).
      assert.ok(Object.keys(top).length >= 1 && Object.keys(top).length <= 2);
      assert.equal(top[tokenText(ids[t]!)], lp.token_logprobs![t]);
      const best = topIds(lsm[t - 1]!, 1)[0]!;
      assert.ok(Math.abs(top[tokenText(best)]! - lsm[t - 1]![best]!) <= TOL, `prompt token ${t}: most likely ${best}`);
    }
    // text_offset: the characters of the tokens before each.
    let offset = 0;
    lp.tokens!.forEach((tok, i) => {
      assert.equal(lp.text_offset![i], offset);
      offset += [...tok].length;
    });
    // Streamed, the echoed prompt's chunk carries its logprobs and the generated token's chunk the rest.
    const streamedTokens: string[] = [];
    const streamedLogprobs: (number | null)[] = [];
    for await (const c of await api.completions.create({ model: NAME, prompt: [ids], echo: true, logprobs: 1, max_tokens: 1, temperature: 0, stream: true })) {
      streamedTokens.push(...(c.choices[0]?.logprobs?.tokens ?? []));
      streamedLogprobs.push(...(c.choices[0]?.logprobs?.token_logprobs ?? []));
    }
    assert.deepEqual(streamedTokens, lp.tokens);
    streamedLogprobs.forEach((v, i) => assert.ok(v === lp.token_logprobs![i] || Math.abs(v! - lp.token_logprobs![i]!) <= 1e-6, `streamed token ${i}`));
    // max_tokens 0 with echo (as vLLM allows): the prompt scored, nothing generated.
    const only = await api.completions.create({ model: NAME, prompt: [ids], echo: true, logprobs: 1, max_tokens: 0 });
    assert.equal(only.choices[0]!.logprobs!.tokens!.length, ids.length);
    assert.equal(only.usage!.completion_tokens, 0);
    only.choices[0]!.logprobs!.token_logprobs!.forEach((v, i) => assert.ok(v === lp.token_logprobs![i] || Math.abs(v! - lp.token_logprobs![i]!) <= 1e-6, `token ${i}`));
  });
});

/** `fn`'s result and the forward passes `m` ran over `length` new positions meanwhile (every forward runs hiddenStates). */
async function forwardsOver<R>(m: LlamaModel, length: number, fn: () => Promise<R>): Promise<{ result: R; forwards: number }> {
  let forwards = 0;
  const hiddenStates = m.hiddenStates;
  m.hiddenStates = (ids, options) => {
    if (ids.shape[1] === length) forwards++;
    return hiddenStates.call(m, ids, options);
  };
  try {
    const result = await fn();
    return { result, forwards };
  } finally {
    Reflect.deleteProperty(m, 'hiddenStates');
  }
}

// The prompt step attends through the KV cache with a padding mask, the prompt scored alone without either:
// different kernels' orders of summation may move a log-probability by an f32 ulp or two (about 1e-6 near
// -10); on lavapipe they agree to the bit.
const SAME = 4e-6;

test('an echoed prompt is scored by the prompt step that generation runs, one forward pass over it, with the values of the prompt scored alone', async () => {
  const adapted = await loadLlama(modelDir);
  try {
    await loadAdapter(adapted, join(fixture, 'adapter'));
    const ids = tokenizer.encode('The patient reports a headache and nausea since yesterday');
    const T = ids.length;
    const baseRows = await promptLogprobs(model, ids, 2);
    for (const [label, served] of [['base', model], ['adapter', adapted]] as const) {
      // The two-pass server's values: the prompt scored alone, besides generation.
      const alone = await promptLogprobs(served, ids, 2);
      if (served === adapted) assert.ok(alone.some((row, t) => row !== null && Math.abs(row.logprob - baseRows[t]!.logprob) > 1e-3), 'the adapter changes the prompt\'s scores');
      const checkEcho = (lp: { tokens?: string[]; token_logprobs?: (number | null)[]; top_logprobs?: (Record<string, number> | null)[] }, what: string) => {
        assert.deepEqual(lp.tokens!.slice(0, T), ids.map(tokenText), what);
        assert.equal(lp.token_logprobs![0], null, what);
        assert.equal(lp.top_logprobs![0], null, what);
        for (let t = 1; t < T; t++) {
          const row = alone[t]!;
          assert.ok(Math.abs(lp.token_logprobs![t]! - row.logprob) <= SAME, `${label} ${what}: prompt token ${t}: ${lp.token_logprobs![t]}, scored alone ${row.logprob}`);
          // The token's own entry, then the 2 most likely not already listed.
          const want = [{ id: row.id, logprob: row.logprob }, ...row.top.filter((e) => e.id !== row.id)].slice(0, 3);
          const got = lp.top_logprobs![t]!;
          assert.deepEqual(Object.keys(got), want.map((e) => tokenText(e.id)), `${label} ${what}: prompt token ${t}`);
          want.forEach((e) => assert.ok(Math.abs(got[tokenText(e.id)]! - e.logprob) <= SAME, `${label} ${what}: prompt token ${t}, top ${e.id}`));
        }
      };
      await withServer(async (_server, api) => {
        const body = { model: NAME, prompt: [ids], echo: true, logprobs: 2 };
        const plain = await api.completions.create({ model: NAME, prompt: [ids], logprobs: 2, max_tokens: 3, temperature: 0 });
        const greedy = await forwardsOver(served, T, () => api.completions.create({ ...body, max_tokens: 3, temperature: 0 }));
        assert.equal(greedy.forwards, 1, `${label}: max_tokens 3 runs one forward pass over the prompt`);
        const lp = greedy.result.choices[0]!.logprobs!;
        checkEcho(lp, 'max_tokens 3');
        // The generated tokens and their log-probabilities are those of the same request without echo.
        assert.deepEqual(lp.tokens!.slice(T), plain.choices[0]!.logprobs!.tokens);
        assert.deepEqual(lp.token_logprobs!.slice(T), plain.choices[0]!.logprobs!.token_logprobs);
        assert.equal(greedy.result.choices[0]!.text, tokenizer.decode(ids, { skipSpecialTokens: true }) + plain.choices[0]!.text);
        const only = await forwardsOver(served, T, () => api.completions.create({ ...body, max_tokens: 0 }));
        assert.equal(only.forwards, 1, `${label}: max_tokens 0 runs one forward pass over the prompt`);
        checkEcho(only.result.choices[0]!.logprobs!, 'max_tokens 0');
        // n sampled choices decode as one batch: its prompt step scores the prompt once for all of them.
        const sampled = await forwardsOver(served, T, () => api.completions.create({ ...body, max_tokens: 2, n: 2, temperature: 0.9, seed: 11 }));
        assert.equal(sampled.forwards, 1, `${label}: n 2 runs one forward pass over the prompt`);
        assert.equal(sampled.result.choices.length, 2);
        sampled.result.choices.forEach((c) => checkEcho(c.logprobs!, `n 2, choice ${c.index}`));
        const streamed = await forwardsOver(served, T, async () => {
          const choices = [0, 1].map(() => ({ tokens: [] as string[], token_logprobs: [] as (number | null)[], top_logprobs: [] as (Record<string, number> | null)[] }));
          for await (const c of await api.completions.create({ ...body, max_tokens: 2, n: 2, temperature: 0.9, seed: 11, stream: true })) {
            const choice = c.choices[0]!;
            const clp = choice.logprobs;
            if (!clp) continue;
            choices[choice.index]!.tokens.push(...clp.tokens!);
            choices[choice.index]!.token_logprobs.push(...clp.token_logprobs!);
            choices[choice.index]!.top_logprobs.push(...clp.top_logprobs!);
          }
          return choices;
        });
        assert.equal(streamed.forwards, 1, `${label}: a stream runs one forward pass over the prompt`);
        streamed.result.forEach((c, i) => {
          checkEcho(c, `streamed choice ${i}`);
          assert.deepEqual(c.tokens, sampled.result.choices[i]!.logprobs!.tokens, `streamed choice ${i}: the choice not streamed`);
        });
      }, served);
    }
  } finally {
    adapted.dispose();
  }
});

type PromptLogprobEntry = { logprob: number; rank: number; decoded_token: string };
type CompletionWithPromptLogprobs = {
  choices: { index: number; text: string; logprobs: { tokens: string[]; token_logprobs: (number | null)[]; top_logprobs: (Record<string, number> | null)[] } | null; prompt_logprobs: (Record<string, PromptLogprobEntry> | null)[] | null }[];
  usage: { completion_tokens: number };
};

/** POSTs a completion request (with fields the openai client does not type) and returns the status and the JSON. */
async function postCompletion(server: RunningServer, body: Record<string, unknown>): Promise<{ status: number; json: CompletionWithPromptLogprobs & { error: { param: string | null; message: string } } }> {
  const res = await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: NAME, ...body }) });
  return { status: res.status, json: (await res.json()) as CompletionWithPromptLogprobs & { error: { param: string | null; message: string } } };
}

/**
 * Checks a choice's prompt_logprobs against the float64 log-softmax `lsm` of one forward pass over `ids`: null
 * first, then each token's own entry with vLLM's rank and the k most likely ranked 1 to k, their decoded_token.
 */
function checkPromptLogprobs(field: (Record<string, PromptLogprobEntry> | null)[] | null, ids: readonly number[], lsm: readonly Float64Array[], k: number, what: string): void {
  const T = ids.length;
  assert.ok(field !== null, `${what}: prompt_logprobs null`);
  const list: (Record<string, PromptLogprobEntry> | null)[] = field;
  assert.equal(list.length, T, what);
  assert.equal(list[0], null, what);
  for (let t = 1; t < T; t++) {
    const row = lsm[t - 1]!;
    const own = ids[t]!;
    const top = topIds(row, k);
    const map: Record<string, PromptLogprobEntry> = list[t]!;
    assert.deepEqual(Object.keys(map).map(Number).sort((a, b) => a - b), [...new Set([own, ...top])].sort((a, b) => a - b), `${what}: token ${t}`);
    // vLLM's rank: the tokens at least as likely as the prompt token, itself included.
    const rank = row.filter((v) => v >= row[own]!).length;
    const ownRank = top.includes(own) ? top.indexOf(own) + 1 : rank;
    assert.equal(map[own]!.rank, ownRank, `${what}: token ${t}'s rank`);
    if (!top.includes(own)) assert.ok(rank > k, `${what}: token ${t} outside the top ${k} ranks below them`);
    top.forEach((id, j) => assert.equal(map[id]!.rank, j + 1, `${what}: token ${t}, top ${j}`));
    for (const [id, e] of Object.entries(map)) {
      assert.ok(Math.abs(e.logprob - row[Number(id)]!) <= TOL, `${what}: token ${t}, id ${id}: ${e.logprob}, forward pass ${row[Number(id)]}`);
      assert.equal(e.decoded_token, tokenText(Number(id)), `${what}: token ${t}, id ${id}`);
    }
  }
}

test('prompt_logprobs gives vLLM\'s list: null first, then each prompt token\'s own entry with its rank in the vocabulary and the k most likely ranked 1 to k, from the one prompt step', async () => {
  await withServer(async (server) => {
    const ids = tokenizer.encode('The patient reports a headache and nausea since yesterday');
    const T = ids.length;
    const lsm = await forwardLogSoftmax(ids);
    const check = (field: (Record<string, PromptLogprobEntry> | null)[] | null, k: number, what: string): void => checkPromptLogprobs(field, ids, lsm, k, what);
    const counted = await forwardsOver(model, T, () => postCompletion(server, { prompt: [ids], max_tokens: 2, temperature: 0, prompt_logprobs: 3, n: 2 }));
    assert.equal(counted.result.status, 200, JSON.stringify(counted.result.json));
    assert.equal(counted.forwards, 1, 'one forward pass over the prompt');
    const { choices } = counted.result.json;
    check(choices[0]!.prompt_logprobs, 3, 'n 2, choice 0');
    assert.deepEqual(choices[1]!.prompt_logprobs, choices[0]!.prompt_logprobs, 'every choice carries the prompt\'s');
    assert.equal(choices[0]!.logprobs, null, 'prompt_logprobs alone leaves logprobs out');
    // max_tokens 0 with echo: the prompt scored alone, the same entries.
    const only = await postCompletion(server, { prompt: [ids], max_tokens: 0, echo: true, prompt_logprobs: 3 });
    assert.equal(only.status, 200, JSON.stringify(only.json));
    assert.equal(only.json.usage.completion_tokens, 0);
    check(only.json.choices[0]!.prompt_logprobs, 3, 'max_tokens 0');
    only.json.choices[0]!.prompt_logprobs!.forEach((map, t) =>
      Object.entries(map ?? {}).forEach(([id, e]) => {
        const other = choices[0]!.prompt_logprobs![t]![id]!;
        assert.equal(e.rank, other.rank, `token ${t}, id ${id}`);
        assert.ok(Math.abs(e.logprob - other.logprob) <= SAME, `token ${t}, id ${id}`);
      }),
    );
    // prompt_logprobs 0: the prompt token's own entry alone; with echo and logprobs 1, the echo takes its entries from prompt_logprobs' scoring (as vLLM).
    const bare = await postCompletion(server, { prompt: [ids], max_tokens: 1, temperature: 0, prompt_logprobs: 0, echo: true, logprobs: 1 });
    check(bare.json.choices[0]!.prompt_logprobs, 0, 'prompt_logprobs 0');
    const echoed = bare.json.choices[0]!.logprobs!;
    for (let t = 1; t < T; t++) assert.deepEqual(Object.keys(echoed.top_logprobs![t]!), [tokenText(ids[t]!)], `echoed token ${t}: the own entry prompt_logprobs 0 scored`);
    // Not asked for: null, as vLLM writes the field it leaves unset.
    const none = await postCompletion(server, { prompt: [ids], max_tokens: 1, temperature: 0 });
    assert.equal(none.json.choices[0]!.prompt_logprobs, null);
  });
});

test('echo with logprobs and no prompt_logprobs gives each choice vLLM\'s prompt_logprobs with logprobs\' count (CompletionRequest.to_sampling_params), as the explicit field does', async () => {
  await withServer(async (server) => {
    const ids = tokenizer.encode('The patient reports a headache and nausea since yesterday');
    const lsm = await forwardLogSoftmax(ids);
    const echoed = await postCompletion(server, { prompt: [ids], max_tokens: 2, temperature: 0, echo: true, logprobs: 2, n: 2 });
    assert.equal(echoed.status, 200, JSON.stringify(echoed.json));
    const { choices } = echoed.json;
    checkPromptLogprobs(choices[0]!.prompt_logprobs, ids, lsm, 2, 'echo, logprobs 2');
    assert.deepEqual(choices[1]!.prompt_logprobs, choices[0]!.prompt_logprobs, 'every choice carries the prompt\'s');
    // The same list as prompt_logprobs 2 asked for explicitly with the same echo.
    const explicit = await postCompletion(server, { prompt: [ids], max_tokens: 2, temperature: 0, echo: true, logprobs: 2, prompt_logprobs: 2 });
    assert.deepEqual(choices[0]!.prompt_logprobs, explicit.json.choices[0]!.prompt_logprobs);
    const [a, b] = [choices[0]!.logprobs!, explicit.json.choices[0]!.logprobs!];
    assert.deepEqual(a.tokens, b.tokens);
    a.token_logprobs.forEach((v, t) => assert.ok(v === b.token_logprobs[t] || Math.abs(v! - b.token_logprobs[t]!) <= SAME, `token ${t}: ${v}, ${b.token_logprobs[t]}`));
    // logprobs 0 and max_tokens 0: the prompt token's own entry alone, ranked.
    const only = await postCompletion(server, { prompt: [ids], max_tokens: 0, echo: true, logprobs: 0 });
    assert.equal(only.status, 200, JSON.stringify(only.json));
    checkPromptLogprobs(only.json.choices[0]!.prompt_logprobs, ids, lsm, 0, 'echo, logprobs 0, max_tokens 0');
    // Neither echo with logprobs nor prompt_logprobs: null (vLLM's default).
    for (const body of [{ echo: true }, { logprobs: 2 }]) {
      const none = await postCompletion(server, { prompt: [ids], max_tokens: 1, temperature: 0, ...body });
      assert.equal(none.json.choices[0]!.prompt_logprobs, null, JSON.stringify(body));
    }
  });
});

test('prompt_logprobs that vLLM refuses (negative, -1 or above 20, not an integer, above 0 when streaming, with beams, in a chat) get 400 naming prompt_logprobs; 0 when streaming is accepted', async () => {
  await withServer(async (server) => {
    for (const body of [
      { prompt: 'a', prompt_logprobs: -2 },
      { prompt: 'a', prompt_logprobs: -1 },
      { prompt: 'a', prompt_logprobs: 21 },
      { prompt: 'a', prompt_logprobs: '3' },
      { prompt: 'a', prompt_logprobs: 1.5 },
      { prompt: 'a', prompt_logprobs: 1, stream: true },
      { prompt: 'a', prompt_logprobs: 1, num_beams: 2 },
    ]) {
      const r = await postCompletion(server, body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.deepEqual([r.json.error.param, r.json.error.message.split(':')[0]], [null, 'prompt_logprobs'], r.json.error.message);
    }
    const chat = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: NAME, messages: [{ role: 'user', content: QUESTION }], prompt_logprobs: 1 }) });
    assert.equal(chat.status, 400);
    assert.match(((await chat.json()) as { error: { message: string } }).error.message, /prompt_logprobs: returned by \/v1\/completions/);
    const streamed = await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: NAME, prompt: 'a', max_tokens: 1, prompt_logprobs: 0, stream: true }) });
    assert.equal(streamed.status, 200);
    assert.ok(!(await streamed.text()).includes('prompt_logprobs'));
  });
});

test('completions logprobs without echo cover the generated tokens; streamed chunks carry theirs with text_offset continuing', async () => {
  await withServer(async (_server, api) => {
    const prompt = 'The patient reports';
    const ids = tokenizer.encode(prompt);
    const [g] = await generate(model, tokenizer, [ids], { maxNewTokens: 5 });
    const r = await api.completions.create({ model: NAME, prompt, logprobs: 2, max_tokens: 5, temperature: 0 });
    const lp = r.choices[0]!.logprobs!;
    assert.deepEqual(lp.tokens, g!.tokens.map(tokenText));
    const lsm = await forwardLogSoftmax([...ids, ...g!.tokens]);
    lp.token_logprobs!.forEach((v, i) => assert.ok(Math.abs(v! - lsm[ids.length - 1 + i]![g!.tokens[i]!]!) <= TOL, `token ${i}`));
    assert.ok(lp.top_logprobs!.every((m) => Object.keys(m!).length >= 2 && Object.keys(m!).length <= 3));
    // As vLLM streams: a chunk's offsets start at the characters of the text streamed before it.
    const tokens: string[] = [];
    let streamed = '';
    for await (const c of await api.completions.create({ model: NAME, prompt, logprobs: 2, max_tokens: 5, temperature: 0, stream: true })) {
      const clp = c.choices[0]?.logprobs;
      if (clp) {
        let offset = [...streamed].length;
        clp.tokens!.forEach((tok, i) => {
          assert.equal(clp.text_offset![i], offset, `chunk after ${JSON.stringify(streamed)}, token ${i}`);
          offset += [...tok].length;
        });
        tokens.push(...clp.tokens!);
      }
      streamed += c.choices[0]?.text ?? '';
    }
    assert.deepEqual(tokens, lp.tokens);
  });
});

test('logprobs out of range, top_logprobs without logprobs, logprobs with beams and max_tokens 0 without echo get 400 naming the field', async () => {
  await withServer(async (server) => {
    const post = async (path: string, body: Record<string, unknown>) => {
      const res = await fetch(`${server.url}/v1/${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: NAME, ...body }) });
      return { status: res.status, json: (await res.json()) as { error: { param: string | null; message: string } } };
    };
    const messages = [{ role: 'user', content: QUESTION }];
    for (const [path, body, param] of [
      ['chat/completions', { messages, logprobs: true, top_logprobs: 21 }, 'top_logprobs'],
      ['chat/completions', { messages, top_logprobs: 2 }, 'top_logprobs'],
      ['chat/completions', { messages, logprobs: 'yes' }, 'logprobs'],
      ['chat/completions', { messages, logprobs: true, num_beams: 2 }, 'logprobs'],
      ['completions', { prompt: 'a', logprobs: 21 }, 'logprobs'],
      ['completions', { prompt: 'a', logprobs: -1 }, 'logprobs'],
      ['completions', { prompt: 'a', max_tokens: 0 }, 'max_tokens'],
    ] as const) {
      const r = await post(path, body);
      assert.equal(r.status, 400, `${path} ${JSON.stringify(body)}: ${JSON.stringify(r.json)}`);
      assert.deepEqual([r.json.error.param, r.json.error.message.split(':')[0]], [null, param], r.json.error.message);
    }
  });
});

test('logit_bias moves greedy picks as adding it to the forward pass\'s logits does, in chats and completions; logprobs stay the raw model\'s', async () => {
  await withServer(async (_server, api) => {
    const prompt = 'The patient reports';
    const ids = tokenizer.encode(prompt);
    const [lsm] = (await forwardLogSoftmax(ids)).slice(-1);
    const [first, second] = topIds(lsm!, 2);
    // -100 on the most likely token: the first pick is the runner-up.
    const down = await api.completions.create({ model: NAME, prompt, max_tokens: 1, temperature: 0, logit_bias: { [String(first)]: -100 }, logprobs: 0 });
    assert.deepEqual(down.choices[0]!.logprobs!.tokens, [tokenText(second!)]);
    assert.ok(Math.abs(down.choices[0]!.logprobs!.token_logprobs![0]! - lsm![second!]!) <= TOL, 'the raw log-probability, not the biased one');
    // +100 (and 1000, clamped to 100 as vLLM clamps it) on one token: every pick is that token.
    const forced = 29871 === first ? 278 : 29871;
    for (const b of [100, 1000]) {
      const up = await api.chat.completions.create({ model: NAME, messages: [{ role: 'user', content: QUESTION }], max_tokens: 4, temperature: 0, logit_bias: { [String(forced)]: b }, logprobs: true });
      assert.deepEqual(up.choices[0]!.logprobs!.content!.map((e) => e.token), new Array(4).fill(tokenText(forced)), `bias ${b}`);
    }
  });
});

test('logit_bias keys that are not token ids, ids outside the vocabulary, non-number biases and a bias with beams get 400 naming logit_bias', async () => {
  await withServer(async (server) => {
    for (const body of [
      { prompt: 'a', logit_bias: { abc: 1 } },
      { prompt: 'a', logit_bias: { '32000': 1 } },
      { prompt: 'a', logit_bias: { '-1': 1 } },
      { prompt: 'a', logit_bias: [1, 2] },
      { prompt: 'a', logit_bias: { '5': 'high' } },
      { prompt: 'a', logit_bias: { '5': 1 }, num_beams: 2 },
    ]) {
      const res = await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: NAME, ...body }) });
      const json = (await res.json()) as { error: { param: string | null; message: string } };
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(json.error.param, null);
      assert.match(json.error.message, /^logit_bias/);
    }
  });
});
