// Sampled decoding picked on the GPU one step ahead against decoding step by step: the same tokens and
// stream for the same seed (rows ending at different steps by EOS, stop strings or length; top-k and
// top-p on and off), the next step queued before a step's ids are read, and each row's k-th token drawn
// with its own uniform, as the host's float64 sampling (and repetition penalty) draws from the same logits.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { initWebGPU, noGrad, readyMatmul, runtimeStats, tensor } from '@huatuo/tensor';
import { configFromPreset, createRandomLlama, generate, llamaTokenizerDir, loadLlama, loadTokenizer, type GenerateOptions, type Generation, type LlamaModel, type TokenEvent, type Tokenizer } from '@huatuo/llama';
import { applyRepetitionPenalty, sampleToken, setDecodePipelined, setHostPicks, tokenUniforms } from '@huatuo/llama/internal';
import { refSampleProbs } from '@huatuo/tensor';
import { fixtureDir } from './fixtures.js';

interface Run {
  out: { tokens: readonly number[]; text: string; finishReason: string }[];
  events: TokenEvent[];
  /** Dispatches since the start when each token was streamed, and in all. */
  dispatchesAt: number[];
  dispatches: number;
}

async function run(model: LlamaModel, tokenizer: Tokenizer | null, prompts: string[] | number[][], pipelined: boolean, options: GenerateOptions): Promise<Run> {
  setDecodePipelined(pipelined);
  try {
    const s0 = runtimeStats();
    const events: TokenEvent[] = [];
    const dispatchesAt: number[] = [];
    const onToken = (e: TokenEvent) => {
      events.push(e);
      dispatchesAt.push(runtimeStats().dispatches - s0.dispatches);
    };
    const out = await generate(model, tokenizer, prompts, { doSample: true, ...options, onToken });
    return { out: out.map((o) => ({ tokens: o.tokens, text: o.text, finishReason: o.finishReason })), events, dispatchesAt, dispatches: runtimeStats().dispatches - s0.dispatches };
  } finally {
    setDecodePipelined(true);
  }
}

async function both(model: LlamaModel, tokenizer: Tokenizer | null, prompts: string[] | number[][], options: GenerateOptions): Promise<{ ahead: Run; stepwise: Run }> {
  const stepwise = await run(model, tokenizer, prompts, false, options);
  const ahead = await run(model, tokenizer, prompts, true, options);
  assert.deepEqual(ahead.out, stepwise.out);
  assert.deepEqual(ahead.events, stepwise.events);
  return { ahead, stepwise };
}

const WARPERS: GenerateOptions[] = [
  { temperature: 1, topK: 0, topP: 1 },
  { temperature: 0.7, topK: 40, topP: 0.9 },
  { temperature: 1.3, topK: 5, topP: 1 },
  { temperature: 0.8, topK: 0, topP: 0.6 },
  { temperature: 0.7, topK: 40, topP: 0.9, repetitionPenalty: 1.3 },
  { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 0.8 },
];

