// Adapters whose shape varies per module, loaded from PEFT files: use_rslora (alpha / sqrt(r)), rank_pattern,
// alpha_pattern and layers_to_transform give the logits of the base with W + scaling B A added on the host,
// unmerged, merged, in cached decoding and from a merged folder; training and saving work with layers left without an adapter.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copyInto, decodeCandidates, initWebGPU, noGrad, tensor, tidy, toArray } from '@huatuo/tensor';
import {
  adaptedLinears, applyLora, bytesSource, loadAdapter, loadAdapterFromFiles, loadLlama, mergeAdapter, saveAdapter, saveMergedModel, serializeSafetensors, unmergeAdapter, type LlamaModel,
} from '@huatuo/llama';
import { assertClose } from '../tensor/helpers.js';
import { decodedLogits, fixtureDir, ids2d, logitsOf, readReference } from './fixtures.js';

const tol = { atol: 1e-4, rtol: 1e-4 };
const ref = readReference('gqa');

/** The adapter: q_proj of layer 0 by full name; q, v, down of layer 1 only; v at rank 2, down at alpha 3; rsLoRA. */
const CONFIG = {
  base_model_name_or_path: 'gqa', peft_type: 'LORA', task_type: 'CAUSAL_LM', bias: 'none', fan_in_fan_out: false, lora_dropout: 0, modules_to_save: null,
  r: 4, lora_alpha: 8, use_rslora: true,
  target_modules: ['model.layers.0.self_attn.q_proj', 'q_proj', 'v_proj', 'down_proj'], layers_to_transform: [1],
  rank_pattern: { v_proj: 2 }, alpha_pattern: { 'mlp.down_proj': 3 },
};
/** [layer, group, projection, r, alpha / sqrt(r)] of every adapted module, worked out from CONFIG by hand. */
const MODULES: [number, string, string, number, number][] = [
  [0, 'self_attn', 'q_proj', 4, 8 / 2],
  [1, 'self_attn', 'q_proj', 4, 8 / 2],
  [1, 'self_attn', 'v_proj', 2, 8 / Math.SQRT2],
  [1, 'mlp', 'down_proj', 4, 3 / 2],
];

/** Deterministic adapter values for the module's A [r, in] and B [out, r]. */
const values = (n: number, seed: number) => Float32Array.from({ length: n }, (_, j) => 0.3 * Math.sin(seed * 13 + j * 0.7));

/** The adapter's safetensors bytes for `model`'s shapes. */
function adapterWeights(model: LlamaModel): Uint8Array<ArrayBuffer> {
  const tensors = MODULES.flatMap(([layer, group, proj, r], i) => {
    const linear = model.layers[layer]!.linears().find((l) => l.name.endsWith(`.${proj}`))!;
    const key = `base_model.model.model.layers.${layer}.${group}.${proj}`;
    return [
      { name: `${key}.lora_A.weight`, dtype: 'F32' as const, shape: [r, linear.inFeatures], data: values(r * linear.inFeatures, 2 * i) },
      { name: `${key}.lora_B.weight`, dtype: 'F32' as const, shape: [linear.outFeatures, r], data: values(linear.outFeatures * r, 2 * i + 1) },
    ];
  });
  return serializeSafetensors(tensors, { metadata: { format: 'pt' } });
}

/** The base with W + scale(r, alpha) B A written into each adapted projection, computed on the host in f64. */
async function hostMerged(scales: number[]): Promise<LlamaModel> {
  const model = await loadLlama(fixtureDir('gqa'));
  for (const [i, [layer, , proj, r]] of MODULES.entries()) {
    const linear = model.layers[layer]!.linears().find((l) => l.name.endsWith(`.${proj}`))!;
    assert.equal(linear.parts.length, 1);
    const [out, inp] = [linear.outFeatures, linear.inFeatures];
    const W = (await toArray(linear.parts[0]!)) as Float32Array;
    const A = values(r * inp, 2 * i);
    const B = values(out * r, 2 * i + 1);
    const merged = new Float32Array(out * inp);
    for (let o = 0; o < out; o++) {
      for (let k = 0; k < inp; k++) {
        let d = 0;
        for (let j = 0; j < r; j++) d += B[o * r + j]! * A[j * inp + k]!;
        merged[o * inp + k] = W[o * inp + k]! + scales[i]! * d;
      }
    }
    tidy(() => copyInto(linear.parts[0]!, tensor(merged, [out, inp])));
  }
  return model;
}

