// Attention composed of batched products and a softmax, for GPUs at short sequences: the scores
// [B, Hkv, g T, S] of (scale q) k^T through the tuned matmul kernels, the causal (and sliding-window) and padding masks as an
// additive bias of -1e30, a softmax, and P v, all in f32 whatever the inputs' dtype. It builds the T x S
// scores the fused kernels never build (three f32 copies per call, kept until the graph is freed) and in
// exchange runs every product in the matmul kernels; its gradients come from the ops it is made of. A
// query row that sees no key gives zeros and zero gradients, as the fused kernels do.
import { full, tensor } from '../creation.js';
import type { Tensor } from '../tensor.js';
import { add, mul } from './arithmetic.js';
import { matmul } from './matmul.js';
import { cast, where } from './select.js';
import { softmax } from './softmax.js';
import { reshape, transpose } from './views.js';

/** An attention call: q [B, Hq, T, D], k and v [B, Hkv, S, D], the scale of q . k, causal or not, its sliding window (0: none). */
export interface AttentionGeometry {
  B: number;
  Hq: number;
  Hkv: number;
  T: number;
  S: number;
  D: number;
  scale: number;
  causal: boolean;
  window: number;
}

/** Bias added to the scores of keys a row does not see: exp of it underflows to 0 in f32. */
const HIDDEN = -1e30;

/**
 * The causal mask of T queries against S keys, bottom-right aligned: `seen` where j <= i + S - T (and,
 * with a window, j > i + S - T - window), else `hidden`.
 */
function causalGrid(T: number, S: number, window: number, seen: number, hidden: number): Tensor {
  const data = new Float32Array(T * S);
  for (let i = 0; i < T; i++) {
    for (let j = 0; j < S; j++) {
      const last = i + S - T;
      data[i * S + j] = j <= last && (window === 0 || j > last - window) ? seen : hidden;
    }
  }
  return tensor(data, [T, S]);
}

/**
 * Attention as products and a softmax (see the file header); the same contract as `attention`.
 * q [B, Hq, T, D], k and v [B, Hkv, S, D], mask [B, S] or null -> [B, Hq, T, D] in q's dtype.
 */
export function composedAttention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | null, g: AttentionGeometry): Tensor {
  const { B, Hq, Hkv, T, S, D, scale, causal, window } = g;
  const group = Hq / Hkv;
  const f32 = (t: Tensor) => (t.dtype === 'f32' ? t : cast(t, 'f32'));
  // Query heads of one kv head are consecutive: [B, Hq, T, D] is [B, Hkv, group T, D].
  const qs = reshape(mul(f32(q), scale), [B, Hkv, group * T, D]);
  let scores = reshape(matmul(qs, transpose(f32(k))), [B, Hkv, group, T, S]);
  // Rows that may see no key (padding, or causal with S < T) need their probabilities zeroed.
  const emptyRows = mask !== null || (causal && S < T);
  let visible: Tensor | null = null;
  if (emptyRows) {
    let keys = causal ? causalGrid(T, S, window, 1, 0) : full([1, S], 1);
    if (mask) {
      const kept = reshape(where(mask, full([], 1), full([], 0)), [B, 1, 1, 1, S]);
      keys = mul(kept, keys);
    }
    visible = keys;
    scores = add(scores, mul(add(visible, -1), -HIDDEN));
  } else if (causal) {
    scores = add(scores, causalGrid(T, S, window, 0, HIDDEN));
  }
  let p = softmax(scores);
  if (visible) p = mul(p, visible);
  const out = reshape(matmul(reshape(p, [B, Hkv, group * T, S]), f32(v)), [B, Hq, T, D]);
  return out.dtype === q.dtype ? out : cast(out, q.dtype);
}
