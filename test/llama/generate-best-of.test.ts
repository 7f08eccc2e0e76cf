// best_of's ranking on the GPU: generate's cumulativeLogprob summed beside the GPU's picks (one step ahead and
// step by step) against the host's float64 picking from the logits read back, on the vocab32k fixture in f32
// and f16 with the penalties, logit_bias, top-k and top-p, rows ending by a stop string, an end-of-sequence
// id and max_tokens at different steps: the same tokens, texts and ends, sums within rounding, the same
// best_of choices; and only the ids a step, then one number a row, read back.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { hasF16, initWebGPU, runtimeStats } from '@huatuo/tensor';
import { generate, llamaTokenizerDir, loadLlama, loadTokenizer, type GenerateOptions, type Generation, type LlamaModel, type Tokenizer } from '@huatuo/llama';
import { lastReplayCounts, setDecodePipelined, setHostPicks } from '@huatuo/llama/internal';
import { fixtureDir } from './fixtures.js';

type Path = 'gpu' | 'gpu-stepwise' | 'host';

async function generateOn(model: LlamaModel, tokenizer: Tokenizer, prompts: number[][], options: GenerateOptions, path: Path): Promise<{ out: Generation[]; readbackBytes: number }> {
  setHostPicks(path === 'host');
  setDecodePipelined(path === 'gpu');
  try {
    const before = runtimeStats().readbackBytes;
    const out = await generate(model, tokenizer, prompts, options);
    return { out, readbackBytes: runtimeStats().readbackBytes - before };
  } finally {
    setHostPicks(false);
    setDecodePipelined(true);
  }
}

/** vLLM V0's best_of: the n sequences of the highest cumulative log-probability, ties in order. */
function bestOf(out: readonly Generation[], n: number): number[] {
  return out
    .map((g, i) => ({ i, lp: g.cumulativeLogprob! }))
    .sort((a, b) => b.lp - a.lp)
    .slice(0, n)
    .map((e) => e.i);
}

