// CPU reference of ropeCache, from its definition: RoPE on the new queries and keys, the rotated keys
// and the values written into copies of the cache at positions [past, past + T).
import type { RopeFrequencies } from '../ops/rope-scaling.js';
import type { RefTensor } from './ref-tensor.js';
import { refRope } from './rope.js';

/** [B, T, heads D] -> [B, heads, T, D]. */
function heads(x: RefTensor, D: number): RefTensor {
  const [B, T, n] = x.shape as [number, number, number];
  const H = n / D;
  const out = new Float64Array(x.data.length);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < H; h++) {
        for (let d = 0; d < D; d++) out[((b * H + h) * T + t) * D + d] = x.data[(b * T + t) * n + h * D + d]!;
      }
    }
  }
  return { shape: [B, H, T, D], data: out };
}

/** A copy of cache [B, Hkv, L, D] with x [B, Hkv, T, D] written at positions [past, past + T). */
function written(cache: RefTensor, x: RefTensor, past: number): RefTensor {
  const [B, Hkv, L, D] = cache.shape as [number, number, number, number];
  const T = x.shape[2]!;
  const out = Float64Array.from(cache.data);
  for (let bh = 0; bh < B * Hkv; bh++) {
    for (let t = 0; t < T; t++) {
      for (let d = 0; d < D; d++) out[(bh * L + past + t) * D + d] = x.data[(bh * T + t) * D + d]!;
    }
  }
  return { shape: [...cache.shape], data: out };
}

/**
 * q [B, T, H D], k, v [B, T, Hkv D], positions [T] or [B, T], keys and values [B, Hkv, L, D]:
 * q = rope(q's heads) [B, H, T, D], and keys, values with rope(k's heads) and v's heads at [past, past + T).
 */
export function refRopeCache(
  q: RefTensor, k: RefTensor, v: RefTensor, positions: RefTensor, freq: RopeFrequencies, keys: RefTensor, values: RefTensor, past: number,
): { q: RefTensor; keys: RefTensor; values: RefTensor } {
  const D = keys.shape[3]!;
  return {
    q: refRope(heads(q, D), positions, freq),
    keys: written(keys, refRope(heads(k, D), positions, freq), past),
    values: written(values, heads(v, D), past),
  };
}
