// generate's cumulativeLogprob (vLLM's cumulative_logprob, which best_of ranks by): the sum of each new
// token's log-probability under the distribution it was drawn from (logit bias, penalties, temperature,
// top-k, top-p), as the whole sequence's logits give it, with the tokens of the GPU's picks for the same seeds;
// summed in one dispatch a step, a greedy pick's log-probability taken in one more.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { hasF16, initWebGPU, noGrad, readyMatmul, refSampleProbs, runtimeStats, tensor } from '@huatuo/tensor';
import { configFromPreset, createRandomLlama, generate, ModelError, type GenerateOptions, type LlamaModel } from '@huatuo/llama';
import { applyFrequencyPresencePenalty, applyRepetitionPenalty, logSoftmaxRow, setDecodePipelined } from '@huatuo/llama/internal';

describe('cumulative log-probability of the picks', () => {
  let model: LlamaModel;
  const prompts = [[5, 17, 33, 2, 9], [40, 41], [5, 17, 33, 2, 9]];

  before(async () => {
    await initWebGPU();
    await readyMatmul();
    model = createRandomLlama(configFromPreset('tiny', { vocabSize: 97 }), { seed: 3, std: 0.5 });
  });

  after(() => model.dispose());

  /** Row `prompt` + `tokens`' sum, from one forward pass over the whole sequence. */
  async function expected(prompt: number[], tokens: readonly number[], o: GenerateOptions): Promise<number> {
    const seq = [...prompt, ...tokens];
    const logits = (await noGrad(() => model.forward(tensor(Int32Array.from(seq), [1, seq.length]))).toArray()) as Float32Array;
    const V = model.config.vocabSize;
    let sum = 0;
    for (const [k, token] of tokens.entries()) {
      const scores = Float64Array.from(logits.subarray((prompt.length - 1 + k) * V, (prompt.length + k) * V));
      for (const [t, b] of o.logitBias ?? []) scores[t] = scores[t]! + b;
      applyRepetitionPenalty(scores, seq.slice(0, prompt.length + k), o.repetitionPenalty ?? 1);
      applyFrequencyPresencePenalty(scores, tokens.slice(0, k), o.frequencyPenalty ?? 0, o.presencePenalty ?? 0);
      if (o.doSample !== true) sum += logSoftmaxRow(scores)[token]!;
      else {
        const p = refSampleProbs(scores, { temperature: o.temperature ?? 1, topK: o.topK ?? 50, topP: o.topP ?? 1 });
        sum += Math.log(p[token]! / p.reduce((a, q) => a + q, 0));
      }
    }
    return sum;
  }

  it('sums each token\'s log-probability under its warped, penalized distribution; the tokens are the GPU\'s', async () => {
    const cases: GenerateOptions[] = [
      {},
      { doSample: true, temperature: 0.7, topK: 40, topP: 0.9 },
      { doSample: true, temperature: 1.3, topK: 0, topP: 1, repetitionPenalty: 1.2, frequencyPenalty: 0.5, presencePenalty: 0.3, logitBias: new Map([[9, 2]]) },
    ];
    for (const o of cases) {
      const options = { ...o, maxNewTokens: 8, eosTokenIds: [], seeds: [4, 5, 6] };
      const plain = await generate(model, null, prompts, options);
      const ranked = await generate(model, null, prompts, { ...options, cumulativeLogprob: true });
      assert.deepEqual(ranked.map((g) => g.tokens), plain.map((g) => g.tokens), JSON.stringify(o));
      assert.ok(plain.every((g) => g.cumulativeLogprob === undefined));
      for (const [b, g] of ranked.entries()) {
        const want = await expected(prompts[b]!, g.tokens, o);
        assert.ok(g.cumulativeLogprob! < 0 && Math.abs(g.cumulativeLogprob! - want) < 1e-3, `${JSON.stringify(o)} row ${b}: ${g.cumulativeLogprob} vs ${want}`);
      }
    }
  });

  /** Dispatches a generation of `n` tokens a row takes with cumulativeLogprob beyond those it takes without. */
  const extra = async (m: LlamaModel, o: GenerateOptions, n: number) => {
    const options: GenerateOptions = { ...o, maxNewTokens: n, eosTokenIds: [], seeds: [4, 5, 6] };
    const start = runtimeStats().dispatches;
    await generate(m, null, prompts, options);
    const plain = runtimeStats().dispatches - start;
    await generate(m, null, prompts, { ...options, cumulativeLogprob: true });
    return runtimeStats().dispatches - start - 2 * plain;
  };

  /** Asserts that each of 4 more tokens a row costs `perStep` dispatches more ranked than unranked, one step ahead and step by step. */
  const assertPerStep = async (m: LlamaModel, o: GenerateOptions, perStep: number, what: string) => {
    for (const pipelined of [true, false]) {
      setDecodePipelined(pipelined);
      try {
        const [short, long] = [await extra(m, o, 8), await extra(m, o, 12)];
        assert.equal(long - short, 4 * perStep, `${what}, ${pipelined ? 'one step ahead' : 'step by step'}: ${short} dispatches more for 8 tokens, ${long} for 12`);
      } finally {
        setDecodePipelined(true);
      }
    }
  };

  it('adds to the sums in one dispatch a decoding step, one step ahead and step by step', async () => {
    await assertPerStep(model, { doSample: true, temperature: 0.7, topK: 40, topP: 0.9 }, 1, 'sampled');
  });

  it('takes a greedy pick\'s log-probability and adds it in two dispatches a decoding step, for f32 and f16 models alike', async () => {
    await assertPerStep(model, {}, 2, 'greedy f32');
    if (!hasF16()) return;
    const half = createRandomLlama(configFromPreset('tiny', { vocabSize: 97 }), { seed: 3, std: 0.5, dtype: 'f16' });
    try {
      await assertPerStep(half, { repetitionPenalty: 1.2 }, 2, 'greedy f16');
    } finally {
      half.dispose();
    }
  });

  it('is refused with beams', async () => {
    await assert.rejects(generate(model, null, [prompts[0]!], { numBeams: 2, cumulativeLogprob: true }), (e: unknown) => e instanceof ModelError && /cumulativeLogprob/.test(e.message));
  });
});
