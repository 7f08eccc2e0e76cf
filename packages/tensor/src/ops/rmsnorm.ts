// rmsNorm over the last axis (Hugging Face LlamaRMSNorm): one forward kernel saving the per-row
// rsqrt, one backward kernel for dx, one column kernel for the weight gradient.
import { getRuntime } from '../backend/context.js';
import { ShapeError, ValueError, fmtShape } from '../errors.js';
import { compileKernel, grid1d, packParams } from '../kernels.js';
import { empty, Tensor } from '../tensor.js';
import { defineOp, type OpContext } from './define.js';
import { checkFloat, checkSameDType, contiguousData } from './launch.js';

/**
 * RMSNorm over the last axis as Hugging Face's LlamaRMSNorm: in f32, variance = mean(x^2),
 * h = x * rsqrt(variance + eps) cast back to x's dtype, y = weight * h. x is [..., C], weight [C].
 * @example
 * const y = rmsNorm(hidden, weight, 1e-6); // [B, T, C]
 */
export const rmsNorm = defineOp({
  name: 'rmsNorm',
  tensors: ['x', 'weight'],
  forward(ctx: OpContext<[Tensor, Tensor, Tensor], { rows: number; C: number }>, x: Tensor, weight: Tensor, eps: number = 1e-6) {
    checkFloat('rmsNorm', x, weight);
    checkSameDType('rmsNorm', x, weight);
    const C = x.shape[x.rank - 1];
    if (C === undefined || weight.rank !== 1 || weight.shape[0] !== C) {
      throw new ShapeError(
        `rmsNorm: x is ${fmtShape(x.shape)}, weight is ${fmtShape(weight.shape)}; weight must be [C] with C = x's last dim`,
      );
    }
    if (!(eps >= 0) || !Number.isFinite(eps)) throw new ValueError(`rmsNorm: eps must be a finite number >= 0, got ${eps}`);
    const rows = C === 0 ? 0 : x.size / C;
    const y = empty(x.shape, x.dtype);
    const rstd = empty([rows], 'f32');
    const xc = contiguousData('rmsNorm', x);
    const wc = contiguousData('rmsNorm', weight);
    if (rows > 0) {
      const rt = getRuntime();
      rt.dispatch({
        kernel: compileKernel(rt, 'rmsnorm_forward', { T: x.dtype, T_IS_F16: String(x.dtype === 'f16') }),
        params: packParams('rmsnorm_forward', { rows, C, eps }),
        buffers: [xc.buffer('rmsNorm'), wc.buffer('rmsNorm'), y.buffer('rmsNorm'), rstd.buffer('rmsNorm')],
        workgroups: grid1d(rows, 1),
        label: 'rmsNorm',
      });
    }
    ctx.saved = [xc, wc, rstd];
    ctx.data = { rows, C };
    return y;
  },
  // With xhat = x * rstd: dx = rstd * (dy * w - xhat * mean_c(dy * w * xhat)); dw = sum_rows dy * xhat
  backward(ctx, g) {
    const [x, w, rstd] = ctx.saved;
    const { rows, C } = ctx.data;
    const dy = contiguousData('rmsNorm backward', g);
    const rt = getRuntime();
    let dx: Tensor | null = null;
    let dw: Tensor | null = null;
    if (ctx.needsGrad(0)) {
      dx = empty(x.shape, x.dtype);
      if (rows > 0) {
        rt.dispatch({
          kernel: compileKernel(rt, 'rmsnorm_backward', { T: x.dtype }),
          params: packParams('rmsnorm_backward', { rows, C }),
          buffers: [x.buffer('rmsNorm'), w.buffer('rmsNorm'), dy.buffer('rmsNorm'), rstd.buffer('rmsNorm'), dx.buffer('rmsNorm')],
          workgroups: grid1d(rows, 1),
          label: 'rmsNorm backward',
        });
      }
    }
    if (ctx.needsGrad(1)) {
      dw = empty([C], w.dtype);
      if (C > 0) {
        rt.dispatch({
          kernel: compileKernel(rt, 'rmsnorm_dweight', { T: x.dtype, T_IS_F16: String(x.dtype === 'f16') }),
          params: packParams('rmsnorm_dweight', { rows, C }),
          buffers: [x.buffer('rmsNorm'), dy.buffer('rmsNorm'), rstd.buffer('rmsNorm'), dw.buffer('rmsNorm')],
          workgroups: grid1d(C, 64),
          label: 'rmsNorm dweight',
        });
      }
    }
    return [dx, dw];
  },
});
