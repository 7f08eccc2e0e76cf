// Memory planning: LLaMA-7B's weight bytes from its known parameter count, LoRA and AdamW bytes
// from the adapter's shapes, splits that fit the binding limit, and up-front refusals that carry
// the estimate. (Split weights loading and running: model.test.ts and layer7b.test.ts.)
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { checkMemoryPlan, llamaPresets, lossChunkRows, MemoryError, planMemory, projectionBytes, splitRows, type LlamaConfig } from '@huatuo/llama';

const limits128 = { maxStorageBufferBindingSize: 128 * 1024 * 1024, maxBufferSize: 2 ** 32 - 1 };

describe('planMemory', () => {
  it("counts LLaMA-7B's 6,738,415,616 parameters as weight bytes in f16 and f32", () => {
    const cfg = llamaPresets['llama-7b'];
    assert.equal(planMemory(cfg, { batchSize: 1, seqLen: 1, dtype: 'f16' }).weights, 6_738_415_616 * 2);
    assert.equal(planMemory(cfg, { batchSize: 1, seqLen: 1, dtype: 'f32' }).weights, 6_738_415_616 * 4);
  });

  it("counts HuaTuo's LoRA (r 8 on q_proj and v_proj) as 4,194,304 f32 parameters, with gradients and two AdamW moments", () => {
    const plan = planMemory(llamaPresets['llama-7b'], { batchSize: 4, seqLen: 256, dtype: 'f16', lora: { r: 8, targetModules: ['q_proj', 'v_proj'] } });
    // 32 layers x 2 modules x r 8 x (4096 + 4096).
    assert.equal(plan.lora, 4_194_304 * 4);
    assert.equal(plan.gradients, plan.lora);
    assert.equal(plan.optimizer, 2 * plan.lora);
    assert.equal(plan.kvCache, 0);
    assert.equal(
      plan.total,
      plan.weights + plan.lora + plan.gradients + plan.optimizer + plan.activations + Math.max(plan.logits, plan.workspace) + plan.kvCache,
      'without checkpointing the peak is the sum of the parts, the loss logits and the backward workspace not at once',
    );
  });

  it("counts the f32 partial products of a product split along k in the workspace: 16 MiB for a short prompt at LLaMA-7B width, none for the tiny model or where products do not split", () => {
    const at = (cfg: LlamaConfig, seqLen: number) => planMemory(cfg, { batchSize: 1, seqLen, dtype: 'f16' }, limits128).workspace;
    // A 64-token prompt's q_proj (64 x 4096 x 4096) is 32 tiles of 128: it may split into 16 slices of
    // k = 256, 16 x 64 x 4096 f32 partials. The workspace otherwise holds one weight copied into panels
    // (the largest, 11008 x 4096 f16, for 64 rows or more).
    assert.equal(at(llamaPresets['llama-7b'], 64), 11008 * 4096 * 2 + (16 << 20));
    // The tiny model's k never reaches two slices of 256, and its weights are too small to copy.
    assert.equal(at(llamaPresets['tiny'], 64), 0);
    // Where the device's matmul does not split, there are no partials.
    assert.equal(planMemory(llamaPresets['llama-7b'], { batchSize: 1, seqLen: 64, dtype: 'f16', splitK: false }, limits128).workspace, 11008 * 4096 * 2);
  });

  it('sizes the KV cache of inference as 2 x layers x batch x KV heads x length x head width', () => {
    const cfg = llamaPresets['tiny'];
    const plan = planMemory(cfg, { batchSize: 3, seqLen: 100, dtype: 'f32', kvCacheLen: 128 });
    assert.equal(plan.kvCache, 2 * cfg.numHiddenLayers * 3 * cfg.numKeyValueHeads * 128 * cfg.headDim * 4);
    assert.equal(plan.optimizer, 0);
  });

  it('splits the 32000 x 4096 f16 embedding and lm_head on a 128 MiB-binding adapter into parts that fit', () => {
    const plan = planMemory(llamaPresets['llama-7b'], { batchSize: 1, seqLen: 16, dtype: 'f16' }, limits128);
    const embed = plan.splits.find((s) => s.name === 'model.embed_tokens.weight');
    assert.ok(embed, 'embedding is split');
    assert.equal(embed.rows.reduce((a, b) => a + b, 0), 32000);
    assert.ok(embed.rows.every((r) => r * 4096 * 2 <= limits128.maxStorageBufferBindingSize));
    assert.ok(plan.splits.some((s) => s.name === 'lm_head.weight'));
    // 11008 x 4096 f16 is 86 MiB: fits without a split.
    assert.ok(!plan.splits.some((s) => s.name.includes('mlp')));
  });

  it('splitRows gives parts that cover every row and each fit the limit', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 64 }), fc.integer({ min: 64, max: 100_000 }), (rows, rowBytes, limit) => {
        const parts = splitRows(rows, rowBytes, limit);
        assert.equal(parts.reduce((a, b) => a + b, 0), rows);
        assert.ok(parts.every((p) => p > 0 && p * rowBytes <= limit));
        assert.ok(parts.length === Math.ceil(rows / Math.floor(limit / rowBytes)));
      }),
    );
  });

  it('refuses up front, with the estimate in the message, logits larger than the binding limit', () => {
    const plan = planMemory(llamaPresets['llama-7b'], { batchSize: 8, seqLen: 512, dtype: 'f16', training: false });
    assert.throws(
      () => checkMemoryPlan(plan, limits128, 'training'),
      (err: unknown) => err instanceof MemoryError && /logits \[8, 512, 32000\] f32 needs 500\.0 MiB.*binding limit of 128\.0 MiB.*estimate: weights 12\.55 GiB/.test(err.message),
    );
  });

  it('sizes training logits as one chunk of the fused loss, so long batches are not refused for their logits', () => {
    const plan = planMemory(llamaPresets['llama-7b'], { batchSize: 8, seqLen: 512, dtype: 'f16', lora: { r: 8, targetModules: ['q_proj', 'v_proj'] } });
    // Plus the copy of lm_head [32000, 4096] f16 the matmul makes for a chunk of 256 rows.
    assert.equal(plan.logits, 3 * lossChunkRows(32000) * 32000 * 4 + 32000 * 4096 * 2);
    assert.doesNotThrow(() => checkMemoryPlan(plan, limits128, 'training'));
  });

  it('refuses a run whose total exceeds the known GPU memory, and accepts one that fits', () => {
    const plan = planMemory(llamaPresets['llama-7b'], { batchSize: 1, seqLen: 64, dtype: 'f32' });
    assert.throws(() => checkMemoryPlan(plan, { ...limits128, totalMemory: 16 * 2 ** 30 }), /needs about 25\.\d+ GiB.*more than the 16\.00 GiB available/);
    assert.doesNotThrow(() => checkMemoryPlan(plan, { ...limits128, totalMemory: 80 * 2 ** 30 }));
  });
});

