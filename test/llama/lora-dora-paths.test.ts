// DoRA off the plain path: with the adapter's dropout in training (PEFT runs the whole DoRA term on the dropped-out
// input, base product included), and on int8 / NF4 bases, whose weight norm is that of the dequantized weight.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { copyInto, dequantizeHost, dropout, initWebGPU, keep, noGrad, quantizeHost, tensor, tidy, toArray, type Tensor } from '@huatuo/tensor';
import { adaptedLinears, configFromPreset, inferencePlan, loadAdapter, loadAdapterFromFiles, loadLlama, mergeAdapter, openFileSource, planMemory, readLinearWeight, saveMergedModel, type LlamaModel } from '@huatuo/llama';
import { assertClose } from '../tensor/helpers.js';
import { fixtureDir, logitsOf } from './fixtures.js';

const DORA = fileURLToPath(new URL('../fixtures/lora/dora/', import.meta.url));
const expected = JSON.parse(await readFile(join(DORA, 'expected.json'), 'utf8')) as { ids: number[][]; attentionMask: number[][] };

/** The fixture's DoRA adapter with its config changed by `edit`. */
async function loadEdited(model: LlamaModel, edit: Record<string, unknown>): Promise<void> {
  const config = { ...JSON.parse(await readFile(join(DORA, 'adapter_config.json'), 'utf8')), ...edit };
  const source = await openFileSource(join(DORA, 'adapter_model.safetensors'));
  try {
    await loadAdapterFromFiles(model, JSON.stringify(config), 'adapter_config.json', source);
  } finally {
    await source.close?.();
  }
}

const host = async (t: Tensor) => Float64Array.from(await toArray(t));

