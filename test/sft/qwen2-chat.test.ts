// Qwen2's ChatML chat template on a Qwen2 model folder (a tokenizer without BOS: bos_token null): the text and
// ids of transformers' apply_chat_template (the rendering with add_generation_prompt, encoded with no special
// tokens added) through generate --template chat, answerQuestions and serve, the ids written out by hand from
// the tiny vocabulary; a template that uses bos_token sees it undefined, as in transformers' Jinja environment.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { initWebGPU } from '@huatuo/tensor';
import { generate, loadLlama, loadTokenizer, type LlamaModel, type Tokenizer } from '@huatuo/llama';
import { buildProgram, buildServeCommand } from '@huatuo/cli';
import { DEFAULT_GENERATION, DEFAULT_SERVE_GENERATION, MED_TEMPLATE, TemplateError, answerQuestions, generatePrompt, getResponse, loadChatTemplate, questionPrompter, startServer } from '@huatuo/sft';
import { createRequestReader } from '@huatuo/sft/internal';
import { LLAMA2_CHAT_TEMPLATE } from './chat-folders.js';
import { IM_END, IM_START, qwen2ModelFolder } from './qwen2-folder.js';

const NAME = 'tiny-qwen2';
const GREEDY = { ...DEFAULT_GENERATION, numBeams: 1, maxNewTokens: 4 };

let dir: string;
let model: LlamaModel;
let tok: Tokenizer;

before(async () => {
  await initWebGPU();
  dir = await qwen2ModelFolder();
  model = await loadLlama(dir, { dtype: 'f32' });
  tok = await loadTokenizer(dir);
});

after(() => {
  model.dispose();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * Ids of printable ASCII text that none of the vocabulary's merges touch: one byte-level piece a byte, in GPT-2's
 * byte order (printable bytes 0x21... first, ids 0...; space and newline among the others, 220 and 198).
 */
function bytes(text: string): number[] {
  return [...text].map((c) => (c === ' ' ? 220 : c === '\n' ? 198 : c.charCodeAt(0) - 0x21));
}

const NL = bytes('\n');
const DEFAULT_SYSTEM = [IM_START, ...bytes('system\nYou are a helpful assistant.'), IM_END, ...NL];

/** What the model greedily writes after `ids`, special tokens skipped. */
async function greedy(ids: number[], maxNewTokens = 4): Promise<string> {
  const [out] = await generate(model, tok, [ids], { maxNewTokens });
  return out!.text;
}

test("a question is one user message of the ChatML template: Qwen2's default system turn, the user turn and the assistant's opening, no BOS", async () => {
  const prompt = await questionPrompter(loadChatTemplate(dir), tok).prompt('Hi there');
  assert.equal(prompt.text, '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n');
  assert.deepEqual(prompt.ids, [...DEFAULT_SYSTEM, IM_START, ...bytes('user\nHi there'), IM_END, ...NL, IM_START, ...bytes('assistant\n')]);
});

test('generate --template chat answers with all the model writes after those ids', async () => {
  const out = join(mkdtempSync(join(tmpdir(), 'huatuo-qwen2-generate-')), 'answers.jsonl');
  await buildProgram().parseAsync(['generate', '--base', dir, '--template', 'chat', '--prompt', 'Hi there', '--base-dtype', 'f32', '--num-beams', '1', '--max-new-tokens', '4', '--output', out], { from: 'user' });
  const [line] = readFileSync(out, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { question: string; answer: string });
  const ids = [...DEFAULT_SYSTEM, IM_START, ...bytes('user\nHi there'), IM_END, ...NL, IM_START, ...bytes('assistant\n')];
  assert.deepEqual(line, { question: 'Hi there', answer: await greedy(ids) });
});

test("answerQuestions: the chat template's answer is all the model writes; HuaTuo's med_template is encoded as the tokenizer's call, no BOS", async () => {
  const [chat] = await answerQuestions(model, tok, loadChatTemplate(dir), ['Hi there'], GREEDY);
  assert.equal(chat!.answer, await greedy((await questionPrompter(loadChatTemplate(dir), tok).prompt('Hi there')).ids));
  const med = await questionPrompter(MED_TEMPLATE, tok).prompt('headache?');
  const text = generatePrompt(MED_TEMPLATE, 'headache?');
  // The template's Chinese is UTF-8 bytes; its ASCII tail "\n### 回答:\n" ends with ':' and '\n'.
  assert.deepEqual(med.ids, tok.encode(text, { addEos: false }));
  assert.deepEqual(med.ids.slice(-2), bytes(':\n'));
  assert.equal(med.ids.length, new TextEncoder().encode(text).length, 'one byte-level id per byte: nothing added');
  const [answer] = await answerQuestions(model, tok, MED_TEMPLATE, ['headache?'], GREEDY);
  assert.equal(answer!.answer, getResponse(MED_TEMPLATE, `${text}${await greedy(med.ids)}`));
});

test('serve: a conversation with a system message and an earlier answer, through the request reader and the served model', async () => {
  const messages = [
    { role: 'system' as const, content: 'Be brief.' },
    { role: 'user' as const, content: 'Hi' },
    { role: 'assistant' as const, content: 'Hi!' },
    { role: 'user' as const, content: 'Why?' },
  ];
  const expected = [
    ...[IM_START, ...bytes('system\nBe brief.'), IM_END, ...NL],
    ...[IM_START, ...bytes('user\nHi'), IM_END, ...NL],
    ...[IM_START, ...bytes('assistant\nHi!'), IM_END, ...NL],
    ...[IM_START, ...bytes('user\nWhy?'), IM_END, ...NL],
    ...[IM_START, ...bytes('assistant\n')],
  ];
  const template = loadChatTemplate(dir);
  const read = createRequestReader({ model, tokenizer: tok, template, modelName: NAME, defaults: DEFAULT_SERVE_GENERATION, maxTokensLimit: 64, encode: async (text, specialTokens) => tok.encode(text, specialTokens ? {} : { addBos: false, addEos: false }) });
  assert.deepEqual((await read.chat({ model: NAME, messages, max_tokens: 4 })).prompt, expected);
  const server = await startServer({ model, tokenizer: tok, template, modelName: NAME, tokenizerDir: dir });
  try {
    const r = await new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 }).chat.completions.create({ model: NAME, messages, max_tokens: 4, temperature: 0 });
    assert.equal(r.usage!.prompt_tokens, expected.length);
    assert.equal(r.choices[0]!.message.content, await greedy(expected), 'the answer is the model greedily continuing exactly those ids');
  } finally {
    await server.close();
  }
});

