// OpenAI's frequency and presence penalties in generate: applied on the GPU (counts of each row's generated
// tokens, incremented with its picks) as the host applies them to the logits read back, greedy and sampled;
// a strong presence penalty breaks a greedy repetition loop; zero penalties add no dispatch; bad values refused.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { initWebGPU, readyMatmul, runtimeStats } from '@huatuo/tensor';
import { configFromPreset, createRandomLlama, generate, type GenerateOptions, type LlamaModel } from '@huatuo/llama';
import { generateOn, type DecodePath } from './decode-paths.js';

const tokens = async (model: LlamaModel, prompts: number[][], options: GenerateOptions, path: DecodePath) => (await generateOn(model, prompts, options, path)).map((g) => g.tokens);

describe('frequency and presence penalties', () => {
  let model: LlamaModel;
  // Greedy decoding of this model falls into loops (prompt [40, 41] ends repeating token 30).
  const prompts = [[14, 29, 14], [40, 41], [7, 8, 60, 61, 62]];

  before(async () => {
    await initWebGPU();
    await readyMatmul();
    model = createRandomLlama(configFromPreset('tiny', { vocabSize: 97 }), { seed: 5, std: 0.05 });
  });

  after(() => model.dispose());

  it('a presence penalty of 2 stops a greedy repetition loop: no generated token repeats', async () => {
    const [, plain] = await tokens(model, prompts, { maxNewTokens: 24 }, 'gpu');
    assert.deepEqual(plain!.slice(-8), new Array(8).fill(plain!.at(-1)), `greedy decoding should loop on one token, got ${plain}`);
    const [, penalized] = await tokens(model, prompts, { maxNewTokens: 24, presencePenalty: 2 }, 'gpu');
    assert.equal(new Set(penalized).size, 24, `a token repeats: ${penalized}`);
  });

  const cases: GenerateOptions[] = [
    { doSample: false, presencePenalty: 2 },
    { doSample: false, frequencyPenalty: 0.9, presencePenalty: 0.4 },
    { doSample: false, frequencyPenalty: -0.6, presencePenalty: 1.1, repetitionPenalty: 1.3 },
    { doSample: true, temperature: 0.9, topK: 0, topP: 1, frequencyPenalty: 1.5, presencePenalty: 0.5, seed: 3 },
    { doSample: true, temperature: 0.7, topK: 40, topP: 0.9, frequencyPenalty: 0.8, presencePenalty: -0.3, repetitionPenalty: 1.2, seed: 8 },
  ];

  it('the GPU, one step ahead or step by step, picks the tokens the host picks from the logits read back (float64)', async () => {
    for (const c of cases) {
      const options = { ...c, maxNewTokens: 16 };
      const host = await tokens(model, prompts, options, 'host');
      assert.deepEqual(await tokens(model, prompts, options, 'gpu'), host, `one step ahead, ${JSON.stringify(c)}`);
      assert.deepEqual(await tokens(model, prompts, options, 'gpu-stepwise'), host, `step by step, ${JSON.stringify(c)}`);
      const unpenalized = await tokens(model, prompts, { ...options, frequencyPenalty: 0, presencePenalty: 0 }, 'gpu');
      assert.notDeepEqual(host, unpenalized, `${JSON.stringify(c)} should change some token`);
    }
  });

  it('penalties of 0 add no dispatch; non-zero ones add the penalty and the count of each step', async () => {
    const dispatches = async (options: GenerateOptions) => {
      const s0 = runtimeStats().dispatches;
      await tokens(model, prompts, { maxNewTokens: 6, ...options }, 'gpu');
      return runtimeStats().dispatches - s0;
    };
    const none = await dispatches({});
    assert.equal(await dispatches({ frequencyPenalty: 0, presencePenalty: 0 }), none);
    assert.equal(await dispatches({ presencePenalty: 0.5 }), none + 2 * 6);
  });

  it('refuses penalties outside [-2, 2] and non-zero penalties with beam search, naming the option', async () => {
    await assert.rejects(generate(model, null, prompts, { frequencyPenalty: 2.5 }), /frequencyPenalty should be in \[-2, 2\].*got 2\.5/);
    await assert.rejects(generate(model, null, prompts, { presencePenalty: Number.NaN }), /presencePenalty should be in \[-2, 2\]/);
    await assert.rejects(generate(model, null, prompts, { presencePenalty: 0.5, numBeams: 2 }), /presencePenalty applies to greedy decoding and sampling, not beam search; use numBeams 1/);
  });
});
