// generate's promptLogprobs: the prompts' tokens scored from the prompt step's own forward pass (left-padded
// rows of different lengths, equal prompts scored once), as each prompt scored alone gives them, on the GPU
// and host-pick paths, with generation itself unchanged; the prompt's scores reach onPromptLogprobs before its
// first token; the tokens' ranks, ties counted against the token as vLLM counts them.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyInto, initWebGPU, noGrad, readyMatmul, slice, tensor, toArray, type RowLogprobs } from '@huatuo/tensor';
import { configFromPreset, createRandomLlama, generate, ModelError, promptLogprobs, type GenerateOptions, type Generation, type LlamaModel } from '@huatuo/llama';
import { setHostPicks } from '@huatuo/llama/internal';

// Rows padded on the left attend through a mask in a batch of 4, the prompt alone in a batch of 1 without one:
// other kernels, whose orders of summation may move a log-probability by a few f32 ulps.
const SAME = 1e-5;

describe('prompt log-probabilities from the prompt step', () => {
  let model: LlamaModel;
  const prompts = [[14, 29, 14, 3], [40, 41], [7, 8, 60, 61, 62, 9], [14, 29, 14, 3], [5]];
  const P = 6;

  before(async () => {
    await initWebGPU();
    await readyMatmul();
    model = createRandomLlama(configFromPreset('tiny', { vocabSize: 97 }), { seed: 5, std: 0.05 });
  });

  after(() => model.dispose());

  /** generate on a path, counting the forward passes over the P positions of the prompt step. */
  async function run(options: GenerateOptions, where: 'gpu' | 'host'): Promise<{ gens: Generation[]; forwards: number }> {
    setHostPicks(where === 'host');
    let forwards = 0;
    const hiddenStates = model.hiddenStates;
    model.hiddenStates = (ids, o) => {
      if (ids.shape[1] === P) forwards++;
      return hiddenStates.call(model, ids, o);
    };
    try {
      const gens = await generate(model, null, prompts, { eosTokenIds: [], maxNewTokens: 4, ...options });
      return { gens, forwards };
    } finally {
      Reflect.deleteProperty(model, 'hiddenStates');
      setHostPicks(false);
    }
  }

  const near = (got: RowLogprobs | null, want: RowLogprobs | null, what: string) => {
    if (want === null) return assert.equal(got, null, what);
    assert.ok(got !== null, what);
    assert.equal(got.id, want.id, what);
    assert.ok(Math.abs(got.logprob - want.logprob) <= SAME, `${what}: ${got.logprob}, alone ${want.logprob}`);
    assert.deepEqual(got.top.map((e) => e.id), want.top.map((e) => e.id), what);
    got.top.forEach((e, j) => assert.ok(Math.abs(e.logprob - want.top[j]!.logprob) <= SAME, `${what}: top ${j}`));
  };

  for (const where of ['gpu', 'host'] as const) {
    for (const options of [{ doSample: false, logprobs: 2 }, { doSample: true, temperature: 0.8, topK: 0, seed: 4 }] as GenerateOptions[]) {
      it(`scores every prompt in the one prompt step, as alone, leaving generation as it was (${where}, ${JSON.stringify(options)})`, async () => {
        const plain = await run(options, where);
        const events: string[] = [];
        const scored = await run(
          {
            ...options,
            promptLogprobs: 3,
            onPromptLogprobs: (e) => events.push(`prompt ${e.prompt}: ${e.logprobs.length}`),
            onToken: (e) => events.push(`token ${e.prompt}`),
          },
          where,
        );
        assert.equal(scored.forwards, 1, 'one forward pass over the prompts');
        assert.deepEqual(
          scored.gens.map((g) => [g.tokens, g.text, g.finishReason, g.logprobs]),
          plain.gens.map((g) => [g.tokens, g.text, g.finishReason, g.logprobs]),
          'the same tokens and token log-probabilities',
        );
        for (const [b, p] of prompts.entries()) {
          const alone = await promptLogprobs(model, p, 3);
          const rows = scored.gens[b]!.promptLogprobs!;
          assert.equal(rows.length, p.length);
          rows.forEach((row, t) => near(row, alone[t]!, `prompt ${b}, token ${t}`));
        }
        assert.equal(scored.gens[3]!.promptLogprobs, scored.gens[0]!.promptLogprobs, 'equal prompts are scored once');
        // Every prompt's scores come once, before any token.
        assert.deepEqual(events.slice(0, prompts.length), prompts.map((p, b) => `prompt ${b}: ${p.length}`));
        assert.ok(events.slice(prompts.length).every((e) => e.startsWith('token ')));
      });
    }
  }

  it('refuses promptLogprobs with beams or out of range, and onPromptLogprobs without promptLogprobs', async () => {
    for (const [options, pattern] of [
      [{ numBeams: 2, promptLogprobs: 1 }, /promptLogprobs apply to greedy decoding and sampling, not beam search/],
      [{ promptLogprobs: 98 }, /promptLogprobs should be an integer in \[0, 97\]/],
      [{ promptLogprobs: -1 }, /promptLogprobs should be an integer/],
      [{ onPromptLogprobs: () => {} }, /give promptLogprobs too/],
      [{ promptRanks: true }, /promptRanks goes with the prompts' scores/],
    ] as [GenerateOptions, RegExp][]) {
      await assert.rejects(generate(model, null, [[1, 2]], { maxNewTokens: 1, ...options }), (e: Error) => e instanceof ModelError && pattern.test(e.message), JSON.stringify(options));
    }
  });

  it('ranks each prompt token as vLLM does: the tokens whose logit is at least its own, itself and its ties included', async () => {
    const tied = createRandomLlama(configFromPreset('tiny', { vocabSize: 97 }), { seed: 6, std: 0.05 });
    try {
      // Tokens 12 and 40 get the same lm_head row: equal logits at every position.
      const W = tied.lmHead.parts[0]!; // [V, C]
      const C = W.shape[1]!;
      const weights = (await toArray(W)) as Float32Array;
      copyInto(slice(W, 0, 40, 41), tensor(weights.slice(12 * C, 13 * C), [1, C]));
      const prompt = [5, 12, 40, 7, 40, 12, 3];
      const V = tied.config.vocabSize;
      const logits = noGrad(() => tied.forward(tensor(Int32Array.from(prompt), [1, prompt.length], { dtype: 'i32' })));
      const host = (await toArray(logits)) as Float32Array;
      logits.dispose();
      for (const ranks of [await promptLogprobs(tied, prompt, 2, { ranks: true }), (await generate(tied, null, [prompt], { maxNewTokens: 1, promptLogprobs: 2, promptRanks: true }))[0]!.promptLogprobs!]) {
        for (let t = 1; t < prompt.length; t++) {
          const row = host.subarray((t - 1) * V, t * V);
          const own = row[prompt[t]!]!;
          assert.equal(row[12], row[40], `position ${t - 1}: the tie`);
          assert.equal(ranks[t]!.rank, row.filter((v) => v >= own).length, `token ${t}`);
        }
      }
    } finally {
      tied.dispose();
    }
  });
});