test('serve --template chat serves a Qwen2 folder with its own template', async () => {
  let tokens = 0;
  await buildServeCommand({
    out: () => {},
    err: () => {},
    until: async (server) => {
      const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      tokens = (await client.chat.completions.create({ model: NAME, messages: [{ role: 'user', content: 'Hi there' }], max_tokens: 2, temperature: 0 })).usage!.prompt_tokens;
    },
  }).parseAsync(['--base', dir, '--template', 'chat', '--port', '0', '--model-name', NAME, '--quiet'], { from: 'user' });
  assert.equal(tokens, DEFAULT_SYSTEM.length + [IM_START, ...bytes('user\nHi there'), IM_END, ...NL, IM_START, ...bytes('assistant\n')].length);
});

test("a template that uses bos_token with a tokenizer without BOS: it renders as '', and a `+` on it fails naming bos_token and tokenizer_config.json", async () => {
  const printing = await qwen2ModelFolder({ chat_template: '{{ bos_token }}[{{ messages[0].content }}]' });
  const adding = await qwen2ModelFolder({ chat_template: LLAMA2_CHAT_TEMPLATE });
  try {
    // jinja2 (transformers' environment): Template('{{ bos_token }}[x]').render() == '[x]'; 'bos_token' + '...' raises UndefinedError.
    assert.equal((await questionPrompter(loadChatTemplate(printing), tok).prompt('hi')).text, '[hi]');
    await assert.rejects(questionPrompter(loadChatTemplate(adding), tok).prompt('hi'), (e: Error) => {
      assert.ok(e instanceof TemplateError, String(e));
      assert.ok(e.message.includes('bos_token') && e.message.includes('tokenizer_config.json'), e.message);
      return true;
    });
  } finally {
    rmSync(printing, { recursive: true, force: true });
    rmSync(adding, { recursive: true, force: true });
  }
});
