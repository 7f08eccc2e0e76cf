// Greedy decoding one step ahead against decoding step by step: the same tokens and stream (batched
// rows ending at different steps by EOS, stop strings or length), the next step queued before a step's
// ids are read, no step past maxNewTokens, one submit per step, no buffer held or created per token.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { initWebGPU, readyMatmul, runtimeStats } from '@huatuo/tensor';
import { configFromPreset, createRandomLlama, generate, llamaTokenizerDir, loadLlama, loadTokenizer, type GenerateOptions, type LlamaModel, type TokenEvent, type Tokenizer } from '@huatuo/llama';
import { setGreedyPipelined } from '@huatuo/llama/internal';
import { fixtureDir, readReference } from './fixtures.js';

interface Run {
  out: { tokens: readonly number[]; text: string; finishReason: string }[];
  events: TokenEvent[];
  /** Dispatches since the start, when each token was streamed, and in all. */
  dispatchesAt: number[];
  dispatches: number;
  submits: number;
  /** Buffers in use when each token was streamed, and after, less those before. */
  inUseAt: number[];
  inUseAfter: number;
  created: number;
}

async function run(model: LlamaModel, tokenizer: Tokenizer | null, prompts: string[] | number[][], pipelined: boolean, options: GenerateOptions): Promise<Run> {
  setGreedyPipelined(pipelined);
  try {
    const s0 = runtimeStats();
    const events: TokenEvent[] = [];
    const dispatchesAt: number[] = [];
    const inUseAt: number[] = [];
    const onToken = (e: TokenEvent) => {
      events.push(e);
      const s = runtimeStats();
      dispatchesAt.push(s.dispatches - s0.dispatches);
      inUseAt.push(s.buffersInUse - s0.buffersInUse);
    };
    const out = await generate(model, tokenizer, prompts, { ...options, onToken });
    const s1 = runtimeStats();
    return {
      out: out.map((o) => ({ tokens: o.tokens, text: o.text, finishReason: o.finishReason })),
      events,
      dispatchesAt,
      dispatches: s1.dispatches - s0.dispatches,
      submits: s1.submits - s0.submits,
      inUseAt,
      inUseAfter: s1.buffersInUse - s0.buffersInUse,
      created: s1.buffersCreated - s0.buffersCreated,
    };
  } finally {
    setGreedyPipelined(true);
  }
}

/** Runs both paths; asserts the same results and stream, and returns both. */
async function both(model: LlamaModel, tokenizer: Tokenizer | null, prompts: string[] | number[][], options: GenerateOptions): Promise<{ ahead: Run; stepwise: Run }> {
  const stepwise = await run(model, tokenizer, prompts, false, options);
  const ahead = await run(model, tokenizer, prompts, true, options);
  assert.deepEqual(ahead.out, stepwise.out);
  assert.deepEqual(ahead.events, stepwise.events);
  return { ahead, stepwise };
}

