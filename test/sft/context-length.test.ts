// The context the trainer's preflight and the server check against: config.json's max_position_embeddings
// stretched by rope_scaling (vLLM's derived max_model_len) or the model's set length, for --cutoff-len, the
// server's default max_tokens limit and its prompt-plus-answer check.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initWebGPU } from '@huatuo/tensor';
import { configFromPreset, createRandomLlama, llamaTokenizerDir, loadTokenizer, type LlamaModel, type Tokenizer } from '@huatuo/llama';
import { ConfigError, MED_TEMPLATE, checkContext, startServer } from '@huatuo/sft';
import { SMALL_MODEL } from './trainer-setup.js';

const M = 16; // max_position_embeddings
const FACTOR = 8;
let model: LlamaModel;
let tokenizer: Tokenizer;

before(async () => {
  await initWebGPU();
  model = createRandomLlama(configFromPreset('tiny', { ...SMALL_MODEL, maxPositionEmbeddings: M, ropeScaling: { type: 'yarn', factor: FACTOR } }), { seed: 21 });
  tokenizer = await loadTokenizer(llamaTokenizerDir());
});

after(() => model.dispose());

test('--cutoff-len may reach max_position_embeddings × the yarn factor, and no further', () => {
  checkContext(M * FACTOR, model, 'the model');
  assert.throws(
    () => checkContext(M * FACTOR + 1, model, 'the model'),
    (e: unknown) =>
      e instanceof ConfigError && e.flag === '--cutoff-len' &&
      e.message.includes(`${M * FACTOR + 1} tokens is beyond the context of the model, ${M * FACTOR} tokens (max_position_embeddings ${M} × rope_scaling "yarn" factor ${FACTOR}); lower it to ${M * FACTOR} or less`) &&
      e.message.includes('--allow-long-max-model-len'),
  );
});

test('--cutoff-len is checked against a set max model length, naming --max-model-len', () => {
  const short = createRandomLlama(model.config, { seed: 22 });
  try {
    short.setMaxModelLen(32);
    assert.throws(
      () => checkContext(33, short, 'the model'),
      (e: unknown) => e instanceof ConfigError && /33 tokens is beyond the context of the model, 32 tokens \(set by --max-model-len.*raise --max-model-len \(config\.json allows 128\)/.test(e.message),
    );
  } finally {
    short.dispose();
  }
});

test("the server's default max_tokens limit and its context are the derived length, past max_position_embeddings", async () => {
  const server = await startServer({ model, tokenizer, template: MED_TEMPLATE, modelName: 'yarn' });
  try {
    const url = `${server.url}/v1/completions`;
    const prompt = [1, 450, 16500, 13676, 338, 263, 1243, 310, 278, 3030];
    const post = async (max_tokens: number) => {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'yarn', prompt, max_tokens, temperature: 0 }) });
      return { status: res.status, json: (await res.json()) as any };
    };
    const ok = await post(2 * M);
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    assert.equal(ok.json.usage.prompt_tokens, prompt.length);
    assert.equal(ok.json.usage.completion_tokens, 2 * M, `generated past max_position_embeddings: ${JSON.stringify(ok.json.usage)}`);
    const left = M * FACTOR - prompt.length;
    const over = await post(left + 1);
    assert.equal(over.status, 400, JSON.stringify(over.json));
    assert.deepEqual([over.json.error.type, over.json.error.code], ['BadRequestError', 400]);
    assert.match(over.json.error.message, new RegExp(`beyond this model's context of ${M * FACTOR} tokens; ask for at most ${left}`));
  } finally {
    await server.close();
  }
});
