// NF4 against f16 on a 2-layer LLaMA: the relative error of the logits and of one step's LoRA gradients,
// held against a noise model of the same size. ε_k = ||W_k - nf4(W_k)||_F / ||W_k||_F per projection; the
// noise model adds independent zero-mean noise of std ε_k rms(W_k) to every weight of projection k (the
// same Frobenius error in each matrix) and runs unquantized. To first order both errors are J ΔW summed
// over the weights; NF4's ΔW is, beside a shrink of W by about ε² (0.8 %, second order), zero-mean
// rounding that each weight's own value decides and the Jacobian J does not see, so E||J ΔW||² is the
// noise model's: the ratio of the two errors is 1 up to one draw's spread and second-order terms, and the
// test holds it to [0.8, 1.25]. What the network does to a relative weight error (a random layer's gain,
// about 0.02 √C: 1.28 at 4096, 0.45 at 512, which a bound like √(7L) ε leaves out) is measured by the noise
// model rather than assumed. Measured on lavapipe (ε 0.092, L = 2):
//   width 4096: logits NF4 4.08 ε, noise model 4.10 ε (ratio 0.995); LoRA gradients 5.22 ε, 5.37 ε (0.972)
//   width  512: logits NF4 2.63 ε, noise model 2.48 ε (ratio 1.063); LoRA gradients 2.39 ε, 2.37 ε (1.008)
// At width 512 a kernel reading the two codes of each byte swapped gives a ratio of 6.3; a 10 % error of
// every absmax, 1.17 (RMSNorm absorbs most of a uniform scale). Hidden 4096 and MLP 11008 as LLaMA-7B; heads of 32 (128 of
// them: the first attention backward dispatch at head width 128 compiles for minutes on lavapipe), a
// vocabulary of 1000 and 16 tokens keep the GPU part to seconds; the 400 M weights are drawn, converted
// and quantized once on the host and uploaded straight into the three models (about 60 s on lavapipe).
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { NF4_CODE, QuantizedWeight, copyInto, hasF16, initWebGPU, nf4Absmax, nf4CodeAt, noGrad, ones, quantizeNf4, randn, synchronize, tensor, tidy, toArray, type Nf4Weight } from '@huatuo/tensor';
import { applyLora, configFromPreset, expectedWeights, f32ToF16, type LlamaConfig, type LlamaModel } from '@huatuo/llama';
import { assembleModel, bindingLimit } from '@huatuo/llama/internal';

const B = 1;
const T = 16;

const norm = (a: ArrayLike<number>) => Math.sqrt(Array.from(a).reduce((s, x) => s + x * x, 0));
const relErr = (a: ArrayLike<number>, b: ArrayLike<number>) => norm(Array.from(a, (x, i) => x - b[i]!)) / norm(b);

/** xorshift32: a fast seeded stream of 32-bit values for the 400 M host weights at LLaMA-7B width. */
function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
}

/** Seeded normals of std `std` (Marsaglia's polar method). */
function fillNormal(out: Float32Array, seed: number, std: number): Float32Array {
  const next = xorshift(seed);
  for (let i = 0; i < out.length; ) {
    const [u, v] = [next() / 2147483648 - 1, next() / 2147483648 - 1];
    const q = u * u + v * v;
    if (q >= 1 || q === 0) continue;
    const f = std * Math.sqrt((-2 * Math.log(q)) / q);
    out[i++] = u * f;
    if (i < out.length) out[i++] = v * f;
  }
  return out;
}

/** ||w - nf4(w)||² with nf4(w) decoded as dequantizeNf4 does, without its [rows, cols] copy. */
function squaredError(w: Float32Array, q: Nf4Weight): number {
  const absmax = nf4Absmax(q);
  let e = 0;
  for (let i = 0; i < w.length; i++) e += (w[i]! - NF4_CODE[nf4CodeAt(q.packed, i)]! * absmax[i >> 6]!) ** 2;
  return e;
}

interface Models {
  f16: LlamaModel;
  nf4: LlamaModel;
  noise: LlamaModel;
  /** NF4's relative weight error over every projection. */
  eps: number;
}

/**
 * Three models with the same normal weights (std 0.02, norms 1): f16; its decoder projections in NF4; and
 * f16 with independent uniform noise of std ε_k rms(W_k) added to each projection k (uniform rather than
 * Gaussian: only the noise's variance enters E||J ΔW||², and it is cheaper to draw for 400 M weights).
 */
