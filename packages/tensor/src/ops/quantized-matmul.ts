// y = x W^T with a frozen int8 or NF4 weight, dequantized inside the kernel (matmul_int8, matmul_nf4; NF4's
// double-quantized absmaxes are first decoded to one f32 per block by nf4_absmax, a temporary of 1/32 of an
// f16 copy); decoding's few rows run the matrix-vector kernels where the adapter suits them
// (quantized-decode.ts). A bias [out] is added to the f32 sums before the one rounding, as linear does. The
// gradient flows to x (dX = dY W, the tiled kernels reading W untransposed) and to the bias (dY summed over rows).
import { getRuntime } from '../backend/context.js';
import { DeviceError, ShapeError, fmtShape } from '../errors.js';
import { grid1d, packParams, kernelSource, compileKernel } from '../kernels.js';
import type { QuantizedWeight } from '../quant/weight.js';
import { empty, type Tensor } from '../tensor.js';
import { shareStep } from '../kernelgen/matmul.js';
import { v3SubgroupSize } from '../matmul-choice.js';
import { choiceFor } from '../tuning.js';
import { defineOp, type OpContext } from './define.js';
import { checkFloat, checkSameDType, contiguousData } from './launch.js';
import { biasGradient, checkLinearBias } from './matmul.js';
import { quantizedDecode } from './quantized-decode.js';
import { contiguous, reshape } from './views.js';

/** Runs c [M, N] = a [M, K] times W^T (wt, plus a contiguous bias [N] where given) or W, dequantizing W as it is read. */
function run(view: Tensor, w: QuantizedWeight, wt: boolean, label: string, bias?: Tensor): Tensor {
  const rt = getRuntime();
  const sg = v3SubgroupSize(rt.info);
  if (sg === 0) {
    throw new DeviceError(`${label}: quantized weights need an adapter with the subgroups feature and one subgroup size; load the model with quantize: 'none'`);
  }
  // The kernels read a from element 0 of its buffer.
  const a = contiguousData(label, view);
  const [M, K] = [a.shape[0]!, a.shape[1]!];
  const decoded = wt ? quantizedDecode(rt, a, w, label, bias) : null;
  if (decoded !== null) return decoded;
  const N = wt ? w.rows : w.cols;
  const out = empty([M, N], a.dtype);
  if (M === 0) return out;
  const main = choiceFor(rt).main;
  const rows = M <= sg ? sg : main.kernel === 'v3' ? main.rows : 32;
  const defines = { T: a.dtype, SG: String(sg), TM: String(rows), WT: String(wt), BIAS: String(bias !== undefined) };
  const name = w.format === 'int8' ? 'matmul_int8' : 'matmul_nf4';
  const key = `${name}(BIAS=${defines.BIAS},SG=${sg},T=${a.dtype},TM=${rows},WT=${wt})`;
  const kernel = rt.kernel(key, kernelSource(name, () => ({ ...defines, SHARE: shareStep(sg, rows) }), key), key);
  // Without a bias, a's buffer is bound in its place (never read).
  const buffers = [a.buffer(label), w.codes.buffer(label), w.scales.buffer(label), out.buffer(label), bias?.buffer(label) ?? a.buffer(label)];
  const bias_offset = bias?.offset ?? 0;
  const workgroups: [number, number, number] = [Math.ceil(N / (4 * sg)), Math.ceil(M / rows), 1];
  if (w.format === 'int8') {
    rt.dispatch({ kernel, params: packParams('matmul_int8', { M, N, K, C4: w.cols / 4, bias_offset }), buffers, workgroups, label });
    return out;
  }
  const blocks = Math.ceil((w.rows * w.cols) / 64);
  const absmax = rt.acquire(blocks * 4);
  rt.dispatch({
    kernel: compileKernel(rt, 'nf4_absmax'),
    params: packParams('nf4_absmax', { blocks, offset: w.offset }),
    buffers: [w.absmaxCodes!.buffer(label), w.scales.buffer(label), w.dynamicMap!.buffer(label), absmax],
    workgroups: grid1d(blocks, 64),
    label: `${label} (absmax)`,
  });
  buffers[2] = absmax;
  rt.dispatch({ kernel, params: packParams('matmul_nf4', { M, N, K, C: w.cols, bias_offset }), buffers, workgroups, label });
  rt.release(absmax);
  return out;
}

/**
 * x [..., in] times a quantized weight [out, in] read transposed, plus bias [out] where given: [..., out],
 * in x's dtype (f32 or f16), accumulated in f32 and rounded once (the bias added before the rounding, as
 * linear does). Differentiable in x and the bias; the weight is frozen.
 * @example const y = quantizedMatmul(x, QuantizedWeight.upload(quantizeNf4(w, out, inF)), b); // x [B, T, in]
 */
export const quantizedMatmul = defineOp({
  name: 'quantizedMatmul',
  forward(ctx: OpContext<[], { w: QuantizedWeight }>, x: Tensor, w: QuantizedWeight, bias?: Tensor | null) {
    checkFloat('quantizedMatmul', x);
    if (x.rank < 1 || x.shape[x.rank - 1] !== w.cols) {
      throw new ShapeError(`quantizedMatmul: x is ${fmtShape(x.shape)}, the weight is [${w.rows}, ${w.cols}]; x's last dim must equal the weight's in features (${w.cols})`);
    }
    const b = bias ?? undefined;
    if (b !== undefined) {
      checkLinearBias('quantizedMatmul', b, w.rows, `the weight is [${w.rows}, ${w.cols}]`);
      checkSameDType('quantizedMatmul', x, b);
    }
    ctx.data.w = w;
    const lead = x.shape.slice(0, -1);
    const flat = reshape(contiguous(x), [lead.reduce((p, d) => p * d, 1), w.cols]); // [M, in]
    return reshape(run(flat, w, true, 'quantizedMatmul', b === undefined ? undefined : contiguous(b)), [...lead, w.rows]);
  },
  // dX = dY W, dbias = dY summed over the rows (the weight is frozen: no gradient)
  backward(ctx, g) {
    const { w } = ctx.data;
    const lead = g.shape.slice(0, -1);
    const flat = reshape(contiguous(g), [lead.reduce((p, d) => p * d, 1), w.rows]); // [M, out]
    const dx = ctx.needsGrad(0) ? reshape(run(flat, w, false, 'quantizedMatmul backward'), [...lead, w.cols]) : null;
    const grads: (Tensor | null)[] = [dx];
    if (ctx.inputs.length > 1) grads.push(ctx.needsGrad(1) ? biasGradient('quantizedMatmul', flat) : null);
    return grads;
  },
});
