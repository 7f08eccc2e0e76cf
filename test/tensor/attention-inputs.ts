// Seeded inputs of the attention tests: q [B, Hq, T, D], k and v [B, Hkv, S, D], a key padding mask [B, S],
// and their reference tensors.
import { refTensor, type RefTensor } from '@huatuo/tensor';
import { seededValues } from './helpers.js';

export interface AttentionShape {
  B: number;
  Hq: number;
  Hkv: number;
  T: number;
  S: number;
  D: number;
  seed: number;
}

export interface AttentionInputs {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  mask: Float32Array | null;
}

/** The shapes of q, k and v. */
export function qkvShapes(c: AttentionShape): { q: number[]; k: number[]; v: number[] } {
  return { q: [c.B, c.Hq, c.T, c.D], k: [c.B, c.Hkv, c.S, c.D], v: [c.B, c.Hkv, c.S, c.D] };
}

/** q and k in [-1.5, 1.5) and v in [-1, 1), seeded from c.seed, c.seed + 1 and c.seed + 2, with `mask`. */
export function attentionInputs(c: AttentionShape, mask: Float32Array | null): AttentionInputs {
  return {
    q: seededValues(c.B * c.Hq * c.T * c.D, c.seed, 1.5),
    k: seededValues(c.B * c.Hkv * c.S * c.D, c.seed + 1, 1.5),
    v: seededValues(c.B * c.Hkv * c.S * c.D, c.seed + 2),
    mask,
  };
}

/** 1 on the real keys of each batch row and 0 on its [left, right] padding; null where there is no padding. */
export function paddingMask(c: { B: number; S: number; padding: [number, number][] | null }): Float32Array | null {
  if (!c.padding) return null;
  const m = new Float32Array(c.B * c.S);
  c.padding.forEach(([left, right], b) => {
    for (let j = left; j < c.S - right; j++) m[b * c.S + j] = 1;
  });
  return m;
}

/** The reference tensors of `x`. */
export function attentionRefs(c: AttentionShape, x: AttentionInputs): { q: RefTensor; k: RefTensor; v: RefTensor; mask: RefTensor | null } {
  const d = qkvShapes(c);
  return {
    q: refTensor(x.q, d.q),
    k: refTensor(x.k, d.k),
    v: refTensor(x.v, d.v),
    mask: x.mask ? refTensor(x.mask, [c.B, c.S]) : null,
  };
}
