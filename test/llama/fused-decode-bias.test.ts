// Qwen2's biased q, k and v in the fused decode products: a decode step of the tiny qwen2-bias checkpoint
// (f32, int8 or NF4 weights) issues as many dispatches as the same model without its biases (the biases ride in the q/k/v product's
// epilogue, beside a LoRA adapter's update), and its logits equal the separate ops' (linear(x, w, b) or quantizedMatmul(x, w, b), then the update).
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { initWebGPU, noGrad, runtimeStats, setFusedLinearPreferred, tensor, tidy, toArray, type Tensor } from '@huatuo/tensor';
import { KvCache, loadAdapter, loadLlama, type LlamaModel } from '@huatuo/llama';
import { assertClose } from '../tensor/helpers.js';
import { fixtureDir, readReference } from './fixtures.js';

const NAME = 'qwen2-bias';

before(async () => {
  await initWebGPU();
});

/** The logits of the last of `row`'s tokens decoded one at a time through the KV cache, and the dispatches of that step. */
async function lastStep(model: LlamaModel, row: number[], fused: boolean): Promise<{ logits: Float32Array; dispatches: number }> {
  const cache = new KvCache(model.config, 1, row.length, 'f32');
  setFusedLinearPreferred(fused);
  try {
    const step = (t: number) => tidy(() => model.forward(tensor(Int32Array.from([row[t]!]), [1, 1]), { cache }));
    noGrad(() => {
      for (let t = 0; t < row.length - 1; t++) step(t).dispose();
    });
    const before = runtimeStats().dispatches;
    const last: Tensor = noGrad(() => step(row.length - 1));
    const dispatches = runtimeStats().dispatches - before;
    const logits = (await toArray(last)) as Float32Array;
    last.dispose();
    return { logits, dispatches };
  } finally {
    setFusedLinearPreferred(null);
    cache.dispose();
  }
}

/** A decode step with the biases, and with them taken away (LLaMA's projections), fused; the biases put back. */
async function withAndWithout(model: LlamaModel, row: number[]): Promise<[number, number]> {
  const projections = model.layers.flatMap((l) => [l.qProj, l.kProj, l.vProj]);
  const biases = projections.map((l) => l.bias);
  assert.ok(biases.every((b) => b !== null), 'the checkpoint has q/k/v biases');
  const biased = await lastStep(model, row, true);
  projections.forEach((l) => (l.bias = null));
  try {
    const unbiased = await lastStep(model, row, true);
    return [biased.dispatches, unbiased.dispatches];
  } finally {
    projections.forEach((l, i) => (l.bias = biases[i]!));
  }
}

const CASES = [
  { quantize: undefined, adapter: false },
  { quantize: undefined, adapter: true },
  { quantize: 'int8', adapter: false },
  { quantize: 'nf4', adapter: true },
] as const;

for (const { quantize, adapter } of CASES) {
  const what = `${quantize ?? 'f32'} weights${adapter ? ' and a LoRA adapter on q and v' : ''}`;
  test(`a Qwen2 decode step with ${what} takes the biased q/k/v in one fused product: the dispatches of the model without biases, the separate ops' logits`, async () => {
    const ref = readReference(NAME);
    const model = await loadLlama(fixtureDir(NAME), quantize === undefined ? {} : { quantize });
    try {
      if (adapter) await loadAdapter(model, join(fixtureDir(NAME), 'adapter'));
      const row = ref.ids[0]!.slice(0, 4);
      const [biased, unbiased] = await withAndWithout(model, row);
      assert.equal(biased, unbiased, `dispatches of a fused decode step with the biases (${biased}) and without (${unbiased})`);
      const separate = await lastStep(model, row, false);
      assert.ok(separate.dispatches > biased, `the separate ops issue more dispatches (${separate.dispatches}) than the fused products (${biased})`);
      const fused = await lastStep(model, row, true);
      // Dense: the same sums and roundings; quantized: the fused kernels sum the dequantized products in another order.
      const tol = quantize === undefined ? { atol: 1e-5, rtol: 1e-5 } : { atol: 1e-4, rtol: 1e-4 };
      assertClose(fused.logits, separate.logits, tol, 'fused against separate logits');
    } finally {
      model.dispose();
    }
  });
}
