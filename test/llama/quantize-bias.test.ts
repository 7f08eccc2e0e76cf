// Qwen2's biased q/k/v over a quantized base (int8, NF4) in f16: prefill adds the bias to the f32 sums of
// the dequantizing product before its one rounding, as linear does for dense weights and the fused decode
// products do; with NF4 the prefill's last logits are the fused decode step's bit for bit.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { add, hasF16, initWebGPU, noGrad, quantizedMatmul, setFusedLinearPreferred, tensor, tidy, toArray, type Tensor } from '@huatuo/tensor';
import { KvCache, loadLlama, type LlamaModel } from '@huatuo/llama';
import { seededValues } from '../tensor/helpers.js';
import { fixtureDir, readReference } from './fixtures.js';

const NAME = 'qwen2-bias';

before(async () => {
  await initWebGPU();
});

/** The logits at the last of `row`'s tokens: one prefill of the row, or the row decoded a token at a time with the fused products. */
async function lastLogits(model: LlamaModel, row: number[], how: 'prefill' | 'fused decode'): Promise<Float32Array> {
  const cache = new KvCache(model.config, 1, row.length, 'f16');
  setFusedLinearPreferred(how === 'fused decode');
  try {
    const step = (ids: number[]) => tidy(() => model.forward(tensor(Int32Array.from(ids), [1, ids.length]), { cache }));
    let last: Tensor;
    if (how === 'prefill') last = noGrad(() => step(row));
    else {
      noGrad(() => row.slice(0, -1).forEach((id) => step([id]).dispose()));
      last = noGrad(() => step(row.slice(-1)));
    }
    const all = (await toArray(last)) as Float32Array;
    last.dispose();
    const V = model.config.vocabSize;
    return all.slice(all.length - V);
  } finally {
    setFusedLinearPreferred(null);
    cache.dispose();
  }
}

for (const quantize of ['int8', 'nf4'] as const) {
  test(`an f16 Qwen2 with an ${quantize} base rounds q/k/v once in prefill: quantizedMatmul with the bias, and the fused decode step's logits`, async (t) => {
    if (!hasF16()) return t.skip('the adapter lacks shader-f16');
    const model = await loadLlama(fixtureDir(NAME), { quantize, dtype: 'f16' });
    try {
      const q = model.layers[0]!.qProj;
      assert.ok(q.quantized !== null && q.bias !== null, 'a quantized, biased q_proj');
      const C = q.quantized.cols;
      const x = tensor(seededValues(6 * C, 3, 2), [6, C], { dtype: 'f16' });
      const got = await toArray(noGrad(() => q.forward(x)));
      const once = await toArray(noGrad(() => quantizedMatmul(x, q.quantized!, q.bias!)));
      const twice = await toArray(noGrad(() => add(quantizedMatmul(x, q.quantized!), q.bias!)));
      assert.deepEqual(got, once, 'q_proj over 6 rows: the product with its bias rounded once');
      assert.ok(twice.some((v, i) => v !== once[i]), 'rounding the product, then adding the bias, differs somewhere (else this case tells nothing)');
      const row = readReference(NAME).ids[0]!.slice(0, 6);
      const prefill = await lastLogits(model, row, 'prefill');
      const fused = await lastLogits(model, row, 'fused decode');
      // NF4: the tiled and the fused kernels sum each row in the same order, so the logits agree to the bit.
      if (quantize === 'nf4') assert.deepEqual(prefill, fused, 'the last prefill logits and the fused decode step\'s');
    } finally {
      model.dispose();
    }
  });
}
