// DoRA's weight norm (PEFT's DoraLinearLayer.get_weight_norm): ||W + scaling B A|| per output row, computed
// outside autograd (the DoRA paper, section 4.3, holds it constant for the gradient) without forming the
// [out, in] sum: ||W||^2 + 2 scaling <W, B A> + scaling^2 ||B A||^2 per row, from A W^T [r, out] and A A^T [r, r].

import { add, cast, cat, matmul, mul, noGrad, quantizedMatmul, relu, sqrt, sum, tensor, tidy, transpose, type QuantizedWeight, type Tensor } from '@huatuo/tensor';

/** Rows of the identity fed through a quantized weight at once when reading its row norms. */
const EYE_ROWS = 256;

/**
 * ||W_o||^2 of every output row o of the frozen weight, f32 [out]. Dense parts are squared and summed; a
 * quantized weight is dequantized through its own product (rows of the identity times W^T give columns of W),
 * so the norm is that of the weight the forward uses.
 */
export function rowSquares(parts: readonly Tensor[], quantized: QuantizedWeight | null): Tensor {
  return noGrad(() =>
    tidy(() => {
      if (quantized === null) {
        const sq = parts.map((p) => {
          const w = p.dtype === 'f32' ? p : cast(p, 'f32'); // [rows_i, in]
          return sum(mul(w, w), 1); // [rows_i]
        });
        return sq.length === 1 ? sq[0]! : cat(sq, 0); // [out]
      }
      const { rows: out, cols: inp } = quantized;
      let acc: Tensor | null = null;
      for (let c0 = 0; c0 < inp; c0 += EYE_ROWS) {
        const k = Math.min(EYE_ROWS, inp - c0);
        const eye = new Float32Array(k * inp);
        for (let j = 0; j < k; j++) eye[j * inp + c0 + j] = 1;
        const cols = quantizedMatmul(tensor(eye, [k, inp]), quantized); // [k, out]: W[:, c0 + j] in row j
        const part = sum(mul(cols, cols), 0); // [out]
        acc = acc === null ? part : add(acc, part);
      }
      return acc ?? tensor(new Float32Array(out), [out]);
    }),
  );
}

/**
 * ||W + scaling B A|| per output row, f32 [out], outside autograd. `w2` is {@link rowSquares} of the same
 * weight; A [r, in] and B [out, r] are the adapter's f32 matrices.
 */
export function doraWeightNorm(parts: readonly Tensor[], quantized: QuantizedWeight | null, w2: Tensor, A: Tensor, B: Tensor, scaling: number): Tensor {
  return noGrad(() =>
    tidy(() => {
      let aw: Tensor; // A W^T [r, out]
      if (quantized !== null) {
        aw = quantizedMatmul(A, quantized);
      } else {
        const outs = parts.map((p) => {
          const a = p.dtype === A.dtype ? A : cast(A, p.dtype);
          const y = matmul(a, transpose(p)); // [r, rows_i]
          return y.dtype === 'f32' ? y : cast(y, 'f32');
        });
        aw = outs.length === 1 ? outs[0]! : cat(outs, 1);
      }
      const cross = sum(mul(B, transpose(aw)), 1); // <W_o, (B A)_o> = B_o . (A W^T)[:, o]   [out]
      const quad = sum(mul(matmul(B, matmul(A, transpose(A))), B), 1); // ||(B A)_o||^2 = B_o (A A^T) B_o^T   [out]
      // The sum of squares cannot be negative; relu keeps rounding from taking sqrt of -0.0...1 to NaN.
      return sqrt(relu(add(add(w2, mul(cross, 2 * scaling)), mul(quad, scaling * scaling))));
    }),
  );
}