describe('adapters with per-module ranks, alphas and layers, from PEFT files', () => {
  let fusedDecode = false;
  before(async () => {
    // The fused decode products need a fixed subgroup size.
    fusedDecode = decodeCandidates(await initWebGPU()).some((v) => v.wide && v.groups === undefined);
  });

  it('give the logits of W + (alpha / sqrt(r)) B A merged on the host: unmerged, merged, decoding and a merged folder', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lora-patterns-merged-'));
    const model = await loadLlama(fixtureDir('gqa'));
    const expected = await hostMerged(MODULES.map((m) => m[4]));
    const plainScaling = await hostMerged(MODULES.map(([, , , r], i) => (i === 3 ? 3 : 8) / r));
    try {
      await loadAdapterFromFiles(model, JSON.stringify(CONFIG), 'adapter_config.json', bytesSource('adapter_model.safetensors', adapterWeights(model)));
      assert.deepEqual(
        adaptedLinears(model).map(({ linear }) => `${linear.name} ${linear.lora!.A.shape[0]} ${linear.lora!.scaling}`),
        MODULES.map(([l, g, p, r, s]) => `model.layers.${l}.${g}.${p} ${r} ${s}`),
      );
      const want = await logitsOf(expected, ref);
      const adapted = await logitsOf(model, ref);
      assertClose(adapted, want, tol, 'adapter forward vs host-merged W + alpha / sqrt(r) B A');
      const alphaOverR = await logitsOf(plainScaling, ref);
      assert.ok(adapted.some((x, i) => Math.abs(x - alphaOverR[i]!) > 1e-2), 'rsLoRA scaling differs from alpha / r here');
      const rows = [ref.ids[0]!.slice(0, 6)];
      const wantDecoded = await decodedLogits(expected, rows, 2);
      for (const fused of fusedDecode ? [false, true] : [false]) {
        assertClose(await decodedLogits(model, rows, 2, fused), wantDecoded, tol, `cached decoding (${fused ? 'fused' : 'separate'} products) vs host-merged`);
      }
      mergeAdapter(model);
      assertClose(await logitsOf(model, ref), want, tol, 'merged adapter vs host-merged');
      unmergeAdapter(model);
      assertClose(await logitsOf(model, ref), want, tol, 'unmerged again');
      await saveMergedModel(model, dir);
      const reloaded = await loadLlama(dir);
      assertClose(await logitsOf(reloaded, ref), want, tol, 'merged folder vs host-merged');
      reloaded.dispose();
    } finally {
      model.dispose();
      expected.dispose();
      plainScaling.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('save and load keep the config fields and the outputs', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lora-patterns-'));
    const model = await loadLlama(fixtureDir('gqa'));
    const other = await loadLlama(fixtureDir('gqa'));
    try {
      await loadAdapterFromFiles(model, JSON.stringify(CONFIG), 'adapter_config.json', bytesSource('adapter_model.safetensors', adapterWeights(model)));
      await saveAdapter(model, dir, 'gqa');
      const saved = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      for (const k of ['use_rslora', 'target_modules', 'layers_to_transform', 'rank_pattern', 'alpha_pattern'] as const) assert.deepEqual(saved[k], CONFIG[k], k);
      await loadAdapter(other, dir);
      assert.deepEqual(other.loraConfig, model.loraConfig);
      assert.deepEqual(await logitsOf(other, ref), await logitsOf(model, ref));
    } finally {
      model.dispose();
      other.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('trains with adapters on a subset of layers: only their A and B get gradients', async () => {
    const model = await loadLlama(fixtureDir('gqa'));
    try {
      const params = applyLora(model, { r: 2, alpha: 4, targetModules: ['q_proj', 'down_proj'], layersToTransform: [1], rankPattern: { down_proj: 3 }, useRslora: true }, { seed: 1 });
      assert.deepEqual(adaptedLinears(model).map(({ linear }) => linear.name), ['model.layers.1.self_attn.q_proj', 'model.layers.1.mlp.down_proj']);
      assert.deepEqual(params.map((p) => p.shape), [[2, 32], [32, 2], [3, 88], [32, 3]]);
      assert.equal(model.layers[1]!.downProj.lora!.scaling, 4 / Math.sqrt(3));
      for (const p of params.filter((_, i) => i % 2 === 1)) noGrad(() => tidy(() => copyInto(p, tensor(values(p.size, p.size), p.shape))));
      tidy(() => model.loss(ids2d(ref.ids), ids2d(ref.labels), ids2d(ref.attentionMask)).backward());
      for (const p of params) assert.ok(p.grad !== null && (await toArray(p.grad)).some((x) => x !== 0), 'every adapter matrix gets a gradient');
      assert.equal(model.layers[0]!.qProj.lora, null);
    } finally {
      model.dispose();
    }
  });
});
