// A tiny LLaMA with rope_scaling: linear scaling by f at positions f p equals plain RoPE at p (with and
// without the KV cache), and dynamic NTK scaling follows transformers' growth / keep / reset of its
// frequencies, cached keys keeping the rotation they were written with.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { noGrad, slice, tensor, tidy } from '@huatuo/tensor';
import { KvCache, LlamaModel, ModelError, configFromPreset, createRandomLlama, type LlamaConfig } from '@huatuo/llama';
import { gpu } from '../tensor/helpers.js';

const M = 8; // max_position_embeddings
const config = configFromPreset('tiny', {
  vocabSize: 64, hiddenSize: 32, numAttentionHeads: 2, numKeyValueHeads: 1, intermediateSize: 48, numHiddenLayers: 2, maxPositionEmbeddings: M,
});
const IDS = [5, 17, 42, 3, 60, 11, 29, 8, 33, 50, 1, 22];

/** The same weights under another RoPE configuration. */
function withRope(model: LlamaModel, rope: Partial<Pick<LlamaConfig, 'ropeTheta' | 'ropeScaling'>>): LlamaModel {
  return new LlamaModel({ ...model.config, ...rope }, model.dtype, model.embedParts, model.layers, model.norm, model.lmHead);
}

/** Logits [T, V] of ids at positions, optionally continuing a KV cache. */
async function logits(model: LlamaModel, ids: number[], positions: number[], cache?: KvCache): Promise<Float32Array> {
  return noGrad(() => tidy(() => model.forward(tensor(Int32Array.from(ids), [1, ids.length]), { positions: tensor(Int32Array.from(positions)), cache }))).toArray() as Promise<Float32Array>;
}

const range = (n: number, step = 1) => Array.from({ length: n }, (_, i) => i * step);

function assertSame(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length);
  const i = a.findIndex((v, k) => v !== b[k]);
  assert.equal(i, -1, `${what}: logits differ at ${i}: ${a[i]} vs ${b[i]}`);
}

function assertDiffer(a: Float32Array, b: Float32Array, what: string): void {
  assert.ok(a.some((v, k) => Math.abs(v - b[k]!) > 1e-4), `${what}: expected different logits`);
}

test('linear scaling by f at positions f p gives the unscaled logits at p, with and without the KV cache', async () => {
  await gpu();
  const plain = createRandomLlama(config, { seed: 3, std: 0.3 });
  for (const factor of [2, 4]) {
    const scaled = withRope(plain, { ropeScaling: { type: 'linear', factor } });
    const T = 6;
    assertSame(await logits(scaled, IDS.slice(0, T), range(T, factor)), await logits(plain, IDS.slice(0, T), range(T)), `linear ${factor}`);
    assertDiffer(await logits(scaled, IDS.slice(0, T), range(T)), await logits(plain, IDS.slice(0, T), range(T)), `linear ${factor} at the same positions`);
    const [c1, c2] = [new KvCache(scaled.config, 1, T, 'f32'), new KvCache(plain.config, 1, T, 'f32')];
    await logits(scaled, IDS.slice(0, 4), range(4, factor), c1);
    await logits(plain, IDS.slice(0, 4), range(4), c2);
    assertSame(await logits(scaled, IDS.slice(4, T), [4 * factor, 5 * factor], c1), await logits(plain, IDS.slice(4, T), [4, 5], c2), `linear ${factor} with the cache`);
  }
});

const FACTOR = 2;
/** transformers' regrown base for sequence length S > M, in float32: theta ((factor S / M) - (factor - 1))^(D / (D - 2)). */
function grown(S: number): number {
  const [f, D] = [Math.fround, config.headDim];
  return f(f(config.ropeTheta) * f(Math.pow(f(f(f(f(FACTOR) * S) / M) - f(FACTOR - 1)), D / (D - 2))));
}

test('dynamic scaling grows its base past max_position_embeddings, keeps it for shorter inputs, resets below', async () => {
  await gpu();
  const plain = createRandomLlama(config, { seed: 4, std: 0.3 });
  const dyn = withRope(plain, { ropeScaling: { type: 'dynamic', factor: FACTOR } });
  const at = (S: number) => withRope(plain, { ropeTheta: grown(S) });
  assertSame(await logits(dyn, IDS.slice(0, 5), range(5)), await logits(plain, IDS.slice(0, 5), range(5)), 'S 5 <= M: the initial base');
  assert.equal(dyn.rotary.cachedSeqLen, M);
  assertSame(await logits(dyn, IDS, range(12)), await logits(at(12), IDS, range(12)), 'S 12 > M: grown to 12');
  assert.equal(dyn.rotary.cachedSeqLen, 12);
  assertDiffer(await logits(at(12), IDS, range(12)), await logits(plain, IDS, range(12)), 'the grown base');
  assertSame(await logits(dyn, IDS.slice(0, 10), range(10)), await logits(at(12), IDS.slice(0, 10), range(10)), 'M <= S 10 < 12: kept');
  assertSame(await logits(dyn, IDS.slice(0, 5), range(5)), await logits(plain, IDS.slice(0, 5), range(5)), 'S 5 < M: reset');
  assert.equal(dyn.rotary.cachedSeqLen, M);
});

test('dynamic scaling with the KV cache rotates only the new queries and keys by the grown base', async () => {
  await gpu();
  const plain = createRandomLlama(config, { seed: 5, std: 0.3 });
  const dyn = withRope(plain, { ropeScaling: { type: 'dynamic', factor: FACTOR } });
  const S = M + 1;
  const cache = new KvCache(dyn.config, 1, S, 'f32');
  await logits(dyn, IDS.slice(0, M), range(M), cache);
  const step = await logits(dyn, [IDS[M]!], [M], cache);
  assert.equal(dyn.rotary.cachedSeqLen, S);
  // The same history written with the initial base, then one step by a model whose base is the one grown to S.
  const other = new KvCache(plain.config, 1, S, 'f32');
  await logits(plain, IDS.slice(0, M), range(M), other);
  assertSame(step, await logits(withRope(plain, { ropeTheta: grown(S) }), [IDS[M]!], [M], other), 'cached keys keep their rotation; the new ones use the grown base');
  const full = await logits(dyn, IDS.slice(0, S), range(S));
  assertDiffer(step, full.subarray(full.length - config.vocabSize), 'a full forward rotates every key by the grown base');
});

test('dynamic scaling refuses positions without a host copy', async () => {
  await gpu();
  const dyn = withRope(createRandomLlama(config, { seed: 6, std: 0 }), { ropeScaling: { type: 'dynamic', factor: 2 } });
  const positions = slice(tensor(Int32Array.from([0, 1, 2, 3])), 0, 0, 3);
  assert.throws(() => noGrad(() => dyn.forward(tensor(Int32Array.from([1, 2, 3]), [1, 3]), { positions })), (e: unknown) => e instanceof ModelError && /rope_scaling "dynamic"/.test(e.message));
});