describe('sampled decoding one step ahead', () => {
  let model: LlamaModel;
  const prompts = [[5, 17, 33, 2, 9], [40, 41], [7, 8, 60, 61, 62, 63, 64]];

  before(async () => {
    await initWebGPU();
    await readyMatmul();
    model = createRandomLlama(configFromPreset('tiny', { vocabSize: 97 }), { seed: 3, std: 0.5 });
  });

  after(() => model.dispose());

  it('gives the step-by-step tokens and stream for the same seed, rows ending by EOS at different steps, with and without top-k, top-p and a repetition penalty', async () => {
    for (const [i, w] of WARPERS.entries()) {
      const free = (await run(model, null, prompts, false, { ...w, seed: 11 + i, maxNewTokens: 10, eosTokenIds: [] })).out;
      const { ahead } = await both(model, null, prompts, { ...w, seed: 11 + i, maxNewTokens: 10, eosTokenIds: [free[0]!.tokens[2]!, free[1]!.tokens[5]!] });
      const lengths = ahead.out.map((o) => o.tokens.length);
      assert.ok(new Set(lengths).size >= 2, `${JSON.stringify(w)}: rows should end at different steps, got lengths ${lengths}`);
      assert.ok(ahead.out.some((o) => o.finishReason === 'eos'));
    }
  });

  it('queues the next step before the ids of a step are read, and encodes no step past maxNewTokens', async () => {
    const options = { temperature: 0.7, topK: 40, topP: 0.9, seed: 4, eosTokenIds: [] };
    const one = await run(model, null, prompts, false, { ...options, maxNewTokens: 1 });
    const two = await run(model, null, prompts, false, { ...options, maxNewTokens: 2 });
    const { ahead, stepwise } = await both(model, null, prompts, { ...options, maxNewTokens: 6 });
    assert.equal(stepwise.dispatchesAt[0], one.dispatches);
    assert.equal(ahead.dispatchesAt[0], two.dispatches, 'the second step was not encoded before the first step\'s ids were read');
    assert.equal(ahead.dispatches, stepwise.dispatches);
  });

  it('draws row b\'s k-th token with its own uniform: the host\'s float64 sampling of the same logits picks the same tokens', async () => {
    const w = { temperature: 0.9, topK: 30, topP: 0.95 };
    const seed = 7;
    const penalty = 1.2;
    const { ahead } = await both(model, null, prompts, { ...w, seed, repetitionPenalty: penalty, maxNewTokens: 8, eosTokenIds: [] });
    const u = tokenUniforms(seed, prompts.length, 8);
    let compared = 0;
    for (const [b, p] of prompts.entries()) {
      // The row alone, without a cache: the logits at each position that predicted a new token.
      const seq = [...p, ...ahead.out[b]!.tokens];
      const logits = (await noGrad(() => model.forward(tensor(Int32Array.from(seq), [1, seq.length]))).toArray()) as Float32Array;
      const V = model.config.vocabSize;
      for (let k = 0; k < 8; k++) {
        const row = Float64Array.from(logits.subarray((p.length - 1 + k) * V, (p.length + k) * V));
        applyRepetitionPenalty(row, seq.slice(0, p.length + k), penalty);
        const probs = refSampleProbs(row, w);
        const total = probs.reduce((a, c) => a + c, 0);
        let run = 0;
        // Logits of a cached step and of a whole-sequence forward differ in rounding: skip uniforms near a boundary.
        if (probs.some((q) => q > 0 && Math.abs((run += q) / total - u[k * prompts.length + b]!) < 1e-3)) continue;
        compared++;
        assert.equal(ahead.out[b]!.tokens[k], sampleToken(row, w, u[k * prompts.length + b]!), `row ${b} token ${k}`);
      }
    }
    assert.ok(compared >= 16, `only ${compared} of 24 tokens away from a boundary`);
  });

  it('reports each row\'s end as it ends, after its last token and before the other rows\' later tokens, with what generate returns for it', async () => {
    const options = { doSample: true, temperature: 0.9, seed: 5, maxNewTokens: 8, eosTokenIds: [] };
    const free = (await run(model, null, prompts, true, options)).out;
    for (const pipelined of [true, false]) {
      const order: string[] = [];
      const ended: Generation[] = [];
      setDecodePipelined(pipelined);
      try {
        const out = await generate(model, null, prompts, {
          ...options,
          eosTokenIds: [free[1]!.tokens[2]!],
          onToken: (e) => order.push(`token ${e.prompt}`),
          onFinish: (e) => {
            order.push(`end ${e.prompt}`);
            ended[e.prompt] = e.generation;
          },
        });
        assert.deepEqual(ended, out, `pipelined ${pipelined}`);
        // Row 1 ends by this end of sequence by its third token; row 0 goes on.
        const end = order.indexOf('end 1');
        assert.equal(order[end - 1], 'token 1');
        assert.ok(order.slice(end + 1).some((e) => e === 'token 0'), `pipelined ${pipelined}: ${order.join(', ')}`);
        assert.equal(order.filter((e) => e.startsWith('end')).length, prompts.length);
      } finally {
        setDecodePipelined(true);
      }
    }
  });

  it('reads back each step\'s ids, never the logits, with top-k, top-p and a repetition penalty', async () => {
    const before = runtimeStats().readbackBytes;
    const r = await run(model, null, prompts, true, { temperature: 0.7, topK: 40, topP: 0.9, repetitionPenalty: 1.3, seed: 2, maxNewTokens: 8, eosTokenIds: [] });
    const read = runtimeStats().readbackBytes - before;
    assert.equal(r.out[0]!.tokens.length, 8);
    assert.ok(read <= 8 * prompts.length * 4, `read back ${read} bytes in 8 steps of ${prompts.length} ids`);
  });

  it('gives the tokens of picking on the host from the logits read back (float64), for the same seed', async () => {
    for (const [i, w] of [...WARPERS, { doSample: false, repetitionPenalty: 1.3 }].entries()) {
      const options = { ...w, seed: 31 + i, maxNewTokens: 8, eosTokenIds: [] };
      const gpu = await run(model, null, prompts, true, options);
      setHostPicks(true);
      try {
        const host = await run(model, null, prompts, false, options);
        assert.deepEqual(host.out, gpu.out, JSON.stringify(w));
      } finally {
        setHostPicks(false);
      }
    }
  });

  it('a row\'s tokens do not depend on the other rows: alone it samples what it samples in a batch', async () => {
    const options = { temperature: 1, topK: 0, topP: 0.9, seed: 21, maxNewTokens: 6, eosTokenIds: [] };
    const batch = await run(model, null, prompts, true, options);
    const seeds = await run(model, null, [prompts[0]!], true, options);
    assert.deepEqual(seeds.out[0]!.tokens, batch.out[0]!.tokens);
    const other = await run(model, null, prompts, true, { ...options, seed: 22 });
    assert.notDeepEqual(other.out.map((o) => o.tokens), batch.out.map((o) => o.tokens));
  });

  it('stops at stop strings with a tokenizer as step by step, rows cut at different steps', async () => {
    const tok = await loadTokenizer(llamaTokenizerDir());
    const m = await loadLlama(fixtureDir('vocab32k'));
    try {
      const texts = ['问题：感冒了怎么办？', '问题：头痛'];
      const options = { temperature: 0.7, topK: 40, topP: 0.9, seed: 3, maxNewTokens: 8, eosTokenIds: [] };
      const first = await run(m, tok, texts, false, options);
      const stop = tok.decode(first.out[0]!.tokens.slice(3, 5), { skipSpecialTokens: true }).trim();
      assert.ok(stop.length > 0 && !first.out[1]!.text.includes(stop));
      const { ahead } = await both(m, tok, texts, { ...options, stopStrings: [stop] });
      assert.deepEqual(ahead.out.map((o) => o.finishReason), ['stop', 'length']);
    } finally {
      m.dispose();
    }
  });
});
