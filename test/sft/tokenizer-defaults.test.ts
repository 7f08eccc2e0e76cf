// Folders whose tokenizer_config.json sets add_bos_token false or add_eos_token true: training
// batches, generate, HuaTuo's prompts and serve encode as the Hugging Face calls they follow do.
// alpaca-lora's finetune.py: tokenizer(prompt, truncation=True, max_length=cutoff_len) (the
// tokenizer's own BOS/EOS, the text cut to leave room for them), then EOS appended when the last id
// is not EOS and there is room; transformers' generate and vLLM's completions: tokenizer(prompt);
// apply_chat_template(tokenize=True): the rendered text with add_special_tokens=False.
// Expected ids are built from the text's ids alone, tokenizer.encode(text, { addBos: false, addEos: false }).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { initWebGPU } from '@huatuo/tensor';
import { generate, llamaTokenizerDir, loadLlama, loadTokenizer, type LlamaModel, type Tokenizer } from '@huatuo/llama';
import { IGNORE_INDEX, MED_TEMPLATE, generatePrompt, loadChatTemplate, questionPrompter, startServer, textExample, tokenizeRecord, tokenizeRecords, tokenizeText } from '@huatuo/sft';
import { LLAMA2_CHAT_TEMPLATE, chatModelFolder } from './chat-folders.js';

const NAME = 'tiny';
const record = { instruction: '头痛怎么办？', input: '', output: '多喝水，休息一下。' };
const promptText = generatePrompt(MED_TEMPLATE, record.instruction, record.input);
const fullText = generatePrompt(MED_TEMPLATE, record.instruction, record.input, record.output);

let noBosDir: string; // tokenizer.json, add_bos_token false
let eosDir: string; // tokenizer.model, add_eos_token true, Llama-2-chat's template
let model: LlamaModel;
let noBos: Tokenizer;
let withEos: Tokenizer;

