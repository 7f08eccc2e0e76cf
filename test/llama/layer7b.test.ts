// One decoder layer at LLaMA-7B dimensions (C 4096, 32 heads, MLP 11008) with seeded random f32
// weights, against a float64 CPU reference of Hugging Face's LlamaDecoderLayer computed from the
// same weights read back. The MLP weights (176 MB in f32) exceed a 128 MiB binding limit, so
// they are split along their output rows.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { initWebGPU, noGrad, randn, tensor, tidy, toArray } from '@huatuo/tensor';
import { configFromPreset, createRandomLlama } from '@huatuo/llama';
import { assertClose } from '../tensor/helpers.js';

/** y[t, o] = sum_i x[t, i] W[o, i] over the concatenated row parts of W. */
function linear(x: Float64Array, T: number, inF: number, w: Float32Array, outF: number): Float64Array {
  const y = new Float64Array(T * outF);
  for (let t = 0; t < T; t++) {
    const xo = t * inF;
    for (let o = 0; o < outF; o++) {
      const wo = o * inF;
      let s = 0;
      for (let i = 0; i < inF; i++) s += x[xo + i]! * w[wo + i]!;
      y[t * outF + o] = s;
    }
  }
  return y;
}

function rmsNorm(x: Float64Array, T: number, C: number, w: Float32Array, eps: number): Float64Array {
  const y = new Float64Array(T * C);
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let c = 0; c < C; c++) ss += x[t * C + c]! ** 2;
    const r = 1 / Math.sqrt(ss / C + eps);
    for (let c = 0; c < C; c++) y[t * C + c] = w[c]! * x[t * C + c]! * r;
  }
  return y;
}

/** rotate_half RoPE on [T, H * D] laid out as heads of D. */
function rope(x: Float64Array, T: number, H: number, D: number, theta: number): Float64Array {
  const y = new Float64Array(x.length);
  const half = D / 2;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < H; h++) {
      const base = t * H * D + h * D;
      for (let j = 0; j < half; j++) {
        const angle = t / theta ** ((2 * j) / D);
        const [c, s] = [Math.cos(angle), Math.sin(angle)];
        const a = x[base + j]!;
        const b = x[base + j + half]!;
        y[base + j] = a * c - b * s;
        y[base + j + half] = b * c + a * s;
      }
    }
  }
  return y;
}

describe('a decoder layer at LLaMA-7B dimensions', () => {
  before(async () => {
    await initWebGPU();
  });

  it('matches the float64 CPU reference on a 4-token sequence, with MLP weights split over the 128 MiB binding limit', async () => {
    const config = configFromPreset('llama-7b', { numHiddenLayers: 1, vocabSize: 64, torchDtype: 'float32' });
    const model = createRandomLlama(config, { seed: 7, std: 0.02, maxBindingBytes: 128 * 1024 * 1024 });
    try {
      const layer = model.layers[0]!;
      assert.equal(layer.gateProj.parts.length, 2, 'gate_proj [11008, 4096] f32 (176 MB) is split in two');
      assert.equal(layer.qProj.parts.length, 1);
      const { hiddenSize: C, intermediateSize: I, numAttentionHeads: H, headDim: D } = config;
      const T = 4;
      const xT = randn([1, T, C], { seed: 11 });
      const yT = noGrad(() => tidy(() => layer.forward(model, xT, tensor(new Int32Array([0, 1, 2, 3])), null, undefined)));
      const got = await toArray(yT);
      const x = Float64Array.from(await toArray(xT));
      const read = async (ps: readonly import('@huatuo/tensor').Tensor[]) => {
        const arrays = await Promise.all(ps.map((p) => toArray(p)));
        const out = new Float32Array(arrays.reduce((s, a) => s + a.length, 0));
        let at = 0;
        for (const a of arrays) (out.set(a as Float32Array, at), (at += a.length));
        return out;
      };
      const eps = config.rmsNormEps;
      const h = rmsNorm(x, T, C, await read([layer.inputNorm]), eps);
      const q = rope(linear(h, T, C, await read(layer.qProj.parts), C), T, H, D, config.ropeTheta);
      const k = rope(linear(h, T, C, await read(layer.kProj.parts), C), T, H, D, config.ropeTheta);
      const v = linear(h, T, C, await read(layer.vProj.parts), C);
      const att = new Float64Array(T * C);
      for (let hd = 0; hd < H; hd++) {
        for (let i = 0; i < T; i++) {
          const s = new Float64Array(i + 1);
          for (let j = 0; j <= i; j++) {
            let d = 0;
            for (let e = 0; e < D; e++) d += q[i * C + hd * D + e]! * k[j * C + hd * D + e]!;
            s[j] = d / Math.sqrt(D);
          }
          const m = Math.max(...s);
          const p = Array.from(s, (z) => Math.exp(z - m));
          const z = p.reduce((a, b) => a + b, 0);
          for (let e = 0; e < D; e++) {
            let acc = 0;
            for (let j = 0; j <= i; j++) acc += (p[j]! / z) * v[j * C + hd * D + e]!;
            att[i * C + hd * D + e] = acc;
          }
        }
      }
      const o = linear(att, T, C, await read(layer.oProj.parts), C);
      const x1 = x.map((xi, i) => xi + o[i]!);
      const h2 = rmsNorm(x1, T, C, await read([layer.postNorm]), eps);
      const gate = linear(h2, T, C, await read(layer.gateProj.parts), I);
      const up = linear(h2, T, C, await read(layer.upProj.parts), I);
      const inner = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]!);
      const down = linear(inner, T, I, await read(layer.downProj.parts), C);
      const expected = x1.map((xi, i) => xi + down[i]!);
      assertClose(got, expected, { atol: 1e-4, rtol: 1e-3 }, '7B-sized decoder layer output');
      // The layer must have changed its input: a no-op would pass only if the sublayers vanished.
      assert.ok(expected.some((e, i) => Math.abs(e - x[i]!) > 1e-3));
      xT.dispose();
      yT.dispose();
    } finally {
      model.dispose();
    }
  });
});
