// Decode steps replayed from a recording against every step run: the same tokens (greedy, f32 and f16,
// grouped-query heads, fused products or not, LoRA, penalties, sampling) and the same logits bit for
// bit, across the key counts where the attention's splits and the mask's buffer change, with an adapter
// swapped mid-way.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { full, hasF16, initWebGPU, keep, mul, noGrad, randn, readyMatmul, recordStep, reshape, setFusedLinearPreferred, slice, tensor, tidy, toArray, type RecordedStep, type Tensor } from '@huatuo/tensor';
import { adaptedLinears, applyLora, configFromPreset, createRandomLlama, generate, KvCache, type GenerateOptions, type LlamaModel, type LoraWeights } from '@huatuo/llama';
import { lastReplayCounts, setDecodeReplay, type ReplayCounts } from '@huatuo/llama/internal';

// Rows of different lengths (left padded), grouped-query heads (4 query heads, 2 key/value heads).
const prompts = [[5, 17, 33, 2, 9], [40, 41], [7, 8, 60, 61, 62, 63, 64]];
// 40 new tokens: S runs 8 to 46, over the decode splits' steps at 16 and 32 keys and the mask buffer's
// size classes (3 rows of i32 keys: 256 bytes at 22 keys).
const long: GenerateOptions = { maxNewTokens: 40, eosTokenIds: [] };

async function decode(model: LlamaModel, replay: boolean, options: GenerateOptions): Promise<{ tokens: number[][]; counts: ReplayCounts }> {
  setDecodeReplay(replay);
  try {
    const out = await generate(model, null, prompts, options);
    return { tokens: out.map((o) => [...o.tokens]), counts: { ...lastReplayCounts()! } };
  } finally {
    setDecodeReplay(true);
  }
}

/** Decodes with and without replay; asserts the same tokens, and returns the counts of the replayed run. */
async function same(model: LlamaModel, options: GenerateOptions = long): Promise<ReplayCounts> {
  const plain = await decode(model, false, options);
  const replayed = await decode(model, true, options);
  assert.deepEqual(replayed.tokens, plain.tokens);
  assert.equal(plain.counts.replayed, 0);
  return replayed.counts;
}

/** Asserts that every step was replayed but the first two (recorded, the second checked against the first). */
function assertReplayed(c: ReplayCounts, steps = 39): void {
  assert.equal(c.gaveUp, null);
  assert.ok(c.checked);
  assert.equal(c.recorded, 2);
  assert.equal(c.replayed, steps - 2);
}

function randomAdapters(model: LlamaModel, seed: number): Map<string, LoraWeights> {
  const out = new Map<string, LoraWeights>();
  for (const { linear } of adaptedLinears(model)) {
    const lora = linear.lora!;
    out.set(linear.name, { ...lora, B: keep(noGrad(() => mul(randn([linear.outFeatures, lora.A.shape[0]!], { seed: seed++ }), full([1], 0.5)))) });
  }
  return out;
}

function useAdapters(model: LlamaModel, adapters: Map<string, LoraWeights>): void {
  for (const { linear } of adaptedLinears(model)) linear.lora = adapters.get(linear.name)!;
}

