// huatuo-train serve with the model's own Jinja chat template (--template chat): tiny model folders
// whose tokenizer_config.json carries Llama-3's and Llama-2-chat's templates, the prompt ids the
// server feeds the model checked against renderings written out by hand from those templates.
// The folders have LLaMA's 32k vocabulary, so Llama-3's header tokens are read as text and its bos is <s>.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { initWebGPU } from '@huatuo/tensor';
import { generate, llamaTokenizerDir, loadLlama, loadTokenizer, type LlamaModel, type Tokenizer } from '@huatuo/llama';
import { buildServeCommand } from '@huatuo/cli';
import { DEFAULT_SERVE_GENERATION, TemplateError, loadChatTemplate, renderChatTemplate, startServer, type ChatTemplate, type RunningServer } from '@huatuo/sft';
import { createRequestReader } from '@huatuo/sft/internal';
import { LLAMA2_CHAT_TEMPLATE, chatModelFolder } from './chat-folders.js';

const NAME = 'tiny-chat';

// meta-llama/Meta-Llama-3-8B-Instruct's chat_template, as its tokenizer_config.json holds it.
const LLAMA3 =
  "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

let llama3Dir: string; // tokenizer.json (Hugging Face's fast tokenizer) + Llama-3's template
let llama2Dir: string; // tokenizer.model only (SentencePiece) + Llama-2-chat's template
let plainDir: string; // LLaMA's tokenizer_config.json, no chat template
let model: LlamaModel;
let hfTok: Tokenizer;
let spTok: Tokenizer;


