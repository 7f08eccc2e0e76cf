// --template chat with an adapter that brings its own vocabulary and tokenizer: the chat template is the adapter
// folder's (chat_template.jinja over tokenizer_config.json's chat_template), as transformers' AutoTokenizer.from_pretrained
// on the adapter folder reads it; where that folder has none, serve and generate refuse it naming --adapter rather than
// use the base's. An adapter keeping the base's vocabulary keeps the base's tokenizer and template.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initWebGPU } from '@huatuo/tensor';
import { generate, llamaTokenizerDir, loadTokenizer, saveMergedModel, serializeSafetensors, type Tokenizer } from '@huatuo/llama';
import { buildProgram, buildServeCommand } from '@huatuo/cli';
import { TemplateError, loadAdapterWithTokenizer, loadBaseModel } from '@huatuo/sft';

const SMALL = { hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 1, numAttentionHeads: 2, numKeyValueHeads: 2 };
const BASE_TEMPLATE = '{{ messages[0].content }}';
const ADAPTER_TEMPLATE = 'Adapter config template: {{ messages[0].content }}{% if add_generation_prompt %} answer:{% endif %}';
const ADAPTER_JINJA = 'Adapter jinja file template, longer than the others: {{ messages[0].content }}{% if add_generation_prompt %} answer:{% endif %}';

let baseDir: string;
let tokenizer: Tokenizer;
const assetConfig = JSON.parse(readFileSync(join(llamaTokenizerDir(), 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
const tmp = (prefix: string) => mkdtempSync(join(tmpdir(), prefix));

before(async () => {
  await initWebGPU();
  baseDir = tmp('huatuo-base-');
  const demo = await loadBaseModel(null, undefined, { demoConfig: SMALL });
  try {
    await saveMergedModel(demo.model, baseDir, { tokenizerDir: llamaTokenizerDir() });
  } finally {
    demo.model.dispose();
  }
  writeFileSync(join(baseDir, 'tokenizer_config.json'), JSON.stringify({ ...assetConfig, chat_template: BASE_TEMPLATE }));
  tokenizer = await loadTokenizer(llamaTokenizerDir());
});

/**
 * A PEFT adapter folder for the small model: LoRA on q_proj and trained embed_tokens and lm_head of `rows` pieces, with
 * LLaMA's tokenizer and a tokenizer_config.json holding `chatTemplate` (none when undefined), and `jinja` as chat_template.jinja.
 */
function adapterFolder(rows: number, chatTemplate?: string, jinja?: string): string {
  const dir = tmp('huatuo-adapter-');
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj'], modules_to_save: ['embed_tokens', 'lm_head'] }));
  const f32 = (n: number, scale: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i) * scale);
  const tensors = [
    { name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', shape: [4, 32], data: f32(128, 0.1) },
    { name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight', shape: [32, 4], data: f32(128, 0.1) },
    { name: 'base_model.model.model.embed_tokens.weight', shape: [rows, 32], data: f32(rows * 32, 0.02) },
    { name: 'base_model.model.lm_head.weight', shape: [rows, 32], data: f32(rows * 32, 0.02) },
  ];
  writeFileSync(join(dir, 'adapter_model.safetensors'), serializeSafetensors(tensors.map((t) => ({ ...t, dtype: 'F32' as const })), { metadata: { format: 'pt' } }));
  for (const f of ['tokenizer.model', 'special_tokens_map.json']) copyFileSync(join(llamaTokenizerDir(), f), join(dir, f));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(chatTemplate === undefined ? assetConfig : { ...assetConfig, chat_template: chatTemplate }));
  if (jinja !== undefined) writeFileSync(join(dir, 'chat_template.jinja'), jinja);
  return dir;
}

/** The prompt tokens serve counts for the chat "hi" with --template chat and `adapter`. */
async function servedPromptTokens(adapter: string): Promise<number> {
  let tokens = -1;
  await buildServeCommand({
    out: () => {},
    err: () => {},
    until: async (server) => {
      const r = await fetch(`${server.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1, temperature: 0 }),
      });
      const body = (await r.json()) as { usage?: { prompt_tokens: number } };
      assert.equal(r.status, 200, JSON.stringify(body));
      tokens = body.usage!.prompt_tokens;
    },
  }).parseAsync(['--base', baseDir, '--adapter', adapter, '--template', 'chat', '--port', '0', '--model-name', 'm', '--quiet'], { from: 'user' });
  return tokens;
}

const count = (text: string) => tokenizer.encode(text, { addBos: false, addEos: false }).length;

test("serve --template chat with an adapter bringing its own tokenizer uses the adapter folder's chat template, chat_template.jinja first", async () => {
  assert.equal(await servedPromptTokens(adapterFolder(32008, ADAPTER_TEMPLATE)), count('Adapter config template: hi answer:'));
  assert.equal(await servedPromptTokens(adapterFolder(32008, ADAPTER_TEMPLATE, ADAPTER_JINJA)), count('Adapter jinja file template, longer than the others: hi answer:'));
  // The base's vocabulary: the base's tokenizer, and so its template, even with a tokenizer in the adapter folder.
  assert.equal(await servedPromptTokens(adapterFolder(32000, ADAPTER_TEMPLATE)), count('hi'));
});

test("generate --template chat with an adapter bringing its own tokenizer answers after the adapter folder's chat template", async () => {
  const dir = adapterFolder(32008, ADAPTER_TEMPLATE);
  const reference = await loadBaseModel(baseDir, undefined, { dtype: 'f32' });
  let expected: string;
  try {
    assert.equal(await loadAdapterWithTokenizer(reference, dir), dir);
    const [g] = await generate(reference.model, reference.tokenizer, [reference.tokenizer.encode('Adapter config template: hi answer:', { addBos: false })], { maxNewTokens: 4 });
    expected = g!.text;
  } finally {
    reference.model.dispose();
  }
  const out = join(tmp('huatuo-generate-out-'), 'answers.jsonl');
  await buildProgram().parseAsync(['generate', '--base', baseDir, '--adapter', dir, '--template', 'chat', '--prompt', 'hi', '--base-dtype', 'f32', '--num-beams', '1', '--max-new-tokens', '4', '--output', out], { from: 'user' });
  assert.deepEqual(JSON.parse(readFileSync(out, 'utf8')), { question: 'hi', answer: expected });
});

test('serve and generate --template chat refuse an adapter whose own tokenizer has no chat template, naming --adapter, instead of using the base\'s', async () => {
  const dir = adapterFolder(32008);
  const refusal = (e: unknown) =>
    e instanceof TemplateError && e.message.includes(`--adapter ${dir}: the adapter brings its own vocabulary and tokenizer`) && e.message.includes(`${dir}/tokenizer_config.json: has no "chat_template"`);
  await assert.rejects(servedPromptTokens(dir), refusal);
  const out = join(tmp('huatuo-generate-out-'), 'answers.jsonl');
  await assert.rejects(
    buildProgram().parseAsync(['generate', '--base', baseDir, '--adapter', dir, '--template', 'chat', '--prompt', 'hi', '--base-dtype', 'f32', '--max-new-tokens', '1', '--output', out], { from: 'user' }),
    refusal,
  );
});