describe('best_of ranked on the GPU', () => {
  let tokenizer: Tokenizer;

  before(async () => {
    await initWebGPU();
    tokenizer = await loadTokenizer(llamaTokenizerDir());
  });

  for (const dtype of ['f32', 'f16'] as const) {
    it(`${dtype}: the GPU's picks and sums give the host's tokens, ends and best_of choices, reading back only ids and one sum a row`, async (t) => {
      if (dtype === 'f16' && !hasF16()) return t.skip('adapter lacks shader-f16');
      const model = await loadLlama(fixtureDir('vocab32k'), { dtype });
      try {
        const prompt = tokenizer.encode('问题：感冒了怎么办？');
        // best_of 6: the prompt six times, sequence i seeded with 11 + i as serve seeds them.
        const B = 6;
        const prompts = Array.from({ length: B }, () => prompt);
        const options: GenerateOptions = {
          doSample: true,
          temperature: 0.8,
          topK: 40,
          topP: 0.9,
          repetitionPenalty: 1.3,
          frequencyPenalty: 0.5,
          presencePenalty: 0.3,
          logitBias: new Map([[prompt[3]!, 2]]),
          maxNewTokens: 10,
          seeds: prompts.map((_, i) => 11 + i),
          eosTokenIds: [],
        };
        // A stop string from sequence 0's text and an end-of-sequence id from sequence 1's tokens end them early.
        const { out: probe } = await generateOn(model, tokenizer, prompts, options, 'gpu');
        const stop = tokenizer.decode(probe[0]!.tokens.slice(3, 5), { skipSpecialTokens: true }).trim();
        const eos = probe[1]!.tokens[5]!;
        assert.ok(stop.length > 0 && !probe[0]!.tokens.slice(0, 5).includes(eos));
        const ended = { ...options, stopStrings: [stop], eosTokenIds: [eos], cumulativeLogprob: true };

        const host = await generateOn(model, tokenizer, prompts, ended, 'host');
        const stepwise = await generateOn(model, tokenizer, prompts, ended, 'gpu-stepwise');
        const ahead = await generateOn(model, tokenizer, prompts, ended, 'gpu');
        const replays = lastReplayCounts()!;

        const reasons = host.out.map((g) => g.finishReason);
        assert.ok(reasons.includes('stop') && reasons.includes('eos') && reasons.includes('length'), reasons.join());
        assert.ok(new Set(host.out.map((g) => g.tokens.length)).size >= 3, 'rows end at different steps');
        for (const [name, run] of [['one step ahead', ahead], ['step by step', stepwise]] as const) {
          assert.deepEqual(run.out.map((g) => g.tokens), host.out.map((g) => g.tokens), name);
          assert.deepEqual(run.out.map((g) => [g.text, g.finishReason]), host.out.map((g) => [g.text, g.finishReason]), name);
          run.out.forEach((g, b) => {
            const want = host.out[b]!.cumulativeLogprob!;
            assert.ok(Number.isFinite(want) && Math.abs(g.cumulativeLogprob! - want) <= 1e-4 * (1 + Math.abs(want)), `${name}, row ${b}: ${g.cumulativeLogprob}, host ${want}`);
          });
          for (const n of [1, 2, 3]) assert.deepEqual(bestOf(run.out, n), bestOf(host.out, n), `${name}: best ${n} of ${B}`);
        }
        // Each step's ids and each row's sum at the end, against the host's B * V logits a step.
        const ids = (options.maxNewTokens! + 1) * B * 4;
        assert.ok(ahead.readbackBytes <= ids + B * 4, `one step ahead read back ${ahead.readbackBytes} bytes`);
        assert.ok(stepwise.readbackBytes <= ids + B * 4, `step by step read back ${stepwise.readbackBytes} bytes`);
        assert.ok(host.readbackBytes >= B * model.config.vocabSize * 4 * 2);
        assert.ok(replays.replayed > 0 && replays.gaveUp === null, `decode steps replayed: ${JSON.stringify(replays)}`);
      } finally {
        model.dispose();
      }
    });
  }

  for (const dtype of ['f32', 'f16'] as const) {
    it(`${dtype}: with logprobs, one step ahead (replayed steps) gives step by step's tokens, log-probabilities, top tokens and sums, reading back k + 1 pairs a row a step beside the ids`, async (t) => {
      if (dtype === 'f16' && !hasF16()) return t.skip('adapter lacks shader-f16');
      const model = await loadLlama(fixtureDir('vocab32k'), { dtype });
      try {
        const prompt = tokenizer.encode('问题：感冒了怎么办？');
        const B = 5;
        const K = 3;
        const prompts = Array.from({ length: B }, () => prompt);
        const options: GenerateOptions = {
          doSample: true,
          temperature: 0.9,
          topK: 40,
          topP: 0.9,
          repetitionPenalty: 1.2,
          frequencyPenalty: 0.5,
          presencePenalty: 0.3,
          maxNewTokens: 10,
          seeds: prompts.map((_, i) => 21 + i),
          eosTokenIds: [],
          cumulativeLogprob: true,
          logprobs: K,
        };
        const { out: probe } = await generateOn(model, tokenizer, prompts, options, 'gpu-stepwise');
        const stop = tokenizer.decode(probe[0]!.tokens.slice(3, 5), { skipSpecialTokens: true }).trim();
        const eos = probe[1]!.tokens[6]!;
        assert.ok(stop.length > 0 && !probe[0]!.tokens.slice(0, 5).includes(eos));
        const ended = { ...options, stopStrings: [stop], eosTokenIds: [eos] };

        const stepwise = await generateOn(model, tokenizer, prompts, ended, 'gpu-stepwise');
        const prior = lastReplayCounts();
        const ahead = await generateOn(model, tokenizer, prompts, ended, 'gpu');
        const replays = lastReplayCounts()!;
        const host = await generateOn(model, tokenizer, prompts, ended, 'host');

        const reasons = stepwise.out.map((g) => g.finishReason);
        assert.ok(reasons.includes('stop') && reasons.includes('eos') && reasons.includes('length'), reasons.join());
        assert.deepEqual(ahead.out.map((g) => g.tokens), stepwise.out.map((g) => g.tokens));
        assert.deepEqual(ahead.out.map((g) => [g.text, g.finishReason]), stepwise.out.map((g) => [g.text, g.finishReason]));
        ahead.out.forEach((g, b) => {
          assert.equal(g.logprobs!.length, g.tokens.length, `row ${b}: one entry a token`);
          assert.deepEqual(g.logprobs, stepwise.out[b]!.logprobs, `row ${b}: the same log-probabilities and top tokens`);
          assert.equal(g.cumulativeLogprob, stepwise.out[b]!.cumulativeLogprob, `row ${b}: the same sum`);
          assert.deepEqual(g.logprobs!.map((e) => e.id), g.tokens, `row ${b}: each entry is its token's`);
        });
        // The host's float64 reference picks the same tokens from the logits read back.
        assert.deepEqual(host.out.map((g) => g.tokens), stepwise.out.map((g) => g.tokens), 'host picks');
        for (const n of [1, 2]) assert.deepEqual(bestOf(ahead.out, n), bestOf(host.out, n), `best ${n} of ${B}`);
        assert.notEqual(replays, prior, 'decoded one step ahead');
        assert.ok(replays.replayed > 0 && replays.gaveUp === null, `decode steps replayed: ${JSON.stringify(replays)}`);
        const perStep = B * 4 + B * (K + 1) * 2 * 4;
        assert.ok(ahead.readbackBytes <= (options.maxNewTokens! + 1) * perStep + B * 4, `one step ahead read back ${ahead.readbackBytes} bytes`);
      } finally {
        model.dispose();
      }
    });
  }
});