describe('planMemory with a quantized base and checkpointing', () => {
  it('sizes int8 as a byte per weight plus an f32 absmax per row, and NF4 as half a byte plus a code per 64 and a scale per 256 blocks', () => {
    assert.equal(projectionBytes(4096, 4096, 'int8', 2), 4096 * 4096 + 4096 * 4);
    const blocks = (4096 * 4096) / 64;
    assert.equal(projectionBytes(4096, 4096, 'nf4', 2), (4096 * 4096) / 2 + blocks + (blocks / 256) * 4 + 256 * 4);
    const cfg = llamaPresets['llama-7b'];
    const f16 = planMemory(cfg, { batchSize: 1, seqLen: 1, dtype: 'f16' }).weights;
    const nf4 = planMemory(cfg, { batchSize: 1, seqLen: 1, dtype: 'f16', quantize: 'nf4' }).weights;
    // Embeddings and lm_head (2 x 32000 x 4096) and norms stay f16; the 6.48e9 projection weights take ~0.516 bytes each.
    const embeddings = (2 * 32000 * 4096 + 4096 + 32 * 2 * 4096) * 2;
    assert.ok(Math.abs((nf4 - embeddings) / (f16 - embeddings) - 0.5159 / 2) < 1e-3);
  });

  it('keeps only layer outputs with checkpointing, so activations shrink to L x [B, T, C] plus one layer', () => {
    const cfg = llamaPresets['llama-7b'];
    const opts = { batchSize: 4, seqLen: 256, dtype: 'f16' as const, lora: { r: 8, targetModules: ['q_proj', 'v_proj'] as const } };
    const plain = planMemory(cfg, { ...opts, lora: { ...opts.lora, targetModules: [...opts.lora.targetModules] } });
    const ckpt = planMemory(cfg, { ...opts, lora: { ...opts.lora, targetModules: [...opts.lora.targetModules] }, gradientCheckpointing: true });
    const outputs = 32 * 4 * 256 * 4096 * 2;
    // The embedding, the final norm and the rows the loss picks, [B, T, C] each, are kept either way.
    const outside = 3 * 4 * 256 * 4096 * 2;
    const oneLayer = (plain.activations - outside) / 32;
    assert.equal(ckpt.activations, outputs + oneLayer + outside);
    assert.ok(ckpt.total < plain.total);
  });
});
