// CPU reference of causal scaled-dot-product attention with grouped-query heads and an optional
// sliding window, forward and backward, written from the math with the full score matrix of each row
// materialized.
import { refZeros, type RefTensor } from './ref-tensor.js';

/** Options of {@link refAttention}; the same meaning as the op's options. */
export interface RefAttentionOptions {
  /** Multiplier of q . k (default 1 / sqrt(D)). */
  scale?: number;
  /** Bottom-right aligned causal mask: query i sees keys j <= i + (S - T) (default true). */
  causal?: boolean;
  /** Sliding window of a causal call: query i also sees only keys j > i + (S - T) - window; null or 0: none. */
  window?: number | null;
  /** [B, S]: nonzero marks a real key, 0 a padding key that no query sees. */
  keyPaddingMask?: RefTensor | null;
}

interface Dims {
  B: number;
  Hq: number;
  Hkv: number;
  T: number;
  S: number;
  D: number;
  scale: number;
}

function dims(q: RefTensor, k: RefTensor, options: RefAttentionOptions): Dims {
  const [B, Hq, T, D] = q.shape as [number, number, number, number];
  const [, Hkv, S] = k.shape as [number, number, number, number];
  if (Hq % Hkv !== 0) throw new Error(`reference: attention Hq ${Hq} is not a multiple of Hkv ${Hkv}`);
  return { B, Hq, Hkv, T, S, D, scale: options.scale ?? 1 / Math.sqrt(D) };
}

/** Whether query i of batch b sees key j. */
function sees(options: RefAttentionOptions, d: Dims, b: number, i: number, j: number): boolean {
  const last = i + (d.S - d.T);
  if ((options.causal ?? true) && j > last) return false;
  const window = options.window ?? 0;
  if (window > 0 && j <= last - window) return false;
  const mask = options.keyPaddingMask;
  return !mask || mask.data[b * d.S + j] !== 0;
}

/** Softmax probabilities of row (b, h, i) over all S keys (0 where unseen; all 0 when none is seen). */
function rowProbs(q: RefTensor, k: RefTensor, options: RefAttentionOptions, d: Dims, b: number, h: number, i: number): Float64Array {
  const hk = Math.floor(h / (d.Hq / d.Hkv));
  const scores = new Float64Array(d.S).fill(-Infinity);
  let max = -Infinity;
  for (let j = 0; j < d.S; j++) {
    if (!sees(options, d, b, i, j)) continue;
    let s = 0;
    for (let c = 0; c < d.D; c++) {
      s += q.data[((b * d.Hq + h) * d.T + i) * d.D + c]! * k.data[((b * d.Hkv + hk) * d.S + j) * d.D + c]!;
    }
    scores[j] = s * d.scale;
    max = Math.max(max, scores[j]!);
  }
  const probs = new Float64Array(d.S);
  if (max === -Infinity) return probs;
  let total = 0;
  for (let j = 0; j < d.S; j++) {
    probs[j] = scores[j] === -Infinity ? 0 : Math.exp(scores[j]! - max);
    total += probs[j]!;
  }
  for (let j = 0; j < d.S; j++) probs[j] = probs[j]! / total;
  return probs;
}

/**
 * out[b, h, i] = sum_j softmax_j(scale q[b, h, i] . k[b, hk, j]) v[b, hk, j] with hk = floor(h / (Hq / Hkv)),
 * over the keys row i sees; a row that sees none is 0. q [B, Hq, T, D], k and v [B, Hkv, S, D].
 */
export function refAttention(q: RefTensor, k: RefTensor, v: RefTensor, options: RefAttentionOptions = {}): RefTensor {
  const d = dims(q, k, options);
  const out = refZeros([d.B, d.Hq, d.T, d.D]);
  for (let b = 0; b < d.B; b++) {
    for (let h = 0; h < d.Hq; h++) {
      const hk = Math.floor(h / (d.Hq / d.Hkv));
      for (let i = 0; i < d.T; i++) {
        const probs = rowProbs(q, k, options, d, b, h, i);
        for (let j = 0; j < d.S; j++) {
          for (let c = 0; c < d.D; c++) {
            out.data[((b * d.Hq + h) * d.T + i) * d.D + c]! += probs[j]! * v.data[((b * d.Hkv + hk) * d.S + j) * d.D + c]!;
          }
        }
      }
    }
  }
  return out;
}

/**
 * Gradients of attention given dOut [B, Hq, T, D]. Per row, with P the probabilities and
 * dP_j = dOut . v_j: dS_j = P_j (dP_j - sum_l P_l dP_l); dq = scale sum_j dS_j k_j,
 * dk_j += scale dS_j q, dv_j += P_j dOut (summed over the query heads sharing a kv head).
 */
export function refAttentionBackward(
  q: RefTensor,
  k: RefTensor,
  v: RefTensor,
  dOut: RefTensor,
  options: RefAttentionOptions = {},
): { dq: RefTensor; dk: RefTensor; dv: RefTensor } {
  const d = dims(q, k, options);
  const dq = refZeros(q.shape);
  const dk = refZeros(k.shape);
  const dv = refZeros(v.shape);
  for (let b = 0; b < d.B; b++) {
    for (let h = 0; h < d.Hq; h++) {
      const hk = Math.floor(h / (d.Hq / d.Hkv));
      for (let i = 0; i < d.T; i++) {
        const qRow = ((b * d.Hq + h) * d.T + i) * d.D;
        const probs = rowProbs(q, k, options, d, b, h, i);
        const dp = new Float64Array(d.S);
        let rowTerm = 0;
        for (let j = 0; j < d.S; j++) {
          const kvRow = ((b * d.Hkv + hk) * d.S + j) * d.D;
          for (let c = 0; c < d.D; c++) dp[j] = dp[j]! + dOut.data[qRow + c]! * v.data[kvRow + c]!;
          rowTerm += probs[j]! * dp[j]!;
        }
        for (let j = 0; j < d.S; j++) {
          if (probs[j] === 0) continue;
          const kvRow = ((b * d.Hkv + hk) * d.S + j) * d.D;
          const ds = probs[j]! * (dp[j]! - rowTerm);
          for (let c = 0; c < d.D; c++) {
            dq.data[qRow + c]! += d.scale * ds * k.data[kvRow + c]!;
            dk.data[kvRow + c]! += d.scale * ds * q.data[qRow + c]!;
            dv.data[kvRow + c]! += probs[j]! * dOut.data[qRow + c]!;
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}