before(async () => {
  await initWebGPU();
  const assetConfig = JSON.parse(readFileSync(join(llamaTokenizerDir(), 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  noBosDir = chatModelFolder(['tokenizer.json'], { ...assetConfig, add_bos_token: false });
  eosDir = chatModelFolder(['tokenizer.model'], { ...assetConfig, add_eos_token: true, chat_template: LLAMA2_CHAT_TEMPLATE });
  model = await loadLlama(noBosDir);
  noBos = await loadTokenizer(noBosDir);
  withEos = await loadTokenizer(eosDir);
});

after(() => model.dispose());

/** The text's ids with no BOS or EOS. */
const bare = (tok: Tokenizer, text: string): number[] => tok.encode(text, { addBos: false, addEos: false });

describe('add_bos_token false', () => {
  test('the tokenizers read the setting (encode puts no BOS first when not told)', () => {
    assert.deepEqual(noBos.encode('the'), [278]);
    assert.deepEqual(withEos.encode('the'), [1, 278, 2]);
  });

  test('a training record is prompt + answer + EOS with no BOS, labels -100 on the prompt', () => {
    const prompt = bare(noBos, promptText);
    const full = bare(noBos, fullText);
    const ex = tokenizeRecord(record, MED_TEMPLATE, noBos, { cutoffLen: 256, trainOnInputs: false });
    assert.deepEqual(ex.inputIds, [...full, 2]);
    assert.deepEqual(ex.labels, [...prompt.map(() => IGNORE_INDEX), ...full.slice(prompt.length), 2]);
    assert.equal(ex.promptLength, prompt.length);
    assert.equal(ex.fullLength, full.length);
    // Truncated: the first cutoff_len ids of the text, no room left for EOS.
    assert.deepEqual(tokenizeRecord(record, MED_TEMPLATE, noBos, { cutoffLen: prompt.length + 2, trainOnInputs: false }).inputIds, full.slice(0, prompt.length + 2));
    assert.deepEqual(tokenizeText(noBos, 'the', 256, true), [278, 2]);
    assert.deepEqual(textExample(noBos, 'the', 256).inputIds, [278, 2]);
  });

  test("generate and HuaTuo's prompts encode a text prompt with no BOS, unless told to put one", async () => {
    const text = '问题：感冒了怎么办？';
    const [g] = await generate(model, noBos, text, { maxNewTokens: 1 });
    assert.deepEqual(g!.promptTokens, bare(noBos, text));
    const [told] = await generate(model, noBos, text, { maxNewTokens: 1, addBos: true });
    assert.deepEqual(told!.promptTokens, [1, ...bare(noBos, text)]);
    assert.deepEqual((await questionPrompter(MED_TEMPLATE, noBos).prompt(record.instruction)).ids, bare(noBos, promptText));
  });

  for (const thread of [false, true]) {
    test(`serve encodes a completion prompt and a HuaTuo chat prompt with no BOS (${thread ? 'tokenizer thread' : 'main thread'})`, async () => {
      const server = await startServer({ model, tokenizer: noBos, template: MED_TEMPLATE, modelName: NAME, ...(thread ? { tokenizerDir: noBosDir } : {}) });
      try {
        const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
        const text = '病人发烧三天';
        const completion = await client.completions.create({ model: NAME, prompt: text, max_tokens: 3, temperature: 0 });
        const [expected] = await generate(model, noBos, [bare(noBos, text)], { maxNewTokens: 3 });
        assert.equal(completion.usage!.prompt_tokens, bare(noBos, text).length);
        assert.equal(completion.choices[0]!.text, expected!.text);
        const chat = await client.chat.completions.create({ model: NAME, messages: [{ role: 'user', content: record.instruction }], max_tokens: 3, temperature: 0 });
        assert.equal(chat.usage!.prompt_tokens, bare(noBos, promptText).length);
      } finally {
        await server.close();
      }
    });
  }
});

describe('add_eos_token true', () => {
  test('a training record ends with the tokenizer\'s EOS, the prompt\'s own EOS counts in the masked prompt, and truncation keeps room for it', () => {
    const prompt = bare(withEos, promptText);
    const full = bare(withEos, fullText);
    const ex = tokenizeRecord(record, MED_TEMPLATE, withEos, { cutoffLen: 256, trainOnInputs: false });
    assert.deepEqual(ex.inputIds, [1, ...full, 2]);
    // user_prompt_len = len(tokenizer(prompt)) = BOS + prompt + EOS.
    assert.equal(ex.promptLength, prompt.length + 2);
    assert.deepEqual(ex.labels, [...new Array<number>(prompt.length + 2).fill(IGNORE_INDEX), ...full.slice(prompt.length + 1), 2]);
    const cutoffLen = prompt.length + 4;
    const cut = tokenizeRecord(record, MED_TEMPLATE, withEos, { cutoffLen, trainOnInputs: false });
    assert.deepEqual(cut.inputIds, [1, ...full.slice(0, cutoffLen - 2), 2]);
    assert.equal(cut.eosAppended, false);
    const { warnings } = tokenizeRecords([record], MED_TEMPLATE, withEos, { cutoffLen, trainOnInputs: false });
    assert.match(warnings[0]!.message, /truncated to its first 2 tokens and keeps the EOS the tokenizer adds/);
    assert.deepEqual(tokenizeText(withEos, 'the', 3, false), [1, 278, 2]);
    assert.deepEqual(tokenizeText(withEos, 'the cat', 3, false), [1, 278, 2]);
  });

  test('generate feeds tokenizer(prompt) as transformers does, EOS included', async () => {
    const [g] = await generate(model, withEos, 'the', { maxNewTokens: 1 });
    assert.deepEqual(g!.promptTokens, [1, 278, 2]);
  });

  test("a chat template's ids get no EOS added, in generate's prompts and in serve on the tokenizer thread", async () => {
    // transformers: tokenizer.apply_chat_template([{"role": "user", "content": "hi"}]) for Llama-2-7b-chat-hf.
    const expected = [1, 518, 25580, 29962, 7251, 518, 29914, 25580, 29962];
    const template = loadChatTemplate(eosDir);
    assert.deepEqual((await questionPrompter(template, withEos).prompt('hi')).ids, expected);
    const server = await startServer({ model, tokenizer: withEos, template, modelName: NAME, tokenizerDir: eosDir });
    try {
      const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const chat = await client.chat.completions.create({ model: NAME, messages: [{ role: 'user', content: 'hi' }], max_tokens: 3, temperature: 0 });
      assert.equal(chat.usage!.prompt_tokens, expected.length);
      const [reply] = await generate(model, withEos, [expected], { maxNewTokens: 3 });
      assert.equal(chat.choices[0]!.message.content, reply!.text);
    } finally {
      await server.close();
    }
  });
});
