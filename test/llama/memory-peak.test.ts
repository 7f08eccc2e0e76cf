// The memory plan against the buffer pool's measured peak (runtimeStats().peakBytes) on one decoder
// layer at LLaMA-7B width (hidden 4096, MLP 11008; f16 zero weights, vocabulary 256): a whole training
// step of 64 tokens (loss, backward, LoRA gradients), with and without checkpointing, within 10 %, and
// what the step adds to the weights (activations, gradients, temporaries such as the copy of a weight
// the matmul makes for 64 rows or more, taken off where the adapter's matmul makes none) within
// 10 % too. Measured on lavapipe: 0.987 and 0.984.
// Heads of 32 (128 of them) instead of LLaMA's 32 heads of 128: the plan differs only in the logsumexp
// (B H T f32, 8 KiB here), and on lavapipe the first dispatch of the attention backward kernels at
// head width 128 takes 13 minutes (compiling them: the same step then runs in 5 s), at 32 a second.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { hasF16, initWebGPU, matmulPlan, resetPeakBytes, runtimeStats, synchronize, tensor, tidy, transpose, zeros } from '@huatuo/tensor';
import { applyLora, configFromPreset, createRandomLlama, planMemory } from '@huatuo/llama';

describe('the memory plan at LLaMA-7B width', () => {
  before(async () => {
    await initWebGPU();
  });

  it('is within 10 % of the measured peak of a training step, forward and backward, and of what the step adds, with and without gradient checkpointing', async (t) => {
    if (!hasF16()) return t.skip('needs shader-f16');
    const config = configFromPreset('llama-7b', { numHiddenLayers: 1, vocabSize: 256, numAttentionHeads: 128, numKeyValueHeads: 128 });
    const model = createRandomLlama(config, { dtype: 'f16', std: 0 });
    try {
      const lora = { r: 8, targetModules: ['q_proj', 'v_proj'] as const };
      applyLora(model, { r: lora.r, alpha: 16, dropout: 0.05, targetModules: [...lora.targetModules] }, { seed: 1 });
      const [B, T] = [1, 64];
      const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 31 + 7) % 256);
      // The plan counts the copy of a weight (here gate_proj's) the v3 matmul makes for 64 rows or
      // more, the most a product allocates; where this adapter's matmul reads weights in place it is
      // taken off.
      const [C, I] = [config.hiddenSize, config.intermediateSize];
      const copy = tidy(() => matmulPlan(zeros([B * T, C], { dtype: 'f16' }), transpose(zeros([I, C], { dtype: 'f16' }))).packB) ? 0 : I * C * 2;
      for (const gradientCheckpointing of [false, true]) {
        model.gradientCheckpointing = gradientCheckpointing;
        model.training = true;
        await synchronize();
        resetPeakBytes();
        const resident = runtimeStats().bytesInUse;
        tidy(() => model.loss(tensor(ids, [B, T]), tensor(ids, [B, T])).backward());
        model.training = false;
        await synchronize();
        const measured = runtimeStats().peakBytes;
        const grads = model.loraParameters().map((p) => p.grad);
        assert.ok(grads.every((g) => g !== null), 'every LoRA parameter has its gradient');
        for (const p of model.loraParameters()) {
          p.grad!.dispose();
          p.grad = null;
        }
        const plan = planMemory(config, { batchSize: B, seqLen: T, dtype: 'f16', gradientCheckpointing, lora: { r: lora.r, targetModules: [...lora.targetModules] } });
        const planned = plan.total - copy;
        const ratio = planned / measured;
        // No optimizer exists here: the step adds activations, LoRA gradients, loss logits and temporaries.
        const [planStep, measuredStep] = [planned - plan.weights - plan.lora - plan.optimizer, measured - resident];
        const stepRatio = planStep / measuredStep;
        t.diagnostic(`checkpointing ${gradientCheckpointing}: plan ${planned} B, measured ${measured} B, ratio ${ratio.toFixed(3)}; the step: plan ${planStep} B, measured ${measuredStep} B, ratio ${stepRatio.toFixed(3)}`);
        assert.ok(Math.abs(ratio - 1) <= 0.1, `checkpointing ${gradientCheckpointing}: plan ${planned} B, measured peak ${measured} B (ratio ${ratio.toFixed(3)})`);
        assert.ok(Math.abs(stepRatio - 1) <= 0.1, `checkpointing ${gradientCheckpointing}: the step adds ${measuredStep} B, planned ${planStep} B (ratio ${stepRatio.toFixed(3)})`);
      }
    } finally {
      model.dispose();
    }
  });
});
