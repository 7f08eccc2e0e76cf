// CPU reference of rotary position embedding (Hugging Face LLaMA rotate_half), forward and backward.
// Angles follow torch's float32 arithmetic (inv_freq and pos * inv_freq rounded to f32); the
// rotation itself is in float64.
import { refZeros, type RefTensor } from './ref-tensor.js';

/** inv_freq[j] = 1 / theta^(2j / D) in float32 steps, as `1.0 / (base ** (arange(0, D, 2).float() / D))`. */
export function refRopeInvFreq(D: number, theta: number): Float32Array {
  const out = new Float32Array(D / 2);
  for (let j = 0; j < D / 2; j++) {
    const e = Math.fround((2 * j) / D);
    out[j] = Math.fround(1 / Math.fround(Math.pow(theta, e)));
  }
  return out;
}

function rotate(x: RefTensor, positions: RefTensor, theta: number, sign: number): RefTensor {
  const D = x.shape[x.shape.length - 1]!;
  const T = x.shape[x.shape.length - 2]!;
  const h = D / 2;
  const N = x.data.length / (T * D || 1);
  const B = positions.shape.length === 2 ? positions.shape[0]! : 1;
  const perBatch = N / B;
  const invFreq = refRopeInvFreq(D, theta);
  const out = refZeros(x.shape);
  for (let n = 0; n < N; n++) {
    const b = positions.shape.length === 2 ? Math.floor(n / perBatch) : 0;
    for (let t = 0; t < T; t++) {
      const pos = positions.data[b * T + t]!;
      const base = (n * T + t) * D;
      for (let j = 0; j < h; j++) {
        const angle = Math.fround(pos * invFreq[j]!);
        const c = Math.cos(angle);
        const s = sign * Math.sin(angle);
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
 * angle = pos * inv_freq[j]; x is [..., T, D], positions [T] or [B, T] (B = x's first dim).
 */
export function refRope(x: RefTensor, positions: RefTensor, theta: number): RefTensor {
  return rotate(x, positions, theta, 1);
}

/** Gradient of rope: the inverse rotation (sin negated) applied to dy. */
export function refRopeBackward(dy: RefTensor, positions: RefTensor, theta: number): RefTensor {
  return rotate(dy, positions, theta, -1);
}