before(async () => {
  await initWebGPU();
  const assetConfig = JSON.parse(readFileSync(join(llamaTokenizerDir(), 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  llama3Dir = chatModelFolder(['tokenizer.json', 'tokenizer.model'], { ...assetConfig, chat_template: LLAMA3 });
  // Tokens as AddedToken objects, as transformers saves them.
  const added = (content: string) => ({ __type: 'AddedToken', content, lstrip: false, normalized: false, rstrip: false, single_word: false });
  llama2Dir = chatModelFolder(['tokenizer.model'], { ...assetConfig, bos_token: added('<s>'), eos_token: added('</s>'), unk_token: added('<unk>'), chat_template: LLAMA2_CHAT_TEMPLATE });
  plainDir = chatModelFolder(['tokenizer.json'], assetConfig);
  model = await loadLlama(llama3Dir);
  hfTok = await loadTokenizer(llama3Dir);
  spTok = await loadTokenizer(llama2Dir);
  assert.notEqual(hfTok.constructor, spTok.constructor, 'one folder is read through tokenizer.json, the other through tokenizer.model');
});

after(() => model.dispose());

/** The ids the server's request reader gives the model for `messages`. */
async function promptIds(template: ChatTemplate, tokenizer: Tokenizer, messages: { role: string; content: string }[]): Promise<number[]> {
  const read = createRequestReader({
    model,
    tokenizer,
    template,
    modelName: NAME,
    defaults: DEFAULT_SERVE_GENERATION,
    maxTokensLimit: 64,
    encode: async (text, addBos) => tokenizer.encode(text, { addBos }),
  });
  return (await read.chat({ model: NAME, messages, max_tokens: 4 })).prompt;
}

const client = (server: RunningServer) => new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });

test("Llama-2-chat's template gives Llama-2's well-known ids for one user turn, from tokenizer.json and from tokenizer.model alike", async () => {
  // transformers: tokenizer.apply_chat_template([{"role": "user", "content": "hi"}]) for Llama-2-7b-chat-hf.
  const expected = [1, 518, 25580, 29962, 7251, 518, 29914, 25580, 29962];
  const template = loadChatTemplate(llama2Dir);
  assert.deepEqual(await promptIds(template, spTok, [{ role: 'user', content: 'hi' }]), expected);
  assert.deepEqual(await promptIds(template, hfTok, [{ role: 'user', content: 'hi' }]), expected);
});

test("Llama-2-chat's template: the system message goes into the first [INST], each answer ends with </s>, and <s> opens each turn as one id", async () => {
  const messages = [
    { role: 'system', content: '你是一名医生。' },
    { role: 'user', content: '我头痛。 ' },
    { role: 'assistant', content: ' 多久了？' },
    { role: 'user', content: '三天了。' },
  ];
  // The template's text, by hand: bos + '[INST] ' + (<<SYS>> block + content).strip() + ' [/INST]', ' ' + answer.strip() + ' ' + eos, ...
  const first = '[INST] <<SYS>>\n你是一名医生。\n<</SYS>>\n\n我头痛。 [/INST] 多久了？ ';
  const second = '[INST] 三天了。 [/INST]';
  const expected = [1, ...spTok.encode(first, { addBos: false }), 2, 1, ...spTok.encode(second, { addBos: false })];
  assert.deepEqual(await promptIds(loadChatTemplate(llama2Dir), spTok, messages), expected);
});

test("Llama-3's template through the server: the prompt is bos + header blocks + the assistant header, encoded with no second BOS, and usage counts it", async () => {
  const messages = [
    { role: 'system' as const, content: 'You are a doctor.' },
    { role: 'user' as const, content: ' 头痛怎么办？\n' },
  ];
  const rest =
    '<|start_header_id|>system<|end_header_id|>\n\nYou are a doctor.<|eot_id|>' +
    '<|start_header_id|>user<|end_header_id|>\n\n头痛怎么办？<|eot_id|>' +
    '<|start_header_id|>assistant<|end_header_id|>\n\n';
  const expected = [1, ...hfTok.encode(rest, { addBos: false })];
  const template = loadChatTemplate(llama3Dir);
  assert.deepEqual(await promptIds(template, hfTok, messages), expected);
  const [greedy] = await generate(model, hfTok, [expected], { maxNewTokens: 6 });
  const server = await startServer({ model, tokenizer: hfTok, template, modelName: NAME, tokenizerDir: llama3Dir });
  try {
    const r = await client(server).chat.completions.create({ model: NAME, messages, max_tokens: 6, temperature: 0 });
    assert.equal(r.usage!.prompt_tokens, expected.length);
    assert.equal(r.choices[0]!.message.content, greedy!.text, 'the answer is the model greedily continuing exactly those ids, unstripped');
  } finally {
    await server.close();
  }
});

test("a developer message (OpenAI's newer system role) is the system message under a template that does not name the role, and stays a developer message under one that does", async () => {
  const asSystem = [
    { role: 'system', content: '你是一名医生。' },
    { role: 'user', content: '我头痛。' },
  ];
  const asDeveloper = [{ ...asSystem[0]!, role: 'developer' }, asSystem[1]!];
  // Llama-2-chat's template would otherwise refuse it: roles must alternate after an optional system message.
  const systemIds = await promptIds(loadChatTemplate(llama2Dir), spTok, asSystem);
  assert.deepEqual(await promptIds(loadChatTemplate(llama2Dir), spTok, asDeveloper), systemIds);
  const server = await startServer({ model, tokenizer: spTok, template: loadChatTemplate(llama2Dir), modelName: NAME });
  try {
    const r = await client(server).chat.completions.create({ model: NAME, messages: [{ role: 'developer', content: asSystem[0]!.content }, { role: 'user', content: asSystem[1]!.content }], max_tokens: 2 });
    assert.equal(r.usage!.prompt_tokens, systemIds.length, 'the openai client gets an answer to the prompt with the system message');
  } finally {
    await server.close();
  }
  const knowing = chatModelFolder(['tokenizer.json'], { chat_template: "{% for m in messages %}{% if m.role == 'developer' %}D{% else %}{{ m.role }}{% endif %}:{{ m.content }};{% endfor %}" });
  assert.deepEqual(await promptIds(loadChatTemplate(knowing), hfTok, asDeveloper), hfTok.encode('D:你是一名医生。;user:我头痛。;', { addBos: false }));
});

test('a conversation the template refuses with raise_exception gets a 400 carrying its message', async () => {
  const server = await startServer({ model, tokenizer: spTok, template: loadChatTemplate(llama2Dir), modelName: NAME });
  try {
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: NAME, messages: [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }] }),
    });
    const body = (await res.json()) as { error: { message: string; param: string | null; type: string; code: number } };
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.deepEqual([body.error.type, body.error.code], ['BadRequestError', 400]);
    assert.equal(body.error.param, null);
    assert.match(body.error.message, /^messages: .*Conversation roles must alternate user\/assistant\/user\/assistant\/\.\.\./);
  } finally {
    await server.close();
  }
});

