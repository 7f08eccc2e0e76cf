// CPU reference of softmax and log-softmax over the last axis, forward and backward, in float64.
import { refZeros, type RefTensor } from './ref-tensor.js';

function rowsOf(x: RefTensor): { rows: number; C: number } {
  const C = x.shape[x.shape.length - 1] ?? 1;
  return { rows: C === 0 ? 0 : x.data.length / C, C };
}

/** Row r's maximum m and sum_k exp(x[r, k] - m). */
function rowMaxSum(x: RefTensor, r: number, C: number): { m: number; s: number } {
  let m = -Infinity;
  for (let c = 0; c < C; c++) m = Math.max(m, x.data[r * C + c]!);
  let s = 0;
  for (let c = 0; c < C; c++) s += Math.exp(x.data[r * C + c]! - m);
  return { m, s };
}

/** softmax(x)[r, c] = exp(x[r, c]) / sum_k exp(x[r, k]) (shifted by the row max); all -inf rows give NaN. */
export function refSoftmax(x: RefTensor): RefTensor {
  const y = refZeros(x.shape);
  const { rows, C } = rowsOf(x);
  for (let r = 0; r < rows; r++) {
    const { m, s } = rowMaxSum(x, r, C);
    for (let c = 0; c < C; c++) y.data[r * C + c] = m === -Infinity ? NaN : Math.exp(x.data[r * C + c]! - m) / s;
  }
  return y;
}

/** logSoftmax(x)[r, c] = x[r, c] - log(sum_k exp(x[r, k])); all -inf rows give NaN. */
export function refLogSoftmax(x: RefTensor): RefTensor {
  const y = refZeros(x.shape);
  const { rows, C } = rowsOf(x);
  for (let r = 0; r < rows; r++) {
    const { m, s } = rowMaxSum(x, r, C);
    const lse = m + Math.log(s);
    for (let c = 0; c < C; c++) y.data[r * C + c] = m === -Infinity ? NaN : x.data[r * C + c]! - lse;
  }
  return y;
}

/** Gradient of softmax given the input x and the output gradient dy: dx = y * (dy - sum(dy * y)). */
export function refSoftmaxBackward(x: RefTensor, dy: RefTensor): RefTensor {
  const y = refSoftmax(x);
  const dx = refZeros(x.shape);
  const { rows, C } = rowsOf(x);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < C; c++) s += dy.data[r * C + c]! * y.data[r * C + c]!;
    for (let c = 0; c < C; c++) dx.data[r * C + c] = y.data[r * C + c]! * (dy.data[r * C + c]! - s);
  }
  return dx;
}

/** Gradient of logSoftmax given x and dy: dx = dy - softmax(x) * sum(dy). */
export function refLogSoftmaxBackward(x: RefTensor, dy: RefTensor): RefTensor {
  const p = refSoftmax(x);
  const dx = refZeros(x.shape);
  const { rows, C } = rowsOf(x);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < C; c++) s += dy.data[r * C + c]!;
    for (let c = 0; c < C; c++) dx.data[r * C + c] = dy.data[r * C + c]! - p.data[r * C + c]! * s;
  }
  return dx;
}
