// The fused, chunked lm_head and loss: the same loss and LoRA gradients as cross-entropy over full
// logits (whatever the chunk size, with ignored labels and padding), and peak memory bounded by one
// chunk of logits instead of all of them.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { copyInto, noGrad, slice, initWebGPU, randn, resetPeakBytes, runtimeStats, tensor, tidy, toArray, type Tensor } from '@huatuo/tensor';
import { applyLora, configFromPreset, createRandomLlama, type LlamaModel } from '@huatuo/llama';
import { assertClose } from '../tensor/helpers.js';

const B = 3;
const T = 11;

/** ids, labels (prompt positions -100) and mask (left padding on row 0) of a small batch. */
function batch(V: number): { ids: Int32Array; labels: Int32Array; mask: Int32Array } {
  const ids = Int32Array.from({ length: B * T }, (_, i) => 3 + ((i * 7919) % (V - 3)));
  const labels = Int32Array.from(ids, (t, i) => (i % T < 4 ? -100 : t));
  const mask = Int32Array.from({ length: B * T }, (_, i) => (i < 2 ? 0 : 1));
  for (let i = 0; i < 2; i++) labels[i] = -100;
  return { ids, labels, mask };
}

/** Loss and LoRA gradients, through the chunked loss or (labels that are not host data) full logits. */
async function lossAndGrads(model: LlamaModel, chunkRows: number | 'full'): Promise<{ loss: number; grads: Float32Array[] }> {
  const { ids, labels, mask } = batch(model.config.vocabSize);
  for (const p of model.loraParameters()) p.grad = null;
  const loss = tidy(() => {
    // A view at an offset is not host data: the loss then takes the full-logits path.
    const l = chunkRows === 'full' ? slice(tensor(Int32Array.from([...new Int32Array(T), ...labels]), [B + 1, T]), 0, 1, B + 1) : tensor(labels, [B, T]);
    const loss = model.loss(tensor(ids, [B, T]), l, tensor(mask, [B, T]), chunkRows === 'full' ? {} : { lossChunkRows: chunkRows });
    loss.backward();
    return loss;
  });
  const out = { loss: (await toArray(loss))[0]!, grads: await Promise.all(model.loraParameters().map(async (p) => (await toArray(p.grad!)) as Float32Array)) };
  loss.dispose();
  return out;
}

describe('chunked lm_head and cross-entropy', () => {
  before(async () => {
    await initWebGPU();
  });

  it('gives the loss and LoRA gradients of cross-entropy over full logits, for chunks of 1, 5 and all rows', async () => {
    const model = createRandomLlama(configFromPreset('tiny', { hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 1, vocabSize: 500 }), { seed: 3, std: 0.2 });
    applyLora(model, { r: 4, targetModules: ['q_proj', 'v_proj', 'down_proj'] }, { seed: 1 });
    try {
      // A nonzero B so that every LoRA parameter gets a gradient.
      for (const l of model.linears()) if (l.lora) noGrad(() => tidy(() => copyInto(l.lora!.B, randn(l.lora!.B.shape, { seed: 5 }).mul(0.1))));
      const full = await lossAndGrads(model, 'full');
      assert.ok(Number.isFinite(full.loss));
      for (const rows of [1, 5, 1000]) {
        const got = await lossAndGrads(model, rows);
        assertClose([got.loss], [full.loss], { atol: 1e-6, rtol: 1e-5 }, `loss, chunks of ${rows}`);
        got.grads.forEach((g, i) => assertClose(g, full.grads[i]!, { atol: 1e-7, rtol: 1e-4 }, `LoRA gradient ${i}, chunks of ${rows}`));
      }
    } finally {
      model.dispose();
    }
  });

  it('gives lm_head the weight gradient of full logits when it trains (a base trained in full), whatever the chunk size', async () => {
    const model = createRandomLlama(configFromPreset('tiny', { hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 1, vocabSize: 500 }), { seed: 5, std: 0.2 });
    const head = model.lmHead.parts;
    const grads = async (rows: number | 'full') => {
      for (const p of head) p.grad = null;
      await lossAndGrads(model, rows);
      return Promise.all(head.map(async (p) => (await toArray(p.grad!)) as Float32Array));
    };
    try {
      for (const p of head) p.requireGrad();
      const full = await grads('full');
      assert.ok(full.some((g) => g.some((v) => v !== 0)), 'full logits give lm_head a gradient');
      for (const rows of [1, 7, 1000]) {
        const got = await grads(rows);
        got.forEach((g, i) => assertClose(g, full[i]!, { atol: 1e-7, rtol: 1e-4 }, `lm_head gradient, part ${i}, chunks of ${rows}`));
      }
    } finally {
      model.dispose();
    }
  });

  it('holds one chunk of logits at a time: the peak stays under the full [N, V] logits', async () => {
    const model = createRandomLlama(configFromPreset('tiny', { numHiddenLayers: 1 }), { seed: 4 }); // V = 32000
    applyLora(model, { r: 4, targetModules: ['q_proj'] }, { seed: 1 });
    try {
      const { ids, labels, mask } = batch(32000);
      const N = Array.from(labels).filter((l, i) => i % T !== 0 && l !== -100).length;
      const fullLogits = N * 32000 * 4;
      const peak = async (rows: number) => {
        resetPeakBytes();
        const start = runtimeStats().bytesInUse;
        tidy(() => model.loss(tensor(ids, [B, T]), tensor(labels, [B, T]), tensor(mask, [B, T]), { lossChunkRows: rows }).backward());
        return runtimeStats().peakBytes - start;
      };
      const whole = await peak(N);
      const chunked = await peak(2);
      assert.ok(whole >= fullLogits, `one chunk of all ${N} rows peaks at ${whole} bytes, at least the full logits (${fullLogits})`);
      assert.ok(chunked < fullLogits / 2, `peak ${chunked} bytes with chunks of 2 rows, full logits ${fullLogits}`);
    } finally {
      model.dispose();
    }
  });
});
