// The context a model may use: vLLM's max_model_len derived from max_position_embeddings and rope_scaling
// (yarn from original_max_position_embeddings, llama3 not stretched), generate running past
// max_position_embeddings under yarn and dynamic scaling up to it (its tokens those of a step-by-step greedy
// decode through the KV cache, as transformers' generate), and a set length refused above the derived one
// unless explicitly allowed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { argmax, noGrad, slice, tensor, tidy, toArray } from '@huatuo/tensor';
import {
  KvCache, LlamaModel, ModelError, configFromPreset, createRandomLlama, derivedMaxModelLen, generate, parseLlamaConfig, toHfConfigJson, llamaPresets,
  type LlamaConfig,
} from '@huatuo/llama';
import { gpu } from '../tensor/helpers.js';

const M = 16; // max_position_embeddings
const config = configFromPreset('tiny', {
  vocabSize: 64, hiddenSize: 32, numAttentionHeads: 2, numKeyValueHeads: 1, intermediateSize: 48, numHiddenLayers: 2, maxPositionEmbeddings: M,
});
const PROMPT = [5, 17, 42, 3, 60, 11, 29, 8, 33, 50];

/** The same weights under another rope_scaling. */
function withScaling(model: LlamaModel, ropeScaling: LlamaConfig['ropeScaling']): LlamaModel {
  return new LlamaModel({ ...model.config, ropeScaling }, model.dtype, model.embedParts, model.layers, model.norm, model.lmHead);
}

/** Greedy decoding one forward per token through a KV cache, as transformers' generate does it. */
async function stepwiseGreedy(model: LlamaModel, prompt: number[], newTokens: number): Promise<number[]> {
  const cache = new KvCache(model.config, 1, prompt.length + newTokens, model.dtype);
  try {
    const out: number[] = [];
    let ids = prompt;
    let pos = 0;
    for (let k = 0; k < newTokens; k++) {
      const positions = Array.from({ length: ids.length }, (_, i) => pos + i);
      const next = noGrad(() => tidy(() => {
        const logits = model.forward(tensor(Int32Array.from(ids), [1, ids.length]), { cache, positions: tensor(Int32Array.from(positions)) });
        const V = model.config.vocabSize;
        return argmax(slice(logits.reshape([ids.length, V]), 0, ids.length - 1, ids.length), 1);
      }));
      const [token] = await toArray(next);
      next.dispose();
      pos += ids.length;
      ids = [token!];
      out.push(token!);
    }
    return out;
  } finally {
    cache.dispose();
  }
}

const qwenFile = 'models/qwen2.5/config.json';
const tinyJson = toHfConfigJson(llamaPresets.tiny);

test('the derived context follows vLLM: max_position_embeddings times the factor, yarn from its original length, llama3 as given', () => {
  const derived = (max_position_embeddings: number, rope_scaling: Record<string, unknown> | null) =>
    derivedMaxModelLen(parseLlamaConfig({ ...tinyJson, max_position_embeddings, rope_scaling }, qwenFile));
  assert.equal(derived(32768, { type: 'yarn', factor: 4.0, original_max_position_embeddings: 32768 }), 131072, "Qwen2.5's documented yarn");
  assert.equal(derived(131072, { rope_type: 'yarn', factor: 4.0, original_max_position_embeddings: 32768 }), 131072, 'yarn measures from original_max_position_embeddings');
  assert.equal(derived(4096, { rope_type: 'yarn', factor: 2.5 }), 10240, 'yarn without original: max_position_embeddings');
  assert.equal(derived(4096, { type: 'dynamic', factor: 2.0 }), 8192);
  assert.equal(derived(2048, { type: 'linear', factor: 1.5 }), 3072);
  assert.equal(derived(1000, { type: 'linear', factor: 1.0005 }), 1000, 'rounded down as int()');
  assert.equal(
    derived(131072, { rope_type: 'llama3', factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192 }),
    131072,
    "Llama 3.1's config gives the stretched length already",
  );
  assert.equal(derived(2048, null), 2048);
});

for (const scaling of [
  { type: 'yarn', factor: 4, originalMaxPositionEmbeddings: M },
  { type: 'dynamic', factor: 4 },
] as const) {
  test(`generate under ${scaling.type} scaling runs past max_position_embeddings up to max_position_embeddings × factor`, async () => {
    await gpu();
    const plain = createRandomLlama(config, { seed: 11, std: 0.3 });
    const model = withScaling(plain, scaling);
    assert.equal(model.maxModelLen, 4 * M);
    const newTokens = 4 * M - PROMPT.length;
    const [out] = await generate(model, null, [PROMPT], { maxNewTokens: newTokens, eosTokenIds: [] });
    assert.equal(out!.tokens.length, newTokens);
    assert.deepEqual(out!.tokens, await stepwiseGreedy(model, PROMPT, newTokens));
    // Past max_position_embeddings the scaled model's tokens are its own, not plain RoPE's.
    assert.notDeepEqual(out!.tokens.slice(M - PROMPT.length), (await stepwiseGreedy(plain, PROMPT, newTokens)).slice(M - PROMPT.length));
    await assert.rejects(
      generate(model, null, [PROMPT], { maxNewTokens: newTokens + 1, eosTokenIds: [] }),
      (e: unknown) => e instanceof ModelError && e.message.includes(`context of ${4 * M} tokens`) && e.message.includes(`rope_scaling "${scaling.type}" factor 4`),
    );
  });
}

test('generate without rope_scaling still stops at max_position_embeddings, naming it and --max-model-len', async () => {
  await gpu();
  const model = createRandomLlama(config, { seed: 12, std: 0.3 });
  assert.equal(model.maxModelLen, M);
  await assert.rejects(
    generate(model, null, [PROMPT], { maxNewTokens: M - PROMPT.length + 1, eosTokenIds: [] }),
    (e: unknown) => e instanceof ModelError && /17 tokens, beyond the model's context of 16 tokens \(max_position_embeddings 16\)/.test(e.message) && e.message.includes('--max-model-len'),
  );
});

test('a max model length above the derived one is refused, naming both flags, unless explicitly allowed', async () => {
  await gpu();
  const model = withScaling(createRandomLlama(config, { seed: 13, std: 0.3 }), { type: 'yarn', factor: 2 });
  assert.throws(
    () => model.setMaxModelLen(2 * M + 1),
    (e: unknown) =>
      e instanceof ModelError &&
      e.message.includes(`maxModelLen ${2 * M + 1} (--max-model-len) is beyond the ${2 * M} tokens config.json allows (max_position_embeddings ${M} × rope_scaling "yarn" factor 2)`) &&
      e.message.includes('--allow-long-max-model-len'),
  );
  assert.equal(model.maxModelLen, 2 * M, 'a refused length leaves the derived one');
  assert.throws(() => model.setMaxModelLen(0), (e: unknown) => e instanceof ModelError && /positive integer/.test(e.message));

  model.setMaxModelLen(2 * M + 8, { allowLong: true });
  assert.equal(model.maxModelLen, 2 * M + 8);
  const [out] = await generate(model, null, [PROMPT], { maxNewTokens: 2 * M + 8 - PROMPT.length, eosTokenIds: [] });
  assert.equal(out!.tokens.length, 2 * M + 8 - PROMPT.length);

  model.setMaxModelLen(M);
  await assert.rejects(
    generate(model, null, [PROMPT], { maxNewTokens: M - PROMPT.length + 1, eosTokenIds: [] }),
    (e: unknown) => e instanceof ModelError && e.message.includes('context of 16 tokens (set by --max-model-len'),
  );
});
