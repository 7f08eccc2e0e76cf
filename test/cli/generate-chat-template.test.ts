// huatuo-train generate with the model's own Jinja chat template (--template chat or a .jinja path):
// the prompt ids checked against renderings written out by hand from Llama-2-chat's and Llama-3's
// templates, answers as the model greedily continues those ids, and HuaTuo's templates as before.
// The folders have LLaMA's 32k vocabulary, so Llama-3's header tokens are read as text and its bos is <s>.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initWebGPU } from '@huatuo/tensor';
import { generate, llamaTokenizerDir, loadLlama, loadTokenizer, type LlamaModel, type Tokenizer } from '@huatuo/llama';
import { buildProgram } from '@huatuo/cli';
import { MED_TEMPLATE, TemplateError, generatePrompt, getResponse, loadChatTemplate, questionPrompter } from '@huatuo/sft';
import { LLAMA2_CHAT_TEMPLATE, chatModelFolder } from '../sft/chat-folders.js';


// meta-llama/Meta-Llama-3-8B-Instruct's chat_template, as a .jinja file holds it.
const LLAMA3 =
  "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

let llama2Dir: string; // tokenizer.model only (SentencePiece) + Llama-2-chat's template
let plainDir: string; // tokenizer.json, no chat template
let model: LlamaModel;
let spTok: Tokenizer;
let hfTok: Tokenizer;


before(async () => {
  await initWebGPU();
  const assetConfig = JSON.parse(readFileSync(join(llamaTokenizerDir(), 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  llama2Dir = chatModelFolder(['tokenizer.model'], { ...assetConfig, chat_template: LLAMA2_CHAT_TEMPLATE });
  plainDir = chatModelFolder(['tokenizer.json'], assetConfig);
  model = await loadLlama(llama2Dir, { dtype: 'f32' });
  spTok = await loadTokenizer(llama2Dir);
  hfTok = await loadTokenizer(plainDir);
});

after(() => model.dispose());

/** Runs `huatuo-train generate` greedily for 4 tokens into a file and gives its JSONL lines. */
async function generateCli(args: string[]): Promise<{ question: string; answer: string }[]> {
  const out = join(mkdtempSync(join(tmpdir(), 'huatuo-generate-out-')), 'answers.jsonl');
  await buildProgram().parseAsync(['generate', ...args, '--base-dtype', 'f32', '--num-beams', '1', '--max-new-tokens', '4', '--output', out], { from: 'user' });
  return readFileSync(out, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { question: string; answer: string });
}

/** What the model greedily writes after `ids`, special tokens skipped. */
async function greedy(ids: number[]): Promise<string> {
  const [out] = await generate(model, spTok, [ids], { maxNewTokens: 4 });
  return out!.text;
}

test("a question is one user message of Llama-2-chat's template: Llama-2's well-known ids, from tokenizer.model and tokenizer.json alike", async () => {
  // transformers: tokenizer.apply_chat_template([{"role": "user", "content": "hi"}]) for Llama-2-7b-chat-hf.
  const expected = [1, 518, 25580, 29962, 7251, 518, 29914, 25580, 29962];
  const template = loadChatTemplate(llama2Dir);
  assert.deepEqual((await questionPrompter(template, spTok).prompt('hi')).ids, expected);
  assert.deepEqual((await questionPrompter(template, hfTok).prompt('hi')).ids, expected);
});

test('generate --template chat --input: each record is one user message (instruction, then input after a newline) and the answer is all the model writes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'huatuo-generate-in-'));
  const input = join(dir, 'questions.jsonl');
  const records = [
    { instruction: '头痛怎么办？' },
    { instruction: ' 这个检查结果正常吗？', input: '血压 150/95 ' },
  ];
  writeFileSync(input, records.map((r) => JSON.stringify(r)).join('\n'));
  const lines = await generateCli(['--base', llama2Dir, '--template', 'chat', '--input', input]);
  assert.deepEqual(lines.map((l) => l.question), ['头痛怎么办？', ' 这个检查结果正常吗？\n血压 150/95 ']);
  // By hand from the template: bos_token + '[INST] ' + content.strip() + ' [/INST]', no second BOS.
  const first = [1, ...spTok.encode('[INST] 头痛怎么办？ [/INST]', { addBos: false })];
  const second = [1, ...spTok.encode('[INST] 这个检查结果正常吗？\n血压 150/95 [/INST]', { addBos: false })];
  assert.deepEqual(lines.map((l) => l.answer), [await greedy(first), await greedy(second)]);
});

test("generate --template file.jinja renders Llama-3's template with the --base folder's tokens", async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'huatuo-jinja-')), 'llama3.jinja');
  writeFileSync(file, LLAMA3);
  const [line] = await generateCli(['--base', llama2Dir, '--template', file, '--prompt', ' 头痛怎么办？\n']);
  const rest = '<|start_header_id|>user<|end_header_id|>\n\n头痛怎么办？<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n';
  assert.deepEqual(line, { question: ' 头痛怎么办？\n', answer: await greedy([1, ...spTok.encode(rest, { addBos: false })]) });
});

test('generate refuses a folder without a chat template, or a missing .jinja file, naming the command, the file and what to pass instead, before loading the model', async () => {
  const run = (template: string) => buildProgram().parseAsync(['generate', '--base', plainDir, '--template', template, '--prompt', 'hi'], { from: 'user' });
  await assert.rejects(run('chat'), (e: Error) => {
    assert.ok(e instanceof TemplateError, String(e));
    assert.ok(e.message.startsWith('huatuo-train generate --template chat: '), e.message);
    assert.ok(e.message.includes(join(plainDir, 'tokenizer_config.json')) && /no "chat_template"/.test(e.message), e.message);
    assert.ok(e.message.includes('--template med_template') && e.message.includes('--template path/to/template.jinja'), e.message);
    assert.doesNotMatch(e.message, /serve/);
    return true;
  });
  const missing = join(plainDir, 'missing.jinja');
  await assert.rejects(run(missing), (e: Error) => e instanceof TemplateError && e.message.startsWith(`huatuo-train generate --template ${missing}: `) && e.message.includes(missing));
});

test("generate with HuaTuo's med_template is as before: the instruction alone fills the template, BOS first, and the answer is cut after the response marker", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'huatuo-generate-med-'));
  const input = join(dir, 'questions.jsonl');
  writeFileSync(input, JSON.stringify({ instruction: '头痛怎么办？', input: '三天了', output: '-' }));
  const [line] = await generateCli(['--base', llama2Dir, '--template', 'med_template', '--input', input]);
  const prompt = generatePrompt(MED_TEMPLATE, '头痛怎么办？');
  const [out] = await generate(model, spTok, prompt, { maxNewTokens: 4 });
  assert.deepEqual(line, { question: '头痛怎么办？', answer: getResponse(MED_TEMPLATE, `${prompt}${out!.text}`) });
  assert.deepEqual((await questionPrompter(MED_TEMPLATE, spTok).prompt('头痛怎么办？')).ids, spTok.encode(prompt, { addBos: true }));
});
