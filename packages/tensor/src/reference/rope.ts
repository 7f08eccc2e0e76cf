// CPU reference of rotary position embedding (Hugging Face LLaMA rotate_half), forward and backward.
// Angles follow torch's float32 arithmetic (inv_freq, its scaling and pos * inv_freq rounded to f32);
// the rotation itself, and YaRN's attention factor on cos and sin, are in float64.
import type { RopeFrequencies, RopeScaling } from '../ops/rope-scaling.js';
import { refZeros, type RefTensor } from './ref-tensor.js';

const f32 = Math.fround;

/** The base of dynamic NTK scaling: theta ((factor L / M) - (factor - 1))^(D / (D - 2)), L = max(seqLen, M). */
function dynamicTheta(D: number, theta: number, s: Extract<RopeScaling, { type: 'dynamic' }>): number {
  const M = s.maxPositionEmbeddings;
  const power = D / (D - 2);
  // transformers: python floats at init (seqLen <= M), float32 0-dim tensors once the length grew past M.
  if (s.seqLen <= M) return theta * ((s.factor * M) / M - (s.factor - 1)) ** power;
  const r = f32(f32(f32(f32(s.factor) * s.seqLen) / M) - f32(s.factor - 1));
  return f32(f32(theta) * f32(r ** power));
}

/** Llama 3.1's scaling of one inverse frequency (float32 steps; `c / t` in torch is reciprocal(t) * c). */
function llama3Freq(inv: number, s: Extract<RopeScaling, { type: 'llama3' }>): number {
  const old = s.originalMaxPositionEmbeddings;
  const wavelen = f32(f32(1 / inv) * f32(2 * Math.PI));
  if (wavelen < f32(old / s.highFreqFactor)) return inv;
  const divided = f32(inv / f32(s.factor));
  if (wavelen > f32(old / s.lowFreqFactor)) return divided;
  const smooth = f32(f32(f32(f32(1 / wavelen) * old) - f32(s.lowFreqFactor)) / f32(s.highFreqFactor - s.lowFreqFactor));
  return f32(f32(f32(f32(1 - smooth) * inv) / f32(s.factor)) + f32(smooth * inv));
}

/** YaRN's inverse frequencies: 1 / theta^(2j / D) and the same over factor, blended by the ramp between the correction dimensions. */
function yarnFreqs(D: number, theta: number, s: Extract<RopeScaling, { type: 'yarn' }>): Float32Array {
  // The dimension whose wavelength turns `rotations` times in the original context (float64, as python floats).
  const dimFor = (rotations: number) => (D * Math.log(s.originalMaxPositionEmbeddings / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
  const truncate = s.truncate ?? true;
  const low = Math.max(truncate ? Math.floor(dimFor(s.betaFast || 32)) : dimFor(s.betaFast || 32), 0);
  let high = Math.min(truncate ? Math.ceil(dimFor(s.betaSlow || 1)) : dimFor(s.betaSlow || 1), D - 1);
  if (high === low) high += 0.001;
  const out = new Float32Array(D / 2);
  for (let j = 0; j < D / 2; j++) {
    const base = f32(Math.pow(f32(theta), f32((2 * j) / D)));
    const extrapolation = f32(1 / base);
    const interpolation = f32(1 / f32(f32(s.factor) * base));
    const linear = f32(f32(j - f32(low)) / f32(high - low));
    const keep = f32(1 - (linear < 0 ? 0 : linear > 1 ? 1 : linear));
    out[j] = f32(f32(interpolation * f32(1 - keep)) + f32(extrapolation * keep));
  }
  return out;
}

/** The factor on cos and sin: YaRN's attention factor (given, or from factor, mscale and mscaleAllDim), else 1. */
export function refRopeAttentionScaling(freq: RopeFrequencies): number {
  const s = typeof freq === 'number' ? null : (freq.scaling ?? null);
  if (s?.type !== 'yarn') return 1;
  if (s.attentionFactor !== undefined) return s.attentionFactor;
  const mscale = (m: number) => (s.factor <= 1 ? 1 : 0.1 * m * Math.log(s.factor) + 1);
  return s.mscale && s.mscaleAllDim ? mscale(s.mscale) / mscale(s.mscaleAllDim) : mscale(1);
}

/**
 * inv_freq[j] = 1 / theta^(2j / D) in float32 steps, as `1.0 / (base ** (arange(0, D, 2).float() / D))`,
 * then scaled: divided by factor (linear), by wavelength band (llama3), with dynamic NTK's base, or YaRN's blend.
 */
export function refRopeInvFreq(D: number, freq: RopeFrequencies): Float32Array {
  const theta = typeof freq === 'number' ? freq : freq.theta;
  const s = typeof freq === 'number' ? null : (freq.scaling ?? null);
  if (s?.type === 'yarn') return yarnFreqs(D, theta, s);
  const base = s?.type === 'dynamic' ? dynamicTheta(D, theta, s) : theta;
  const out = new Float32Array(D / 2);
  for (let j = 0; j < D / 2; j++) {
    const e = f32((2 * j) / D);
    const inv = f32(1 / f32(Math.pow(f32(base), e)));
    out[j] = s?.type === 'linear' ? f32(inv / f32(s.factor)) : s?.type === 'llama3' ? llama3Freq(inv, s) : inv;
  }
  return out;
}

function rotate(x: RefTensor, positions: RefTensor, freq: RopeFrequencies, sign: number): RefTensor {
  const D = x.shape[x.shape.length - 1]!;
  const T = x.shape[x.shape.length - 2]!;
  const h = D / 2;
  const N = x.data.length / (T * D || 1);
  const B = positions.shape.length === 2 ? positions.shape[0]! : 1;
  const perBatch = N / B;
  const invFreq = refRopeInvFreq(D, freq);
  const scale = refRopeAttentionScaling(freq);
  const out = refZeros(x.shape);
  for (let n = 0; n < N; n++) {
    const b = positions.shape.length === 2 ? Math.floor(n / perBatch) : 0;
    for (let t = 0; t < T; t++) {
      const pos = positions.data[b * T + t]!;
      const base = (n * T + t) * D;
      for (let j = 0; j < h; j++) {
        const angle = Math.fround(pos * invFreq[j]!);
        const c = Math.cos(angle) * scale;
        const s = sign * Math.sin(angle) * scale;
        const x1 = x.data[base + j]!;
        const x2 = x.data[base + j + h]!;
        out.data[base + j] = x1 * c - x2 * s;
        out.data[base + j + h] = x2 * c + x1 * s;
      }
    }
  }
  return out;
}

/**
 * out[..., j] = x[j] cos - x[j + D/2] sin, out[..., j + D/2] = x[j + D/2] cos + x[j] sin, with
 * angle = pos * inv_freq[j]; x is [..., T, D], positions [T] or [B, T] (B = x's first dim); `freq` is
 * theta or a spec with scaling.
 */
export function refRope(x: RefTensor, positions: RefTensor, freq: RopeFrequencies): RefTensor {
  return rotate(x, positions, freq, 1);
}

/** Gradient of rope: the inverse rotation (sin negated) applied to dy. */
export function refRopeBackward(dy: RefTensor, positions: RefTensor, freq: RopeFrequencies): RefTensor {
  return rotate(dy, positions, freq, -1);
}
