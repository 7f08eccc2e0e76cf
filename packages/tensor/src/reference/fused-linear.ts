// CPU reference of the fused decode products, from their definitions: x W^T per weight, concatenated;
// residual + x W^T; silu(x Wg^T) * (x Wu^T); LoRA adapters and biases on the concatenated products.
import type { RefTensor } from './ref-tensor.js';

/** x [..., K] times w^T (w [N, K]) -> [..., N]. */
function linear(x: RefTensor, w: RefTensor): RefTensor {
  const K = x.shape[x.shape.length - 1]!;
  const N = w.shape[0]!;
  const M = x.data.length / K;
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x.data[m * K + k]! * w.data[n * K + k]!;
      out[m * N + n] = s;
    }
  }
  return { shape: [...x.shape.slice(0, -1), N], data: out };
}

/** One weight's unmerged LoRA adapter: A [r, K], B [N, r] and its scaling. */
export interface RefFusedAdapter {
  A: RefTensor;
  B: RefTensor;
  scaling: number;
}

/** Per weight in order (null where it has none): its LoRA adapter and its bias [N_i]. */
export interface RefFusedExtras {
  adapters?: ReadonlyArray<RefFusedAdapter | null>;
  biases?: ReadonlyArray<RefTensor | null>;
}

/**
 * cat_i((x W_i^T + b_i) + scaling_i (x A_i^T) B_i^T) along the last dim: x [..., K], weights [N_i, K] ->
 * [..., sum N_i]; the biases and adapters of `extras` where given (PEFT's LoRA over a biased linear: the base
 * layer's output with its bias, then the update).
 */
export function refFusedLinear(x: RefTensor, weights: readonly RefTensor[], extras: RefFusedExtras = {}): RefTensor {
  const parts = weights.map((w, i) => {
    const y = linear(x, w);
    const b = extras.biases?.[i];
    if (b !== null && b !== undefined) {
      const n = w.shape[0]!;
      if (b.data.length !== n) throw new Error(`reference: bias of ${b.data.length} values for a weight of ${n} rows`);
      y.data = y.data.map((v, j) => v + b.data[j % n]!);
    }
    const a = extras.adapters?.[i];
    if (a !== null && a !== undefined) {
      const u = linear(linear(x, a.A), a.B);
      y.data = y.data.map((v, j) => v + a.scaling * u.data[j]!);
    }
    return y;
  });
  const N = parts.reduce((s, p) => s + p.shape[p.shape.length - 1]!, 0);
  const M = x.data.length / x.shape[x.shape.length - 1]!;
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    let at = 0;
    for (const p of parts) {
      const n = p.shape[p.shape.length - 1]!;
      out.set(p.data.subarray(m * n, (m + 1) * n), m * N + at);
      at += n;
    }
  }
  return { shape: [...x.shape.slice(0, -1), N], data: out };
}

/** residual + x W^T. */
export function refFusedLinearAdd(residual: RefTensor, x: RefTensor, w: RefTensor): RefTensor {
  const y = linear(x, w);
  return { shape: y.shape, data: y.data.map((v, i) => v + residual.data[i]!) };
}

/** silu(g) * u with g = x Wg^T, u = x Wu^T, silu(g) = g / (1 + e^-g). */
export function refFusedLinearSwiglu(x: RefTensor, gate: RefTensor, up: RefTensor): RefTensor {
  const g = linear(x, gate);
  const u = linear(x, up);
  return { shape: g.shape, data: g.data.map((v, i) => (v / (1 + Math.exp(-v))) * u.data[i]!) };
}