describe('DoRA with dropout and on quantized bases', () => {
  before(async () => {
    await initWebGPU();
  });

  it('with dropout in training: x W^T + (s - 1) dropout(x) W^T + s (dropout(x) A^T B^T) scaling, s = m / ||W + scaling B A||', async () => {
    const model = await loadLlama(fixtureDir('gqa'));
    try {
      await loadEdited(model, { lora_dropout: 0.5 });
      const linear = model.layers[1]!.downProj;
      const lora = linear.lora!;
      assert.equal(lora.dropout, 0.5);
      const [out, inp, r] = [linear.outFeatures, linear.inFeatures, lora.A.shape[0]!];
      const N = 5;
      const xs = Float32Array.from({ length: N * inp }, (_, i) => Math.sin(i * 0.37) * 1.5);
      const seed = 4242;
      const y = tidy(() => linear.forward(tensor(xs, [N, inp]), seed));
      const xd = tidy(() => dropout(tensor(xs, [N, inp]), 0.5, seed)); // the same mask the adapter draws with this seed
      const [got, X, XD, W, A, B, m] = await Promise.all([host(y), host(tensor(xs, [N, inp])), host(xd), readLinearWeight(linear), host(lora.A), host(lora.B), host(lora.magnitude!)]);
      y.dispose();
      xd.dispose();
      assert.ok(XD.some((v) => v === 0) && XD.some((v, i) => v !== 0 && v !== X[i]), 'dropout dropped and rescaled some inputs');
      const s = lora.scaling;
      const want = new Float64Array(N * out);
      for (let o = 0; o < out; o++) {
        let norm2 = 0;
        const BA = new Float64Array(inp);
        for (let k = 0; k < inp; k++) {
          for (let j = 0; j < r; j++) BA[k]! += B[o * r + j]! * A[j * inp + k]!;
          norm2 += (W[o * inp + k]! + s * BA[k]!) ** 2;
        }
        const scale = m[o]! / Math.sqrt(norm2);
        for (let n = 0; n < N; n++) {
          let base = 0, dropped = 0, update = 0;
          for (let k = 0; k < inp; k++) {
            base += X[n * inp + k]! * W[o * inp + k]!;
            dropped += XD[n * inp + k]! * W[o * inp + k]!;
            update += XD[n * inp + k]! * BA[k]!;
          }
          want[n * out + o] = base + (scale - 1) * dropped + scale * update * s;
        }
      }
      assertClose(got, want, { atol: 1e-4, rtol: 1e-4 }, 'DoRA forward with dropout vs the host formula');
    } finally {
      model.dispose();
    }
  });

  it('the norm kept for DoRA follows writes to A, B (an optimizer step) and the base weight in place', async () => {
    const model = await loadLlama(fixtureDir('gqa'));
    try {
      await loadAdapter(model, DORA);
      const linear = model.layers[0]!.qProj;
      const W = await readLinearWeight(linear);
      const rowNorms = (scale: number) => Array.from({ length: linear.outFeatures }, (_, o) => scale * Math.hypot(...W.subarray(o * linear.inFeatures, (o + 1) * linear.inFeatures)));
      const before = Float64Array.from(await toArray(linear.doraNorm()));
      noGrad(() => tidy(() => copyInto(linear.lora!.B, tensor(new Float32Array(linear.lora!.B.size), linear.lora!.B.shape))));
      const zeroB = Float64Array.from(await toArray(linear.doraNorm()));
      assert.ok(zeroB.some((v, i) => Math.abs(v - before[i]!) > 1e-3), 'the norm changed with B');
      assertClose(zeroB, rowNorms(1), { atol: 1e-5, rtol: 1e-5 }, 'B = 0: ||W|| per row');
      tidy(() => copyInto(linear.parts[0]!, tensor(W.map((v) => 2 * v), [linear.outFeatures, linear.inFeatures])));
      assertClose(await toArray(linear.doraNorm()), rowNorms(2), { atol: 1e-5, rtol: 1e-5 }, 'W doubled in place: 2 ||W|| per row');
    } finally {
      model.dispose();
    }
  });

  for (const format of ['int8', 'nf4'] as const) {
    it(`on a ${format} base: the logits of the dequantized model with the adapter, and a merged f16 folder with its merged logits`, async () => {
      const dir = await mkdtemp(join(tmpdir(), `lora-dora-${format}-`));
      const model = await loadLlama(fixtureDir('gqa'), { quantize: format });
      const reference = await loadLlama(fixtureDir('gqa'));
      try {
        for (const l of reference.linears()) {
          const w = dequantizeHost(quantizeHost(await readLinearWeight(l), l.outFeatures, l.inFeatures, format));
          for (const p of l.parts) p.dispose();
          l.parts = [keep(tensor(w, [l.outFeatures, l.inFeatures]))];
        }
        await loadAdapter(model, DORA);
        await loadAdapter(reference, DORA);
        for (const [i, { linear }] of adaptedLinears(model).entries()) {
          const want = adaptedLinears(reference)[i]!.linear.doraNorm();
          assertClose(await toArray(linear.doraNorm()), await toArray(want), { atol: 1e-5, rtol: 1e-5 }, `${linear.name}: the norm of the dequantized W + scaling B A`);
        }
        assertClose(await logitsOf(model, expected), await logitsOf(reference, expected), { atol: 1e-4, rtol: 1e-4 }, `${format} base with DoRA vs the dequantized base`);
        await saveMergedModel(model, dir);
        mergeAdapter(reference);
        const merged = await loadLlama(dir);
        assertClose(await logitsOf(merged, expected), await logitsOf(reference, expected), { atol: 2e-2, rtol: 2e-2 }, 'merged f16 folder vs the merged dequantized model');
        merged.dispose();
      } finally {
        model.dispose();
        reference.dispose();
        await rm(dir, { recursive: true, force: true });
      }
    });
  }

  it('memory plans count m (trained like A and B) and the norms kept beside each DoRA adapter, and no packed B', async () => {
    const config = configFromPreset('llama-7b');
    const lora = { r: 8, targetModules: ['q_proj', 'v_proj'] as const };
    const plain = planMemory(config, { batchSize: 1, seqLen: 64, dtype: 'f16', lora: { ...lora, targetModules: [...lora.targetModules] } });
    const dora = planMemory(config, { batchSize: 1, seqLen: 64, dtype: 'f16', lora: { ...lora, targetModules: [...lora.targetModules], useDora: true } });
    const outs = config.numHiddenLayers * (config.hiddenSize + config.numKeyValueHeads * config.headDim); // q_proj and v_proj outputs over the layers
    assert.equal(dora.gradients - plain.gradients, outs * 4);
    assert.equal(dora.optimizer - plain.optimizer, 2 * outs * 4);
    assert.equal(dora.lora - plain.lora, outs * 4 + 2 * outs * 4);
    const model = await loadLlama(fixtureDir('gqa'));
    try {
      await loadAdapter(model, DORA);
      const withDora = inferencePlan(model, 1, 8);
      const asPlain = planMemory(model.config, {
        batchSize: 1, seqLen: 8, dtype: 'f32', quantize: 'none', training: false, lastPositionLogits: true, lora: { r: 4, targetModules: ['q_proj', 'v_proj', 'down_proj'], merged: false },
      });
      // gqa: q_proj 32, v_proj 16 and down_proj 32 outputs on 2 layers; m, ||W||^2 and the norm, f32 each; but no
      // packed B of q_proj and v_proj (r 4) for the fused decode products, which DoRA projections do not take.
      assert.equal(withDora.lora - asPlain.lora, 2 * (32 + 16 + 32) * 3 * 4 - 2 * 4 * (32 + 16) * 4);
    } finally {
      model.dispose();
    }
  });
});