test('a folder without a chat template, or with named templates and no "default", is refused naming the file and what to pass instead', async () => {
  assert.throws(() => loadChatTemplate(plainDir), (e: Error) => e instanceof TemplateError && e.message.includes(join(plainDir, 'tokenizer_config.json')) && /no "chat_template"/.test(e.message) && e.message.includes('--template'));
  const named = chatModelFolder(['tokenizer.json'], { chat_template: [{ name: 'tool_use', template: LLAMA3 }, { name: 'rag', template: LLAMA3 }] });
  assert.throws(() => loadChatTemplate(named), (e: Error) => e instanceof TemplateError && e.message.includes('tool_use, rag') && /"default"/.test(e.message) && e.message.includes('.jinja'));
  // The serve command refuses before it opens a device or loads the model.
  await assert.rejects(buildServeCommand({ out: () => {}, err: () => {} }).parseAsync(['--base', plainDir, '--template', 'chat', '--port', '0'], { from: 'user' }), (e: Error) => e instanceof TemplateError && e.message.startsWith('huatuo-train serve --template chat: ') && e.message.includes('tokenizer_config.json'));
});

test("chat_template.jinja overrides tokenizer_config.json's template, the default of named templates is used, and a .jinja path overrides both", () => {
  const user = [{ role: 'user', content: 'hi' }];
  const named = chatModelFolder(['tokenizer.json'], { bos_token: '<s>', eos_token: { content: '</s>' }, chat_template: [{ name: 'tool_use', template: 'T' }, { name: 'default', template: '{{ bos_token }}D{{ messages[0].content }}' }] });
  assert.equal(renderChatTemplate(loadChatTemplate(named), user), '<s>Dhi');
  // A template file's one trailing newline is dropped, as Jinja drops it.
  writeFileSync(join(named, 'chat_template.jinja'), '{{ bos_token }}J{{ messages[0].content }}\n');
  assert.equal(renderChatTemplate(loadChatTemplate(named), user), '<s>Jhi');
  const file = join(named, 'other.jinja');
  writeFileSync(file, '{{ eos_token }}O{{ messages[0].content }}{% if add_generation_prompt %}>{% endif %}');
  assert.equal(renderChatTemplate(loadChatTemplate(named, file), user), '</s>Ohi>', "the file's template, with the folder's special tokens");
});

test('serve --template chat serves the --base folder with its own template', async () => {
  const messages = [{ role: 'user' as const, content: 'hi' }];
  let tokens = 0;
  await buildServeCommand({
    out: () => {},
    err: () => {},
    until: async (server) => {
      tokens = (await client(server).chat.completions.create({ model: NAME, messages, max_tokens: 2, temperature: 0 })).usage!.prompt_tokens;
    },
  }).parseAsync(['--base', llama3Dir, '--template', 'chat', '--port', '0', '--model-name', NAME, '--quiet'], { from: 'user' });
  const rest = '<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n';
  assert.equal(tokens, 1 + hfTok.encode(rest, { addBos: false }).length);
});
