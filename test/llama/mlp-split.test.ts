// An MLP activation over the binding limit is split, not refused: the decoder layer runs its MLP on
// chunks of token rows (model.maxBindingBytes, by default the adapter's limit). At lavapipe's 128 MiB,
// two 1024-token sequences through an MLP 24576 wide ([2, 1024, 24576] f32, 192 MiB, which used to end
// in a ShapeError) give the logits of each sequence run alone (96 MiB, unsplit). On a small model with
// a lowered limit, chunks that cross sequences give the logits, loss and LoRA gradients (adapters on
// the MLP too, with and without checkpointing) of the unsplit model.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { copyInto, deviceInfo, initWebGPU, noGrad, randn, tensor, tidy, toArray } from '@huatuo/tensor';
import { applyLora, configFromPreset, createRandomLlama, mlpChunkRows, planMemory, type LlamaConfig, type LlamaModel, type LoraTargetModule } from '@huatuo/llama';
import { assertClose } from '../tensor/helpers.js';

const idsOf = (B: number, T: number, V: number) => Int32Array.from({ length: B * T }, (_, i) => 3 + ((i * 7919 + Math.floor(i / T) * 13) % (V - 3)));

function model(config: LlamaConfig, targets: LoraTargetModule[]): LlamaModel {
  const m = createRandomLlama(config, { seed: 5, dtype: 'f32' });
  applyLora(m, { r: 4, alpha: 8, dropout: 0, targetModules: targets }, { seed: 3 });
  for (const [i, l] of m.linears().entries()) if (l.lora) noGrad(() => tidy(() => copyInto(l.lora!.B, randn(l.lora!.B.shape, { seed: 50 + i }).mul(0.05))));
  return m;
}

async function logits(m: LlamaModel, ids: Int32Array, B: number, T: number): Promise<Float32Array> {
  const out = noGrad(() => tidy(() => m.forward(tensor(ids, [B, T]))));
  const values = (await toArray(out)) as Float32Array;
  out.dispose();
  return values;
}

/** Loss and LoRA gradients of one training step (no optimizer step). */
async function step(m: LlamaModel, ids: Int32Array, B: number, T: number): Promise<{ loss: number; grads: Float32Array[] }> {
  for (const p of m.loraParameters()) {
    p.grad?.dispose();
    p.grad = null;
  }
  const loss = tidy(() => {
    const l = m.loss(tensor(ids, [B, T]), tensor(ids, [B, T]));
    l.backward();
    return l;
  });
  const out = { loss: (await toArray(loss))[0]!, grads: await Promise.all(m.loraParameters().map(async (p) => (await toArray(p.grad!)) as Float32Array)) };
  loss.dispose();
  return out;
}

describe('an MLP activation over the binding limit', () => {
  before(async () => {
    await initWebGPU();
  });

  it("at the adapter's limit runs in chunks of token rows, with the logits of each sequence run unsplit", async (t) => {
    const [B, T, V] = [2, 1024, 256];
    const config = configFromPreset('tiny', { hiddenSize: 32, intermediateSize: 24576, numHiddenLayers: 1, numAttentionHeads: 2, numKeyValueHeads: 2, vocabSize: V, maxPositionEmbeddings: T });
    const limit = Math.min(deviceInfo()!.maxStorageBufferBindingSize, deviceInfo()!.maxBufferSize);
    const I = config.intermediateSize;
    if (B * T * I * 4 <= limit || T * I * 4 > limit) return t.skip(`needs a binding limit between ${T * I * 4} and ${B * T * I * 4} bytes (this adapter: ${limit})`);
    assert.ok(mlpChunkRows(B * T, I, 'f32', limit) < B * T, 'the batch is split');
    assert.equal(mlpChunkRows(T, I, 'f32', limit), T, 'one sequence is not');
    const plan = planMemory(config, { batchSize: B, seqLen: T, dtype: 'f32', lora: { r: 4, targetModules: ['q_proj', 'v_proj'] } });
    assert.ok(plan.largestActivation.bytes <= limit, `the plan refuses nothing: ${plan.largestActivation.name}`);
    const m = model(config, ['q_proj', 'v_proj']);
    try {
      const ids = idsOf(B, T, V);
      const want = new Float32Array(B * T * V);
      for (let b = 0; b < B; b++) want.set(await logits(m, ids.slice(b * T, (b + 1) * T), 1, T), b * T * V);
      assertClose(await logits(m, ids, B, T), want, { atol: 1e-5, rtol: 1e-4 }, 'logits of the split batch');
    } finally {
      m.dispose();
    }
  });

  it('in chunks that cross sequences gives the logits, loss and LoRA gradients of the unsplit MLP, with and without checkpointing', async () => {
    const [B, T, V] = [2, 48, 512];
    const config = configFromPreset('tiny', { hiddenSize: 32, intermediateSize: 172, numHiddenLayers: 2, numAttentionHeads: 2, numKeyValueHeads: 1, vocabSize: V });
    const m = model(config, ['q_proj', 'v_proj', 'gate_proj', 'up_proj', 'down_proj']);
    const ids = idsOf(B, T, V);
    const unsplit = m.maxBindingBytes;
    const small = 40 * config.intermediateSize * 4;
    assert.equal(mlpChunkRows(B * T, config.intermediateSize, 'f32', small), 40, 'chunks of 40, 40 and 16 rows');
    try {
      for (const checkpointing of [false, true]) {
        m.gradientCheckpointing = checkpointing;
        m.maxBindingBytes = unsplit;
        const wantLogits = await logits(m, ids, B, T);
        const want = await step(m, ids, B, T);
        m.maxBindingBytes = small;
        assertClose(await logits(m, ids, B, T), wantLogits, { atol: 1e-6, rtol: 1e-5 }, 'logits');
        const got = await step(m, ids, B, T);
        assertClose([got.loss], [want.loss], { atol: 1e-6, rtol: 1e-6 }, 'loss');
        for (const [i, g] of got.grads.entries()) assertClose(g, want.grads[i]!, { atol: 1e-7, rtol: 1e-4 }, `checkpointing ${checkpointing}: LoRA gradient ${i}`);
      }
    } finally {
      m.dispose();
    }
  });
});
