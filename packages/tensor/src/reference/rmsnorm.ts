// CPU reference of RMSNorm (Hugging Face LlamaRMSNorm) over the last axis, forward and backward, in float64.
import { refZeros, type RefTensor } from './ref-tensor.js';

/** y[r, c] = w[c] * x[r, c] / sqrt(mean_k x[r, k]^2 + eps). */
export function refRmsNorm(x: RefTensor, w: RefTensor, eps: number): RefTensor {
  const C = w.data.length;
  const rows = C === 0 ? 0 : x.data.length / C;
  const y = refZeros(x.shape);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let c = 0; c < C; c++) ss += x.data[r * C + c]! ** 2;
    const rstd = 1 / Math.sqrt(ss / C + eps);
    for (let c = 0; c < C; c++) y.data[r * C + c] = w.data[c]! * x.data[r * C + c]! * rstd;
  }
  return y;
}

/**
 * Gradients of RMSNorm given dy. With rstd = (mean x^2 + eps)^-1/2, xhat = x * rstd:
 * dx = rstd * (dy * w - xhat * mean(dy * w * xhat)), dw = sum over rows of dy * xhat.
 */
export function refRmsNormBackward(x: RefTensor, w: RefTensor, eps: number, dy: RefTensor): { dx: RefTensor; dw: RefTensor } {
  const C = w.data.length;
  const rows = C === 0 ? 0 : x.data.length / C;
  const dx = refZeros(x.shape);
  const dw = refZeros(w.shape);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let c = 0; c < C; c++) ss += x.data[r * C + c]! ** 2;
    const rstd = 1 / Math.sqrt(ss / C + eps);
    let dot = 0;
    for (let c = 0; c < C; c++) dot += dy.data[r * C + c]! * w.data[c]! * x.data[r * C + c]! * rstd;
    const m = dot / C;
    for (let c = 0; c < C; c++) {
      const xhat = x.data[r * C + c]! * rstd;
      dx.data[r * C + c] = rstd * (dy.data[r * C + c]! * w.data[c]! - xhat * m);
      dw.data[c] = dw.data[c]! + dy.data[r * C + c]! * xhat;
    }
  }
  return { dx, dw };
}