describe('decode steps replayed from a recording', () => {
  let model: LlamaModel;

  before(async () => {
    await initWebGPU();
    await readyMatmul();
    model = createRandomLlama(configFromPreset('tiny', { vocabSize: 97 }), { seed: 3, std: 0.5 });
  });

  after(() => model.dispose());

  it('gives the tokens of every step run (f32, fused products and not), replaying past the changes of the splits and of the mask\'s size', async () => {
    for (const fused of [true, false]) {
      setFusedLinearPreferred(fused);
      try {
        assertReplayed(await same(model));
      } finally {
        setFusedLinearPreferred(null);
      }
    }
  });

  it('gives the tokens of every step run with one key/value head and one row (the cache view\'s head stride stays the same as it fills)', async () => {
    const m = createRandomLlama(configFromPreset('tiny', { vocabSize: 97, numKeyValueHeads: 1 }), { seed: 4, std: 0.5 });
    try {
      setDecodeReplay(false);
      const plain = await generate(m, null, [prompts[0]!], long).then((o) => o[0]!.tokens);
      setDecodeReplay(true);
      const replayed = await generate(m, null, [prompts[0]!], long).then((o) => o[0]!.tokens);
      assert.deepEqual(replayed, plain);
      assertReplayed(lastReplayCounts()!);
    } finally {
      setDecodeReplay(true);
      m.dispose();
    }
  });

  it('gives the tokens of every step run in f16', async (t) => {
    if (!hasF16()) return t.skip('adapter lacks shader-f16');
    const m = createRandomLlama(configFromPreset('tiny', { vocabSize: 97 }), { seed: 3, std: 0.5, dtype: 'f16' });
    try {
      assertReplayed(await same(m));
    } finally {
      m.dispose();
    }
  });

  it('gives the tokens of every step run with the repetition, frequency and presence penalties', async () => {
    assertReplayed(await same(model, { ...long, repetitionPenalty: 1.3, frequencyPenalty: 0.4, presencePenalty: 0.2 }));
  });

  it('gives the sampled tokens of every step run (temperature, top-k, top-p; the uniforms an input), with penalties too', async () => {
    assertReplayed(await same(model, { ...long, doSample: true, topK: 20, topP: 0.9, temperature: 0.8, seed: 7 }));
    assertReplayed(await same(model, { ...long, doSample: true, temperature: 1.2, repetitionPenalty: 1.2, presencePenalty: 0.3, seed: 8 }));
  });

  it('gives the tokens of every step run with a LoRA adapter, and records again when the adapter is swapped mid-way', async () => {
    const m = createRandomLlama(configFromPreset('tiny', { vocabSize: 97 }), { seed: 3, std: 0.5 });
    try {
      applyLora(m, { r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj', 'gate_proj', 'down_proj'] }, { seed: 5 });
      const first = randomAdapters(m, 100);
      const second = randomAdapters(m, 200);
      useAdapters(m, first);
      assertReplayed(await same(m));
      // The second adapter from the 12th token on (the step after it, already queued, keeps the first).
      const swapAt = (n: number): GenerateOptions => {
        let tokens = 0;
        return {
          ...long,
          onToken: (e) => {
            if (e.prompt === 0 && ++tokens === n) useAdapters(m, second);
          },
        };
      };
      useAdapters(m, first);
      const unswapped = await decode(m, false, long);
      useAdapters(m, first);
      const plain = await decode(m, false, swapAt(12));
      useAdapters(m, first);
      const replayed = await decode(m, true, swapAt(12));
      assert.notDeepEqual(plain.tokens, unswapped.tokens, 'the swap should change the tokens');
      assert.deepEqual(replayed.tokens, plain.tokens);
      assert.equal(replayed.counts.gaveUp, null);
      assert.equal(replayed.counts.recorded, 3, 'recorded once more after the swap');
      assert.equal(replayed.counts.replayed, 39 - 3);
    } finally {
      m.dispose();
    }
  });

  it('replays logits bit for bit equal to the model run step by step, over two changes of the splits, from one recording', async () => {
    const B = 2;
    const P = 3;
    const steps = 36;
    const maxLen = P + steps;
    const caches = [new KvCache(model.config, B, maxLen, model.dtype), new KvCache(model.config, B, maxLen, model.dtype)] as const;
    const ids = (rows: number[]) => tensor(Int32Array.from(rows), [B, 1]);
    const maskOf = (S: number) => new Int32Array(B * S).fill(1);
    const positionsOf = (S: number) => new Int32Array(B).fill(S - 1);
    const run = (cache: KvCache, step: Tensor, S: number, input: <T extends Tensor>(name: string, t: T) => T = (_, t) => t) =>
      noGrad(() =>
        tidy(() => {
          // The mask at the start of a buffer with room for the longest, as generate lays it out.
          const room = new Int32Array(B * maxLen);
          room.set(maskOf(S));
          const mask = reshape(slice(input('mask', tensor(room, [B * maxLen])), 0, 0, B * S), [B, S]);
          return model.forward(input('ids', step), { attentionMask: mask, positions: input('positions', tensor(positionsOf(S), [B, 1])), cache, lastOnly: true });
        }),
      );
    let recording: RecordedStep | null = null;
    let replays = 0;
    let recordings = 0;
    try {
      // Both caches hold the same prompt.
      for (const cache of caches) noGrad(() => model.forward(tensor(Int32Array.from([1, 2, 3, 4, 5, 6]), [B, P]), { cache })).dispose();
      for (let k = 0; k < steps; k++) {
        const S = P + k + 1;
        const rows = [(7 * k) % 97, (11 * k + 3) % 97];
        const step = ids(rows);
        const expected = run(caches[0], step, S);
        let got: Tensor;
        const inputs = { ids: step, mask: maskOf(S), positions: positionsOf(S) };
        if (recording !== null && recording.covers(S, inputs)) {
          got = recording.replay(S, inputs);
          caches[1].advance(1);
          replays++;
        } else {
          const r = recordStep(S, (input) => run(caches[1], step, S, input));
          assert.equal(r.recording.refused, null);
          if (recording !== null && recording.covers(S, inputs)) assert.ok(recording.matches(r.recording));
          recording?.dispose();
          recording = r.recording;
          got = r.result;
          recordings++;
        }
        const [a, b] = [(await toArray(expected)) as Float32Array, (await toArray(got)) as Float32Array];
        assert.deepEqual(new Uint32Array(b.buffer), new Uint32Array(a.buffer), `logits at ${S} keys`);
        for (const t of [expected, got, step]) t.dispose();
      }
      assert.equal(recordings, 1, 'recorded at 4 keys only');
      assert.equal(replays, steps - 1);
    } finally {
      recording?.dispose();
      for (const c of caches) c.dispose();
    }
  });
});
