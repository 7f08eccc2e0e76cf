// Activation checkpointing per decoder layer: the same loss and LoRA gradients as without it
// (dropout masks drawn again from the same seeds), padding and all, and a lower measured peak.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { backward, checkpoint, copyInto, initWebGPU, noGrad, randn, mul, resetPeakBytes, runtimeStats, tensor, tidy, toArray, type Tensor } from '@huatuo/tensor';
import { applyLora, configFromPreset, createRandomLlama, planMemory, type LlamaModel } from '@huatuo/llama';

interface Step {
  loss: number;
  grads: Float32Array[];
  peak: number;
}

async function step(model: LlamaModel, B: number, T: number, checkpointing: boolean): Promise<Step> {
  const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 7919 + 13) % 3000);
  const labels = Int32Array.from(ids, (v, i) => (i % T === 0 ? -100 : v)); // the loss sees (almost) every position, as the plan assumes
  const mask = Int32Array.from({ length: B * T }, (_, i) => (i % T === 0 && i > 0 ? 0 : 1)); // left padding in rows 1..
  for (const p of model.loraParameters()) {
    p.grad?.dispose();
    p.grad = null;
  }
  model.gradientCheckpointing = checkpointing;
  model.training = true;
  model.seedDropout(99);
  resetPeakBytes();
  const loss = tidy(() => {
    const l = model.loss(tensor(ids, [B, T]), tensor(labels, [B, T]), tensor(mask, [B, T]));
    backward(l);
    return l;
  });
  const peak = runtimeStats().peakBytes;
  model.training = false;
  const grads = await Promise.all(model.loraParameters().map(async (p) => (await toArray(p.grad!)) as Float32Array));
  const value = ((await toArray(loss)) as Float32Array)[0]!;
  loss.dispose();
  return { loss: value, grads, peak };
}

describe('activation checkpointing', () => {
  before(async () => {
    await initWebGPU();
  });

  it('gives bitwise the same loss and LoRA gradients with dropout on, and a lower peak of GPU memory, as planned', async (t) => {
    const config = configFromPreset('tiny', { numHiddenLayers: 4, vocabSize: 3000 });
    const model = createRandomLlama(config, { seed: 5, dtype: 'f32' });
    try {
      applyLora(model, { r: 8, alpha: 16, dropout: 0.05, targetModules: ['q_proj', 'v_proj', 'down_proj'] }, { seed: 3 });
      // LoRA B starts at zero; move it so that every gradient is non-zero.
      let seed = 40;
      for (const l of model.linears()) if (l.lora) noGrad(() => tidy(() => copyInto(l.lora!.B, mul(randn(l.lora!.B.shape, { seed: seed++ }), 0.02))));
      const plain = await step(model, 4, 64, false);
      const ckpt = await step(model, 4, 64, true);
      assert.equal(ckpt.loss, plain.loss);
      assert.equal(ckpt.grads.length, plain.grads.length);
      let maxDiff = 0;
      plain.grads.forEach((g, k) => {
        const h = ckpt.grads[k]!;
        for (let i = 0; i < g.length; i++) maxDiff = Math.max(maxDiff, Math.abs(g[i]! - h[i]!));
      });
      assert.ok(plain.grads.some((g) => g.some((v) => v !== 0)), 'gradients are not all zero');
      assert.equal(maxDiff, 0, `largest gradient difference ${maxDiff}`);
      assert.ok(ckpt.peak < plain.peak, `peak with checkpointing ${ckpt.peak} B, without ${plain.peak} B`);
      // The plan of the whole step (forward, loss, backward) holds within 10 % both ways.
      for (const [measured, gradientCheckpointing, bound] of [[plain.peak, false, 0.1], [ckpt.peak, true, 0.1]] as const) {
        const plan = planMemory(config, { batchSize: 4, seqLen: 64, dtype: 'f32', gradientCheckpointing, lora: { r: 8, targetModules: ['q_proj', 'v_proj', 'down_proj'] } });
        const ratio = plan.total / measured;
        t.diagnostic(`checkpointing ${gradientCheckpointing}: plan ${plan.total} B, measured ${measured} B, ratio ${ratio.toFixed(3)}`);
        assert.ok(Math.abs(ratio - 1) <= bound, `checkpointing ${gradientCheckpointing}: plan ${plan.total} B, measured ${measured} B`);
      }
    } finally {
      model.dispose();
    }
  });

  it('keeps a block that no input needs a gradient for on the graph through its parameters', async () => {
    const w = tensor(new Float32Array([2, 3]), [2]).requireGrad();
    const x = tensor(new Float32Array([5, 7]), [2]);
    const y = tidy(() => {
      const out = checkpoint((a: Tensor) => mul(a, w), [x], [w]);
      backward(out, tensor(new Float32Array([1, 1]), [2]));
      return out;
    });
    y.dispose();
    assert.deepEqual(Array.from((await toArray(w.grad!)) as Float32Array), [5, 7]);
    w.dispose();
    x.dispose();
  });
});
