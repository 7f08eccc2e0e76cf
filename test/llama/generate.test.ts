// Generation against the reference script's ids: greedy (batched, left-padded prompts), greedy
// with repetition penalty, 4-beam search; stop strings and streaming with LLaMA's tokenizer;
// the sampling warpers' properties.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { initWebGPU, readyMatmul, runtimeStats } from '@huatuo/tensor';
import { generate, llamaTokenizerDir, loadLlama, loadTokenizer, type LlamaModel, type TokenEvent } from '@huatuo/llama';
import { sampleToken, topIndices } from '@huatuo/llama/internal';
import { fixtureDir, readReference } from './fixtures.js';

describe('generate against the reference decoding', () => {
  let model: LlamaModel;
  const ref = readReference('gqa');
  const g = ref.generation!;

  before(async () => {
    await initWebGPU();
    model = await loadLlama(fixtureDir('gqa'));
  });

  it('greedy decoding of a batch of prompts of different lengths gives the reference ids, stopping at EOS', async () => {
    const streamed: TokenEvent[] = [];
    const out = await generate(model, null, g.prompts, { maxNewTokens: g.maxNewTokens, onToken: (e) => streamed.push(e) });
    assert.deepEqual(out.map((o) => o.tokens), g.greedy);
    assert.equal(out[0]!.finishReason, 'eos');
    assert.equal(out[0]!.tokens.at(-1), g.eosTokenId);
    assert.equal(out[1]!.finishReason, 'length');
    for (const [i, o] of out.entries()) assert.deepEqual(streamed.filter((e) => e.prompt === i).map((e) => e.token), o.tokens);
  });

  it('greedy decoding picks tokens on the GPU: it reads back each step\'s ids, never the logits', async () => {
    await readyMatmul(); // no search reading back its checks meanwhile
    const before = runtimeStats().readbackBytes;
    const out = await generate(model, null, g.prompts, { maxNewTokens: g.maxNewTokens });
    assert.deepEqual(out.map((o) => o.tokens), g.greedy);
    const steps = Math.max(...out.map((o) => o.tokens.length));
    const read = runtimeStats().readbackBytes - before;
    assert.ok(read <= steps * g.prompts.length * 4, `read back ${read} bytes in ${steps} steps of ${g.prompts.length} ids (one row of logits is ${model.config.vocabSize * 4})`);
  });

  it('greedy decoding with repetition penalty 1.3 gives the reference ids', async () => {
    const out = await generate(model, null, g.prompts, { maxNewTokens: g.maxNewTokens, repetitionPenalty: g.repetitionPenalty });
    assert.deepEqual(out.map((o) => o.tokens), g.greedyRepetitionPenalty);
  });

  it('4-beam search gives the reference ids (HuaTuo sampling settings are ignored without doSample, as in HF)', async () => {
    const out = await generate(model, null, g.prompts, { maxNewTokens: g.beamMaxNewTokens, numBeams: g.numBeams, temperature: 0.1, topP: 0.75, topK: 40 });
    assert.deepEqual(out.map((o) => o.tokens), g.beam);
  });

  it('sampling with topK 1 is greedy decoding, whatever the seed and temperature', async () => {
    const out = await generate(model, null, g.prompts, { maxNewTokens: g.maxNewTokens, doSample: true, topK: 1, temperature: 0.7, seed: 5 });
    assert.deepEqual(out.map((o) => o.tokens), g.greedy);
  });

  it('stops at a stop string, cuts the text before it, and streams text that adds up to the result', async () => {
    const tok = await loadTokenizer(llamaTokenizerDir());
    const m = await loadLlama(fixtureDir('vocab32k'));
    try {
      const first = await generate(m, tok, '问题：感冒了怎么办？', { maxNewTokens: 12, eosTokenIds: [] });
      assert.equal(first[0]!.finishReason, 'length');
      assert.equal(first[0]!.tokens.length, 12);
      assert.equal(first[0]!.text, tok.decode(first[0]!.tokens, { skipSpecialTokens: true }));
      // A stop string made of the text of the 3rd and 4th generated tokens.
      const stop = tok.decode(first[0]!.tokens.slice(2, 4), { skipSpecialTokens: true }).trim();
      assert.ok(stop.length > 0);
      let streamed = '';
      const out = await generate(m, tok, '问题：感冒了怎么办？', { maxNewTokens: 12, eosTokenIds: [], stopStrings: [stop], onToken: (e) => (streamed += e.text) });
      assert.equal(out[0]!.finishReason, 'stop');
      assert.ok(out[0]!.tokens.length <= 4);
      assert.equal(out[0]!.text, first[0]!.text.slice(0, first[0]!.text.indexOf(stop)));
      assert.ok(streamed.startsWith(out[0]!.text));
    } finally {
      m.dispose();
    }
  });

  it("of two stop strings one token completes, the first in stopStrings ends the text, cut at it, as vLLM's StopChecker picks it", async () => {
    const tok = await loadTokenizer(llamaTokenizerDir());
    const m = await loadLlama(fixtureDir('vocab32k'));
    try {
      const pieces: string[] = [];
      await generate(m, tok, '问题：感冒了怎么办？', { maxNewTokens: 12, eosTokenIds: [], onToken: (e) => pieces.push(e.text) });
      // A token whose text starts and ends with characters the text before it does not hold.
      const k = pieces.findIndex((p, i) => {
        const chars = [...p];
        const before = pieces.slice(0, i).join('');
        return chars.length >= 2 && chars[0] !== chars.at(-1) && !before.includes(chars[0]!) && !before.includes(chars.at(-1)!) && !p.slice(0, -1).includes(chars.at(-1)!);
      });
      assert.ok(k >= 0, `no token of two distinct new characters in ${JSON.stringify(pieces)}`);
      const before = pieces.slice(0, k).join('');
      const [first, last] = [[...pieces[k]!][0]!, [...pieces[k]!].at(-1)!];
      for (const stops of [[last, first], [first, last]]) {
        const ends: (string | undefined)[] = [];
        const [out] = await generate(m, tok, '问题：感冒了怎么办？', { maxNewTokens: 12, eosTokenIds: [], stopStrings: stops, onToken: (e) => ends.push(e.finishReason) });
        assert.equal(out!.stopString, stops[0]);
        assert.equal(out!.text, before + pieces[k]!.slice(0, pieces[k]!.indexOf(stops[0]!)));
        assert.equal(out!.tokens.length, k + 1);
        assert.deepEqual(ends, [...Array<undefined>(k).fill(undefined), 'stop'], 'the last token carries the finish reason');
      }
    } finally {
      m.dispose();
    }
  });

  it('sampling only draws tokens inside the top-k set and the top-p nucleus', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: -5, max: 5, noNaN: true }), { minLength: 2, maxLength: 40 }),
        fc.integer({ min: 1, max: 10 }),
        fc.double({ min: 0.05, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 0.999999, noNaN: true }),
        (values, k, p, u) => {
          const scores = Float64Array.from(values);
          const t = sampleToken(scores, { temperature: 1, topK: k, topP: 1 }, u);
          const kth = scores[topIndices(scores, Math.min(k, scores.length))[Math.min(k, scores.length) - 1]!]!;
          assert.ok(scores[t]! >= kth, `token ${t} (score ${scores[t]}) is outside the top ${k}`);
          const n = sampleToken(scores, { temperature: 1, topK: 0, topP: p }, u);
          // The nucleus: tokens whose strictly-more-likely mass is below p. Probabilities equal to
          // within float64 rounding (scores 1e-16 apart) are ties, which either order may break.
          const probs = Array.from(scores, Math.exp);
          const z = probs.reduce((a, b) => a + b, 0);
          const above = probs.filter((q) => q > probs[n]! * (1 + 1e-12)).reduce((a, b) => a + b, 0) / z;
          assert.ok(above < p + 1e-9, `token ${n} lies outside the top-p ${p} nucleus (mass above it ${above})`);
        },
      ),
    );
  });
});
