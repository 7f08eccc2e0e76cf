// Qwen2's biased q/k/v over a quantized base (int8, NF4) in f16: prefill adds the bias to the f32 sums of
// the dequantizing product before its one rounding, as linear does for dense weights and the fused decode
// products do; with NF4 the prefill's last logits are the fused decode step's bit for bit, and with int8 both are
// within f16's reach of an f64 model on the same dequantized weights.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { add, dequantizeHost, hasF16, initWebGPU, noGrad, quantizedMatmul, setFusedLinearPreferred, tensor, tidy, toArray, type Tensor } from '@huatuo/tensor';
import { KvCache, loadLlama, type Linear, type LlamaModel } from '@huatuo/llama';
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

/** A projection's weight [out, in] and bias as the model holds them (quantized weights dequantized on the host), in f64. */
async function hostLinear(p: Linear): Promise<{ w: Float64Array; b: Float64Array | null }> {
  const w = p.quantized !== null ? dequantizeHost(await p.quantized.download()) : Float64Array.from((await Promise.all(p.parts.map((t) => toArray(t)))).flatMap((a) => [...a]));
  return { w: Float64Array.from(w), b: p.bias === null ? null : Float64Array.from(await toArray(p.bias)) };
}

/**
 * The last logits of `row` in f64 on the host, as transformers' Qwen2 computes them, over the weights the model
 * holds: its dequantized int8 or NF4 weights, its f16 norms, embeddings and biases; no rounding to f16 anywhere.
 */
async function referenceLastLogits(model: LlamaModel, row: number[]): Promise<Float64Array> {
  const c = model.config;
  const C = c.hiddenSize, D = c.headDim, H = c.numAttentionHeads, Hkv = c.numKeyValueHeads, T = row.length;
  const host = async (t: Tensor) => Float64Array.from(await toArray(t));
  const linear = (x: Float64Array, { w, b }: { w: Float64Array; b: Float64Array | null }, K: number) => {
    const N = w.length / K;
    const y = new Float64Array(N);
    for (let n = 0; n < N; n++) {
      let s = b === null ? 0 : b[n]!;
      for (let k = 0; k < K; k++) s += x[k]! * w[n * K + k]!;
      y[n] = s;
    }
    return y;
  };
  const norm = (x: Float64Array, g: Float64Array) => {
    const r = 1 / Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length + c.rmsNormEps);
    return x.map((v, i) => v * r * g[i]!);
  };
  const rope = (v: Float64Array, heads: number, pos: number) => {
    const out = Float64Array.from(v);
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < D / 2; i++) {
        const angle = pos * c.ropeTheta ** (-(2 * i) / D);
        const a = v[h * D + i]!, b = v[h * D + i + D / 2]!;
        out[h * D + i] = a * Math.cos(angle) - b * Math.sin(angle);
        out[h * D + i + D / 2] = b * Math.cos(angle) + a * Math.sin(angle);
      }
    }
    return out;
  };
  const embed = Float64Array.from((await Promise.all(model.baseEmbedParts.map((t) => toArray(t)))).flatMap((a) => [...a]));
  let xs = row.map((id) => embed.slice(id * C, id * C + C));
  for (const layer of model.layers) {
    const [q, k, v, o, gate, up, down] = await Promise.all(layer.linears().map(hostLinear));
    const g1 = await host(layer.inputNorm), g2 = await host(layer.postNorm);
    const hs = xs.map((x) => norm(x, g1));
    const qs = hs.map((h, t) => rope(linear(h, q!, C), H, t));
    const ks = hs.map((h, t) => rope(linear(h, k!, C), Hkv, t));
    const vs = hs.map((h) => linear(h, v!, C));
    xs = xs.map((x, t) => {
      const merged = new Float64Array(H * D);
      for (let h = 0; h < H; h++) {
        const kv = Math.floor(h / (H / Hkv));
        const scores = ks.slice(0, t + 1).map((kt) => { let s = 0; for (let d = 0; d < D; d++) s += qs[t]![h * D + d]! * kt[kv * D + d]!; return s / Math.sqrt(D); });
        const top = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - top));
        const sum = e.reduce((a, b) => a + b, 0);
        for (let d = 0; d < D; d++) merged[h * D + d] = e.reduce((s, p, j) => s + (p / sum) * vs[j]![kv * D + d]!, 0);
      }
      const x1 = x.map((val, i) => val + linear(merged, o!, H * D)[i]!);
      const h2 = norm(x1, g2);
      const gv = linear(h2, gate!, C), uv = linear(h2, up!, C);
      const inner = gv.map((gi, i) => (gi / (1 + Math.exp(-gi))) * uv[i]!);
      const dv = linear(inner, down!, c.intermediateSize);
      return x1.map((val, i) => val + dv[i]!);
    });
  }
  return linear(norm(xs[T - 1]!, await host(model.norm)), await hostLinear(model.baseLmHead), C);
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
      // int8: the tiled kernel and the matrix-vector ones (fused or not) sum in other orders, so an f32 sum within
      // an f32 ulp or two of an f16 rounding midpoint rounds either way (layer 0's v_proj at the second token has
      // one 0.0002 f16 ulp from it) and the step carries through attention; both paths stay as close to the f64
      // model on the same weights as f16 allows (about 1.2 f16 ulps of the largest logit, int8 and NF4 alike).
      // 4 ulps at the largest logit's magnitude: a wrong row's scale, bias or norm moves these logits by far more.
      const reference = await referenceLastLogits(model, row);
      const top = reference.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      const tolerance = 4 * 2 ** (Math.floor(Math.log2(top)) - 10);
      for (const [what, got] of [['prefill', prefill], ['fused decode', fused]] as const) {
        const err = got.reduce((m, v, i) => Math.max(m, Math.abs(v - reference[i]!)), 0);
        assert.ok(err <= tolerance, `${what}: the last logits are ${err} from the f64 model's (largest ${top}); at most ${tolerance}`);
      }
    } finally {
      model.dispose();
    }
  });
}
