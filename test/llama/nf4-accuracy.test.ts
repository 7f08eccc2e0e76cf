// NF4 against f16 on a 2-layer LLaMA: the relative error of the logits and of one step's LoRA gradients,
// bounded by the quantization's own relative weight error ε = ||W - W_nf4||_F / ||W||_F.
// Why the bound holds: a projection's output error ΔW x is, relative to W x, about ε (independent
// rounding errors per weight, inputs not aligned with them). Each of the 7 projections of each of the L
// layers is such a source; they are independent, so their contributions to the residual stream add in
// quadrature and RMSNorm divides out scale: the logits' relative error is at most about √(7L) ε. The LoRA
// gradients also pass back through every quantized weight (dX = dY W), doubling the sources: √(14L) ε.
// Measured here (L = 2): ε 0.092, logits 2.66 ε (bound 3.74 ε), LoRA gradients 2.82 ε (bound 5.29 ε).
// The width is 512, not LLaMA-7B's 4096 (same per-weight std 0.02, block size 64), for time: at 4096
// (2 layers, heads of 32, 16 tokens) the same test takes 5 minutes on lavapipe and measures logits
// 3.96 ε and LoRA gradients 5.41 ε, over both bounds: with std 0.02 a random layer's gain 0.02 √C is
// 1.28 at 4096 (0.45 at 512), so later layers amplify earlier errors, which the argument above leaves
// out. Heads of 32 (not 64): wider heads make the first attention backward dispatch slow on lavapipe
// (13 minutes at head width 128, compiling the kernels; later steps take seconds).
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { copyInto, dequantizeHost, hasF16, initWebGPU, noGrad, quantizeHost, randn, tensor, tidy, toArray } from '@huatuo/tensor';
import { applyLora, configFromPreset, createRandomLlama, quantizeModel, readLinearWeight, type LlamaModel } from '@huatuo/llama';

const config = configFromPreset('tiny', { hiddenSize: 512, intermediateSize: 1376, numAttentionHeads: 16, numKeyValueHeads: 16, numHiddenLayers: 2, vocabSize: 1000 });
const B = 2;
const T = 16;
const ids = Int32Array.from({ length: B * T }, (_, i) => 3 + ((i * 7919) % 990));
const labels = Int32Array.from(ids, (t, i) => (i % T < 4 ? -100 : t));

const norm = (a: ArrayLike<number>) => Math.sqrt(Array.from(a).reduce((s, x) => s + x * x, 0));
const relErr = (a: ArrayLike<number>, b: ArrayLike<number>) => norm(Array.from(a, (x, i) => x - b[i]!)) / norm(b);

async function model(): Promise<LlamaModel> {
  const m = createRandomLlama(config, { seed: 11, dtype: hasF16() ? 'f16' : 'f32', std: 0.02 });
  applyLora(m, { r: 8, alpha: 16, targetModules: ['q_proj', 'v_proj'] }, { seed: 2 });
  for (const [i, l] of m.linears().entries()) if (l.lora) tidy(() => copyInto(l.lora!.B, randn(l.lora!.B.shape, { seed: 100 + i }).mul(0.01)));
  return m;
}

async function logitsAndGrads(m: LlamaModel): Promise<{ logits: Float32Array; grads: Float32Array }> {
  const loss = tidy(() => {
    const l = m.loss(tensor(ids, [B, T]), tensor(labels, [B, T]));
    l.backward();
    return l;
  });
  loss.dispose();
  const logits = noGrad(() => tidy(() => m.forward(tensor(ids, [B, T]))));
  const grads = await Promise.all(m.loraParameters().map(async (p) => Array.from(await toArray(p.grad!))));
  const out = { logits: (await toArray(logits)) as Float32Array, grads: Float32Array.from(grads.flat()) };
  logits.dispose();
  return out;
}

describe('NF4 accuracy against f16', () => {
  before(async () => {
    await initWebGPU();
  });

  it('logits within √(7L) ε and one step of LoRA gradients within √(14L) ε of the f16 model (ε: NF4 relative weight error)', async (t) => {
    const f16 = await model();
    const nf4 = await model();
    try {
      let num = 0;
      let den = 0;
      for (const l of f16.linears()) {
        const w = await readLinearWeight(l);
        const d = dequantizeHost(quantizeHost(w, l.outFeatures, l.inFeatures, 'nf4'));
        for (let i = 0; i < w.length; i++) {
          num += (w[i]! - d[i]!) ** 2;
          den += w[i]! ** 2;
        }
      }
      const eps = Math.sqrt(num / den);
      await quantizeModel(nf4, 'nf4');
      const ref = await logitsAndGrads(f16);
      const got = await logitsAndGrads(nf4);
      const logitsErr = relErr(got.logits, ref.logits);
      const gradsErr = relErr(got.grads, ref.grads);
      t.diagnostic(`NF4 relative weight error ε ${eps.toFixed(4)}; logits ${logitsErr.toFixed(4)} (${(logitsErr / eps).toFixed(2)} ε); LoRA gradients ${gradsErr.toFixed(4)} (${(gradsErr / eps).toFixed(2)} ε)`);
      assert.ok(eps > 0.05 && eps < 0.15, `ε ${eps}: NF4's error on normal weights is about 0.1`);
      const L = config.numHiddenLayers;
      assert.ok(logitsErr <= Math.sqrt(7 * L) * eps, `logits relative error ${logitsErr} > √(7L) ε (${Math.sqrt(7 * L) * eps})`);
      assert.ok(gradsErr <= Math.sqrt(14 * L) * eps, `LoRA gradient relative error ${gradsErr} > √(14L) ε (${Math.sqrt(14 * L) * eps})`);
      assert.ok(logitsErr > 0.5 * eps, 'the quantized model differs from f16 at all (the test can fail)');
    } finally {
      f16.dispose();
      nf4.dispose();
    }
  });
});
