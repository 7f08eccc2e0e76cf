// Rows that repeat a prompt (n choices of one prompt, equal prompts in a batch) run the prompt step once:
// the same tokens, log-probabilities (bit for bit) and prompt scores as every row running its own, on
// each decoding path, greedy and sampled, with penalties and logit bias, with a LoRA adapter, with the
// decode steps replayed; prompts of a few tokens are not shared (their products would take other kernels).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { initWebGPU, keep, noGrad, randn, readyMatmul, slice, toArray, zeros } from '@huatuo/tensor';
import { applyLora, configFromPreset, createRandomLlama, KvCache, type GenerateOptions, type Generation, type LlamaModel } from '@huatuo/llama';
import { lastReplayCounts, setSharedPrompts, type ReplayCounts } from '@huatuo/llama/internal';
import { generateOn, type DecodePath } from './decode-paths.js';

const PATHS: DecodePath[] = ['gpu', 'gpu-stepwise', 'host'];
const choices = [7, 8, 60, 61, 62, 63, 64];
// Three choices of one prompt; equal prompts of different lengths, left padded, among others.
const BATCHES: { name: string; prompts: number[][]; distinct: number }[] = [
  { name: 'n = 3 of one prompt', prompts: [choices, choices, choices], distinct: 1 },
  { name: 'repeated prompts among others', prompts: [[5, 17, 33, 2, 9], choices, [5, 17, 33, 2, 9], [40, 41, 42, 43, 44, 45], choices, choices], distinct: 3 },
];
const OPTIONS: { name: string; options: GenerateOptions }[] = [
  { name: 'greedy', options: {} },
  { name: 'greedy with logprobs', options: { logprobs: 3 } },
  { name: 'sampled', options: { doSample: true, temperature: 0.9, topK: 40, topP: 0.9 } },
  { name: 'sampled with logprobs', options: { doSample: true, temperature: 1.1, logprobs: 2 } },
  { name: 'sampled with penalties and logit bias', options: { doSample: true, temperature: 0.8, repetitionPenalty: 1.3, frequencyPenalty: 0.5, presencePenalty: 0.4, logitBias: new Map([[9, 2], [60, -3]]) } },
  { name: 'sampled with prompt logprobs', options: { doSample: true, promptLogprobs: 2, promptRanks: true, logprobs: 1 } },
];

interface Run {
  gens: Generation[];
  /** Rows of each forward pass over the prompt's positions. */
  promptRows: number[];
  replay: ReplayCounts | null;
}

async function run(model: LlamaModel, prompts: number[][], options: GenerateOptions, path: DecodePath, share: boolean): Promise<Run> {
  const P = Math.max(...prompts.map((p) => p.length));
  const promptRows: number[] = [];
  const hiddenStates = model.hiddenStates;
  model.hiddenStates = (ids, o) => {
    if (ids.shape[1] === P) promptRows.push(ids.shape[0]!);
    return hiddenStates.call(model, ids, o);
  };
  setSharedPrompts(share);
  try {
    const seeds = prompts.map((_, i) => 100 + i);
    const gens = await generateOn(model, prompts, { maxNewTokens: 6, ...options, ...(options.doSample === true ? { seeds } : {}) }, path);
    return { gens, promptRows, replay: path === 'gpu' && options.logprobs === undefined && options.promptLogprobs === undefined ? { ...lastReplayCounts()! } : null };
  } finally {
    setSharedPrompts(true);
    model.hiddenStates = hiddenStates;
  }
}

async function checkShared(model: LlamaModel, label: string): Promise<void> {
  for (const batch of BATCHES) {
    for (const { name, options } of OPTIONS) {
      for (const path of PATHS) {
        const what = `${label}, ${batch.name}, ${name}, ${path}`;
        const alone = await run(model, batch.prompts, options, path, false);
        const shared = await run(model, batch.prompts, options, path, true);
        assert.deepEqual(alone.promptRows, [batch.prompts.length], `${what}: unshared prompt step`);
        assert.deepEqual(shared.promptRows, [batch.distinct], `${what}: the prompt step should run each distinct prompt once`);
        assert.deepEqual(shared.gens, alone.gens, `${what}: tokens and log-probabilities`);
        if (shared.replay !== null) {
          assert.ok(shared.replay.replayed > 0 && shared.replay.gaveUp === null, `${what}: decode steps should replay, got ${JSON.stringify(shared.replay)}`);
          assert.deepEqual(shared.replay, alone.replay, what);
        }
      }
      // Different seeds sample different choices: the rows do not share their decoding.
      if (options.doSample === true && name === 'sampled') {
        const tokens = (await run(model, batch.prompts, options, 'gpu', true)).gens.map((g) => g.tokens.join());
        assert.ok(new Set(tokens).size > batch.distinct, `${batch.name}: the choices of one prompt should differ, got ${tokens.join(' | ')}`);
      }
    }
  }
}

describe('rows of one prompt share its prompt step', () => {
  let model: LlamaModel;

  before(async () => {
    await initWebGPU();
    await readyMatmul();
    model = createRandomLlama(configFromPreset('tiny', { vocabSize: 97 }), { seed: 3, std: 0.5 });
  });

  after(() => model.dispose());

  it('gives every row the tokens, log-probabilities and prompt scores of its own prompt step, on each decoding path', async () => {
    await checkShared(model, 'base');
  });

  it('does so with a LoRA adapter on the projections', async () => {
    const adapted = createRandomLlama(configFromPreset('tiny', { vocabSize: 97 }), { seed: 3, std: 0.5 });
    try {
      applyLora(adapted, { r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj', 'down_proj'] }, { seed: 5 });
      // B starts at zero (PEFT's init): give it values, so that the adapter changes the logits.
      for (const l of adapted.linears()) {
        if (l.lora !== null) l.lora = { ...l.lora, B: keep(noGrad(() => randn([l.outFeatures, l.lora!.A.shape[0]!], { seed: 7 }))) };
      }
      await checkShared(adapted, 'LoRA');
    } finally {
      adapted.dispose();
    }
  });

  it('spreads the rows of a cache: row i gets what was written to row from[i], whichever rows are read and written', async () => {
    const config = model.config;
    const [Hkv, D, T] = [config.numKeyValueHeads, config.headDim, 3];
    const cache = new KvCache(config, 5, 8, 'f32');
    const first = cache.firstRows(3);
    const written = Array.from({ length: config.numHiddenLayers }, (_, l) => [randn([3, Hkv, T, D], { seed: 2 * l }), randn([3, Hkv, T, D], { seed: 2 * l + 1 })] as const);
    written.forEach(([k, v], l) => first.append(l, k, v));
    first.advance(T);
    first.dispose();
    const from = [2, 1, 0, 2, 0];
    cache.spreadRows(from, T);
    assert.equal(cache.length, T);
    for (const [l, [k, v]] of written.entries()) {
      const next = zeros([5, Hkv, 1, D]);
      const all = cache.append(l, next, next); // [5, Hkv, T + 1, D]
      for (const [got, want] of [[all.k, k], [all.v, v]] as const) {
        for (const [i, row] of from.entries()) {
          assert.deepEqual(await toArray(slice(slice(got, 0, i, i + 1), 2, 0, T)), await toArray(slice(want, 0, row, row + 1)), `layer ${l} row ${i}`);
        }
      }
    }
    cache.dispose();
  });

  it('runs prompts of a few tokens unshared', async () => {
    const r = await run(model, [[40, 41], [40, 41]], {}, 'gpu', true);
    assert.deepEqual(r.promptRows, [2]);
  });
});
