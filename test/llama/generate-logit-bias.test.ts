// OpenAI's logit_bias and the log-probabilities of generate: the bias applied on the GPU before the penalties
// picks what the host picks from the logits read back (float64), greedy and sampled; the log-probabilities
// (the raw logits', before the bias and the penalties) match the host's float64 log-softmax on every path.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { initWebGPU, readyMatmul } from '@huatuo/tensor';
import { configFromPreset, createRandomLlama, generate, type GenerateOptions, type LlamaModel } from '@huatuo/llama';
import { generateOn } from './decode-paths.js';

describe('logit bias and log-probabilities', () => {
  let model: LlamaModel;
  const prompts = [[14, 29, 14], [40, 41], [7, 8, 60, 61, 62]];

  before(async () => {
    await initWebGPU();
    await readyMatmul();
    model = createRandomLlama(configFromPreset('tiny', { vocabSize: 97 }), { seed: 5, std: 0.05 });
  });

  after(() => model.dispose());

  const bias = new Map([[30, -100], [12, 3.5], [55, 2], [3, -1.25]]);
  const cases: GenerateOptions[] = [
    { doSample: false, logitBias: bias },
    { doSample: false, logitBias: bias, repetitionPenalty: 1.3, presencePenalty: 0.6 },
    { doSample: true, temperature: 0.9, topK: 0, topP: 1, logitBias: bias, seed: 3 },
    { doSample: true, temperature: 0.7, topK: 40, topP: 0.9, logitBias: bias, frequencyPenalty: 0.8, repetitionPenalty: 1.2, seed: 8 },
  ];

  it('the GPU, one step ahead or step by step, picks the tokens the host picks with the bias added before the penalties', async () => {
    for (const c of cases) {
      const options = { ...c, maxNewTokens: 12 };
      const host = (await generateOn(model, prompts, options, 'host')).map((g) => g.tokens);
      assert.deepEqual((await generateOn(model, prompts, options, 'gpu')).map((g) => g.tokens), host, `one step ahead, ${JSON.stringify({ ...c, logitBias: [...bias] })}`);
      assert.deepEqual((await generateOn(model, prompts, options, 'gpu-stepwise')).map((g) => g.tokens), host, `step by step, ${JSON.stringify({ ...c, logitBias: [...bias] })}`);
      const unbiased = (await generateOn(model, prompts, { ...options, logitBias: new Map() }, 'gpu')).map((g) => g.tokens);
      assert.notDeepEqual(host, unbiased, 'the bias should change some token');
      assert.ok(host.every((t) => !t.includes(30)), 'a bias of -100 keeps token 30 out');
    }
    const [forced] = await generateOn(model, [prompts[0]!], { maxNewTokens: 6, logitBias: new Map([[77, 100]]) }, 'gpu');
    assert.deepEqual(forced!.tokens, new Array(6).fill(77));
  });

  it('logprobs give each token the raw log-softmax and its step\'s top tokens, on the GPU as the host computes them in float64', async () => {
    for (const c of [{ doSample: false }, ...cases]) {
      const options = { ...c, maxNewTokens: 8, logprobs: 4 };
      const host = await generateOn(model, prompts, options, 'host');
      for (const where of ['gpu', 'gpu-stepwise'] as const) {
        const gpu = await generateOn(model, prompts, options, where);
        gpu.forEach((g, b) => {
          assert.deepEqual(g.tokens, host[b]!.tokens, `${where} row ${b}`);
          assert.equal(g.logprobs!.length, g.tokens.length);
          g.logprobs!.forEach((e, i) => {
            const h = host[b]!.logprobs![i]!;
            const where_ = `${where} row ${b} token ${i}, ${JSON.stringify({ ...c, logitBias: undefined })}`;
            assert.equal(e.id, g.tokens[i], where_);
            assert.ok(Math.abs(e.logprob - h.logprob) <= 1e-5, `${where_}: ${e.logprob} vs ${h.logprob}`);
            assert.deepEqual(e.top.map((t) => t.id), h.top.map((t) => t.id), where_);
            e.top.forEach((t, j) => assert.ok(Math.abs(t.logprob - h.top[j]!.logprob) <= 1e-5, `${where_} top ${j}`));
          });
        });
      }
    }
    // Raw: the bias moves the picks, not the log-probabilities of the model's logits.
    const [forced] = await generateOn(model, [prompts[0]!], { maxNewTokens: 3, logitBias: new Map([[77, 100]]), logprobs: 1 }, 'gpu');
    const [plain] = await generateOn(model, [prompts[0]!], { maxNewTokens: 1, logprobs: 96 }, 'host');
    const raw77 = plain!.logprobs![0]!.top.find((t) => t.id === 77)!.logprob;
    assert.ok(Math.abs(forced!.logprobs![0]!.logprob - raw77) <= 1e-5, `${forced!.logprobs![0]!.logprob} vs raw ${raw77}`);
  });

  it('refuses ids outside the vocabulary, non-finite biases, and a bias or logprobs with beam search, naming the option', async () => {
    await assert.rejects(generate(model, null, prompts, { logitBias: new Map([[97, 1]]) }), /logitBias has token id 97, outside the vocabulary \[0, 97\)/);
    await assert.rejects(generate(model, null, prompts, { logitBias: new Map([[3, Number.NaN]]) }), /logitBias of token 3 should be a finite number/);
    await assert.rejects(generate(model, null, prompts, { logitBias: new Map([[3, 1]]), numBeams: 2 }), /logitBias applies to greedy decoding and sampling, not beam search/);
    await assert.rejects(generate(model, null, prompts, { logprobs: 2, numBeams: 2 }), /logprobs apply to greedy decoding and sampling, not beam search/);
    await assert.rejects(generate(model, null, prompts, { logprobs: 98 }), /logprobs should be an integer in \[0, 97\]/);
  });
});