async function models(config: LlamaConfig): Promise<Models> {
  const projection = /\.(self_attn|mlp)\./;
  const [plain, noisy, quantized] = [new Map<string, Uint16Array>(), new Map<string, Uint16Array>(), new Map<string, QuantizedWeight>()];
  let [num, den] = [0, 0];
  for (const [k, spec] of expectedWeights(config).entries()) {
    if (spec.shape.length !== 2) continue;
    const [rows, cols] = spec.shape as [number, number];
    const w = fillNormal(new Float32Array(rows * cols), 1000 + k, 0.02);
    plain.set(spec.name, f32ToF16(w));
    if (!projection.test(spec.name)) continue;
    const q = quantizeNf4(w, rows, cols);
    quantized.set(spec.name, QuantizedWeight.upload(q, spec.name));
    const e = squaredError(w, q);
    num += e;
    for (let i = 0; i < w.length; i++) den += w[i]! ** 2;
    const [next, half] = [xorshift(5000 + k), Math.sqrt((3 * e) / w.length)]; // uniform on [-half, half]: variance e / n
    for (let i = 0; i < w.length; i++) w[i] = w[i]! + half * (next() / 2147483648 - 1);
    noisy.set(spec.name, f32ToF16(w));
  }
  const build = (weights: Map<string, Uint16Array>, q?: Map<string, QuantizedWeight>) => {
    const m = assembleModel(
      config,
      'f16',
      bindingLimit(),
      (spec, rows) => {
        assert.equal(rows.length, 1, `${spec.name} fits one binding`);
        return [tensor(weights.get(spec.name) ?? plain.get(spec.name)!, spec.shape, { dtype: 'f16' })];
      },
      (spec) => ones(spec.shape, { dtype: 'f16' }),
      q && ((spec) => q.get(spec.name)!),
    );
    applyLora(m, { r: 8, alpha: 16, targetModules: ['q_proj', 'v_proj'] }, { seed: 2 });
    for (const [i, l] of m.linears().entries()) if (l.lora) noGrad(() => tidy(() => copyInto(l.lora!.B, randn(l.lora!.B.shape, { seed: 100 + i }).mul(0.01))));
    return m;
  };
  const models = { f16: build(plain), nf4: build(plain, quantized), noise: build(noisy), eps: Math.sqrt(num / den) };
  await synchronize();
  return models;
}

async function logitsAndGrads(m: LlamaModel, ids: Int32Array, labels: Int32Array): Promise<{ logits: Float32Array; grads: Float32Array }> {
  tidy(() => m.loss(tensor(ids, [B, T]), tensor(labels, [B, T])).backward());
  const logits = noGrad(() => tidy(() => m.forward(tensor(ids, [B, T]))));
  const grads = await Promise.all(m.loraParameters().map(async (p) => Array.from(await toArray(p.grad!))));
  const out = { logits: (await toArray(logits)) as Float32Array, grads: Float32Array.from(grads.flat()) };
  logits.dispose();
  return out;
}

async function check(config: LlamaConfig, diagnostic: (m: string) => void): Promise<void> {
  const V = config.vocabSize;
  const ids = Int32Array.from({ length: B * T }, (_, i) => 3 + ((i * 7919) % (V - 10)));
  const labels = Int32Array.from(ids, (t, i) => (i % T < 4 ? -100 : t));
  const { f16, nf4, noise, eps } = await models(config);
  try {
    const ref = await logitsAndGrads(f16, ids, labels);
    const [q, n] = [await logitsAndGrads(nf4, ids, labels), await logitsAndGrads(noise, ids, labels)];
    const err = { logits: relErr(q.logits, ref.logits), grads: relErr(q.grads, ref.grads) };
    const model = { logits: relErr(n.logits, ref.logits), grads: relErr(n.grads, ref.grads) };
    const ratio = { logits: err.logits / model.logits, grads: err.grads / model.grads };
    diagnostic(
      `width ${config.hiddenSize}: ε ${eps.toFixed(4)}; logits: NF4 ${err.logits.toFixed(4)} (${(err.logits / eps).toFixed(2)} ε), noise model ${model.logits.toFixed(4)} (${(model.logits / eps).toFixed(2)} ε), ratio ${ratio.logits.toFixed(3)}; ` +
        `LoRA gradients: NF4 ${err.grads.toFixed(4)} (${(err.grads / eps).toFixed(2)} ε), noise model ${model.grads.toFixed(4)} (${(model.grads / eps).toFixed(2)} ε), ratio ${ratio.grads.toFixed(3)}`,
    );
    assert.ok(eps > 0.05 && eps < 0.15, `ε ${eps}: NF4's error on normal weights is about 0.09`);
    for (const k of ['logits', 'grads'] as const) {
      assert.ok(ratio[k] >= 0.8 && ratio[k] <= 1.25, `${k}: NF4's relative error ${err[k]} against the noise model's ${model[k]}: ratio ${ratio[k]}, outside [0.8, 1.25]`);
      assert.ok(model[k] > 0.5 * eps, `${k}: the noise model's error ${model[k]} is below ε / 2: the perturbation did not reach the output`);
    }
  } finally {
    for (const m of [f16, nf4, noise]) m.dispose();
  }
}

describe('NF4 accuracy against f16', () => {
  before(async () => {
    await initWebGPU();
  });

  it('logits and LoRA gradients at width 512 within [0.8, 1.25] of a weight noise of the same size', async (t) => {
    if (!hasF16()) return t.skip('needs shader-f16');
    const config = configFromPreset('tiny', { hiddenSize: 512, intermediateSize: 1376, numAttentionHeads: 16, numKeyValueHeads: 16, numHiddenLayers: 2, vocabSize: 1000 });
    await check(config, (m) => t.diagnostic(m));
  });

  it('logits and LoRA gradients at LLaMA-7B width (4096, MLP 11008) within [0.8, 1.25] of the same noise', async (t) => {
    if (!hasF16()) return t.skip('needs shader-f16');
    const config = configFromPreset('llama-7b', { numAttentionHeads: 128, numKeyValueHeads: 128, numHiddenLayers: 2, vocabSize: 1000 });
    await check(config, (m) => t.diagnostic(m));
  });
});
