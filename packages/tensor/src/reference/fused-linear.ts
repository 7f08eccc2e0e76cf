// CPU reference of the fused decode products, from their definitions: x W^T per weight, concatenated;
// residual + x W^T; silu(x Wg^T) * (x Wu^T).
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

/** cat_i(x W_i^T) along the last dim: x [..., K], weights [N_i, K] -> [..., sum N_i]. */
export function refFusedLinear(x: RefTensor, weights: readonly RefTensor[]): RefTensor {
  const parts = weights.map((w) => linear(x, w));
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