describe('greedy decoding one step ahead', () => {
  let model: LlamaModel;
  // Rows of different lengths (left padded); random weights with a wide spread pick varied tokens.
  const prompts = [[5, 17, 33, 2, 9], [40, 41], [7, 8, 60, 61, 62, 63, 64]];
  let free: number[][];

  before(async () => {
    await initWebGPU();
    await readyMatmul();
    model = createRandomLlama(configFromPreset('tiny', { vocabSize: 97 }), { seed: 3, std: 0.5 });
    free = (await run(model, null, prompts, false, { maxNewTokens: 10, eosTokenIds: [] })).out.map((o) => [...o.tokens]);
  });

  after(() => model.dispose());

  it('gives the step-by-step tokens and stream when rows end at different steps by EOS, the rest by length', async () => {
    const { ahead } = await both(model, null, prompts, { maxNewTokens: 10, eosTokenIds: [free[0]![1]!, free[1]![4]!] });
    const lengths = ahead.out.map((o) => o.tokens.length);
    assert.ok(new Set(lengths).size >= 2, `rows should end at different steps, got lengths ${lengths}`);
    assert.ok(ahead.out.some((o) => o.finishReason === 'eos') && ahead.out.some((o) => o.finishReason === 'length'));
  });

  it('when every row ends by EOS, encodes exactly one step more than it needed, and drops it', async () => {
    const eos = [free[0]![1]!, free[1]![4]!, free[2]![3]!];
    const { ahead, stepwise } = await both(model, null, prompts, { maxNewTokens: 10, eosTokenIds: eos });
    assert.ok(ahead.out.every((o) => o.finishReason === 'eos'));
    const steps = Math.max(...ahead.out.map((o) => o.tokens.length));
    assert.ok(steps < 10);
    const longer = await run(model, null, prompts, false, { maxNewTokens: steps + 1, eosTokenIds: [] });
    assert.equal(ahead.dispatches, longer.dispatches);
    assert.ok(stepwise.dispatches < longer.dispatches);
    assert.equal(ahead.inUseAfter, 0);
  });

  it('with maxNewTokens 1 and 2 gives the step-by-step tokens and encodes no step past the limit', async () => {
    for (const maxNewTokens of [1, 2]) {
      const { ahead, stepwise } = await both(model, null, prompts, { maxNewTokens, eosTokenIds: [] });
      assert.ok(ahead.out.every((o) => o.tokens.length === maxNewTokens));
      assert.equal(ahead.dispatches, stepwise.dispatches, `maxNewTokens ${maxNewTokens}`);
    }
  });

  it('queues the next step before the ids of a step are read: at the first token both steps are encoded', async () => {
    const two = await run(model, null, prompts, false, { maxNewTokens: 2, eosTokenIds: [] });
    const one = await run(model, null, prompts, false, { maxNewTokens: 1, eosTokenIds: [] });
    const { ahead, stepwise } = await both(model, null, prompts, { maxNewTokens: 6, eosTokenIds: [] });
    assert.equal(stepwise.dispatchesAt[0], one.dispatches);
    assert.equal(ahead.dispatchesAt[0], two.dispatches, 'the second step was not encoded before the first step\'s ids were read');
    // By length, nothing is encoded after the last token is streamed.
    assert.equal(ahead.dispatchesAt.at(-1), ahead.dispatches);
    assert.equal(ahead.dispatches, stepwise.dispatches);
  });

  it('submits once per step: the host writes of positions and mask do not submit the queued step early', async () => {
    const { ahead } = await both(model, null, prompts, { maxNewTokens: 8, eosTokenIds: [] });
    assert.equal(ahead.submits, 8);
  });

  it('holds the same buffers at every token of a long generation, creates none the second time, and frees them all', async () => {
    const options = { maxNewTokens: 48, eosTokenIds: [] };
    await run(model, null, prompts, true, options);
    const r = await run(model, null, prompts, true, options);
    assert.equal(r.created, 0, 'buffers created during a repeated generation');
    // The cache and the queued step's ids; past the last step nothing is queued.
    const held = new Set(r.inUseAt.slice(prompts.length, -prompts.length));
    assert.equal(held.size, 1, `buffers in use at each token: ${r.inUseAt.join(' ')}`);
    assert.equal(r.inUseAfter, 0);
  });

  it('an error thrown while streaming stops decoding and frees the step queued after it', async () => {
    const before = runtimeStats();
    let n = 0;
    await assert.rejects(
      generate(model, null, prompts, {
        maxNewTokens: 10,
        eosTokenIds: [],
        onToken: () => {
          if (++n === 4) throw new Error('stop here');
        },
      }),
      /stop here/,
    );
    assert.equal(runtimeStats().buffersInUse, before.buffersInUse);
  });

  it('stops at stop strings with a tokenizer as step by step, rows cut at different steps', async () => {
    const tok = await loadTokenizer(llamaTokenizerDir());
    const m = await loadLlama(fixtureDir('vocab32k'));
    try {
      const texts = ['问题：感冒了怎么办？', '问题：头痛'];
      const first = await run(m, tok, texts, false, { maxNewTokens: 8, eosTokenIds: [] });
      // The text of the first prompt's 5th and 6th new tokens, absent from the second's.
      const stop = tok.decode(first.out[0]!.tokens.slice(4, 6), { skipSpecialTokens: true }).trim();
      assert.ok(stop.length > 0 && !first.out[1]!.text.includes(stop));
      const { ahead } = await both(m, tok, texts, { maxNewTokens: 8, eosTokenIds: [], stopStrings: [stop] });
      assert.deepEqual(ahead.out.map((o) => o.finishReason), ['stop', 'length']);
      assert.ok(ahead.out[0]!.tokens.length < 8);
    } finally {
      m.dispose();
    }
  });

  it('decodes step by step a model whose embedding is split into parts (it gathers from host ids)', async () => {
    const m = await loadLlama(fixtureDir('gqa'), { maxBindingBytes: 2048 });
    try {
      assert.ok(m.embedParts.length > 1);
      const g = readReference('gqa').generation!;
      const out = await generate(m, null, g.prompts, { maxNewTokens: g.maxNewTokens });
      assert.deepEqual(out.map((o) => o.tokens), g.greedy);
    } finally {
      m.dispose();
    }
  });
});
