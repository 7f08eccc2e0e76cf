// Generation's memory check sizes what decoding allocates: logits of the last position only
// ([beams, V]), not of every position. HuaTuo's sample answer after training (4 beams, a prompt
// plus new tokens of 323) must pass on an adapter with a 128 MiB binding limit.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { deviceInfo, initWebGPU } from '@huatuo/tensor';
import { applyLora, configFromPreset, createRandomLlama, generate, inferencePlan, mergeAdapter, planMemory } from '@huatuo/llama';

describe('generation memory check', () => {
  before(async () => {
    await initWebGPU();
  });

  it('plans [beams, V] logits for decoding: 4 beams over 323 tokens of a 32000-word vocabulary need 0.5 MiB of logits', () => {
    const config = configFromPreset('tiny');
    const plan = planMemory(config, { batchSize: 4, seqLen: 323, training: false, lastPositionLogits: true });
    assert.equal(plan.logits, 4 * 32000 * 4);
    assert.ok(plan.largestActivation.bytes < 128 * 1024 * 1024, `${plan.largestActivation.name}: ${plan.largestActivation.bytes} bytes`);
  });

  it("plans generation with the model as loaded: an unmerged adapter's f32 A and B, their f16 copies and q and v's B packed for decoding, none of the copies once merged", () => {
    const config = configFromPreset('tiny', { numHiddenLayers: 2 });
    const model = createRandomLlama(config, { seed: 2, dtype: 'f16' });
    try {
      const bare = inferencePlan(model, 1, 16);
      assert.equal(bare.lora, 0);
      assert.equal(bare.weights, planMemory(config, { batchSize: 1, seqLen: 16, dtype: 'f16' }).weights);
      applyLora(model, { r: 4, targetModules: ['q_proj', 'v_proj'] });
      const C = config.hiddenSize;
      const kvd = config.numKeyValueHeads * config.headDim;
      const elements = 2 * 4 * (C + C + kvd + C); // layers x r x ((out + in) of q_proj and of v_proj)
      const packed = 2 * 4 * (C + kvd) * 2; // layers x r x (out of q_proj and of v_proj) x f16 bytes
      assert.equal(inferencePlan(model, 1, 16).lora, elements * (4 + 2) + packed);
      mergeAdapter(model);
      assert.equal(inferencePlan(model, 1, 16).lora, elements * 4);
    } finally {
      model.dispose();
    }
  });

  it('generate with 4 beams to 323 tokens on a 32000-word model is not refused under a 128 MiB binding limit', async () => {
    const limit = deviceInfo()!.maxStorageBufferBindingSize;
    assert.ok(4 * 323 * 32000 * 4 > limit || limit > 128 * 1024 * 1024, 'full logits of this run exceed the binding limit');
    const model = createRandomLlama(configFromPreset('tiny', { numHiddenLayers: 1 }), { seed: 1 });
    try {
      const prompt = Array.from({ length: 321 }, (_, i) => 3 + (i % 900));
      const [out] = await generate(model, null, [prompt], { numBeams: 4, maxNewTokens: 2, addBos: false });
      assert.ok(out!.tokens.length >= 1 && out!.tokens.length <= 2);
    } finally {
      model.dispose();
    }
  });
});
