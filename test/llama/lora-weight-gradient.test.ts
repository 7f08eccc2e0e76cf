// A LoRA adapter's A and B are nn.Linear layers in PEFT, so their gradients are F.linear's: dW = dy^T x, one
// product over every row of the batch with f32 sums rounded once to the activations' dtype (torch folds
// [B, T, in] into B T rows). Summing per-sequence products rounded to f16 loses what the rows cancel.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { backward, hasF16, initWebGPU, keep, tensor, toArray } from '@huatuo/tensor';
import { Linear } from '@huatuo/llama';

before(async () => {
  await initWebGPU();
});

test('an f16 LoRA projection over two sequences takes each adapter gradient as one f32 sum over all rows, rounded once', async (t) => {
  if (!hasF16()) return t.skip('adapter lacks shader-f16');
  const u = 2 ** -10; // f16's spacing at 1
  // One input, one output, rank 1: the frozen weight 0, A = B = 1, scaling 1, so the update is x itself.
  const l = new Linear('model.layers.0.self_attn.q_proj', 1, 1, [keep(tensor([0], [1, 1], { dtype: 'f16' }))]);
  l.lora = {
    A: keep(tensor([1], [1, 1], { requiresGrad: true })),
    B: keep(tensor([1], [1, 1], { requiresGrad: true })),
    scaling: 1,
    dropout: 0,
  };
  // x and dy of the two sequences: dB = dA = (1 + u)^2 - (1 + 2u) = u^2, exact in f32 and in f16 (a subnormal).
  // Each sequence's own product rounds (1 + u)^2 to 1 + 2u in f16, and their sum is 0.
  const x = tensor([1 + u, 1], [2, 1, 1], { dtype: 'f16' }); // [B, T, in]
  const dy = tensor([1 + u, -(1 + 2 * u)], [2, 1, 1], { dtype: 'f16' }); // [B, T, out]
  try {
    const y = l.forward(x);
    backward(y, dy);
    const [dA, dB] = await Promise.all([toArray(l.lora.A.grad!), toArray(l.lora.B.grad!)]);
    assert.equal(dA[0], u * u, `dA is ${dA[0]}; one rounding of the f32 sum over both sequences gives ${u * u}`);
    assert.equal(dB[0], u * u, `dB is ${dB[0]}; one rounding of the f32 sum over both sequences gives ${u * u}`);
  } finally {
    x.dispose();
    dy.dispose();
    l.dispose();
  }
});
