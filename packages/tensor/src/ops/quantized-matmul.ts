// y = x W^T with a frozen int8 or NF4 weight, dequantized inside the kernel (matmul_int8, matmul_nf4; NF4's
// double-quantized absmaxes are first decoded to one f32 per block by nf4_absmax, a temporary of 1/32 of an
// f16 copy); decoding's few rows run the matrix-vector kernels where the adapter suits them
// (quantized-decode.ts). The gradient flows to x only (dX = dY W, the tiled kernels reading W untransposed).
import { getRuntime } from '../backend/context.js';
import { DeviceError, ShapeError, fmtShape } from '../errors.js';
import { grid1d, packParams, kernelSource, compileKernel } from '../kernels.js';
import type { QuantizedWeight } from '../quant/weight.js';
import { empty, type Tensor } from '../tensor.js';
import { shareStep } from '../kernelgen/matmul.js';
import { v3SubgroupSize } from '../matmul-choice.js';
import { choiceFor } from '../tuning.js';
import { defineOp, type OpContext } from './define.js';
import { checkFloat, contiguousData } from './launch.js';
import { quantizedDecode } from './quantized-decode.js';
import { contiguous, reshape } from './views.js';

/** Runs c [M, N] = a [M, K] times W^T (wt) or W, dequantizing W as it is read. */
function run(view: Tensor, w: QuantizedWeight, wt: boolean, label: string): Tensor {
  const rt = getRuntime();
  const sg = v3SubgroupSize(rt.info);
  if (sg === 0) {
    throw new DeviceError(`${label}: quantized weights need an adapter with the subgroups feature and one subgroup size; load the model with quantize: 'none'`);
  }
  // The kernels read a from element 0 of its buffer.
  const a = contiguousData(label, view);
  const [M, K] = [a.shape[0]!, a.shape[1]!];
  const decoded = wt ? quantizedDecode(rt, a, w, label) : null;
  if (decoded !== null) return decoded;
  const N = wt ? w.rows : w.cols;
  const out = empty([M, N], a.dtype);
  if (M === 0) return out;
  const main = choiceFor(rt).main;
  const rows = M <= sg ? sg : main.kernel === 'v3' ? main.rows : 32;
  const defines = { T: a.dtype, SG: String(sg), TM: String(rows), WT: String(wt) };
  const name = w.format === 'int8' ? 'matmul_int8' : 'matmul_nf4';
  const key = `${name}(SG=${sg},T=${a.dtype},TM=${rows},WT=${wt})`;
  const kernel = rt.kernel(key, kernelSource(name, () => ({ ...defines, SHARE: shareStep(sg, rows) }), key), key);
  const buffers = [a.buffer(label), w.codes.buffer(label), w.scales.buffer(label), out.buffer(label)];
  const workgroups: [number, number, number] = [Math.ceil(N / (4 * sg)), Math.ceil(M / rows), 1];
  if (w.format === 'int8') {
    rt.dispatch({ kernel, params: packParams('matmul_int8', { M, N, K, C4: w.cols / 4 }), buffers, workgroups, label });
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
  rt.dispatch({ kernel, params: packParams('matmul_nf4', { M, N, K, C: w.cols }), buffers, workgroups, label });
  rt.release(absmax);
  return out;
}

/**
 * x [..., in] times a quantized weight [out, in] read transposed: [..., out], in x's dtype (f32 or f16),
 * accumulated in f32. Differentiable in x; the weight is frozen.
 * @example const y = quantizedMatmul(x, QuantizedWeight.upload(quantizeNf4(w, out, inF))); // x [B, T, in]
 */
export const quantizedMatmul = defineOp({
  name: 'quantizedMatmul',
  forward(ctx: OpContext<[], { w: QuantizedWeight }>, x: Tensor, w: QuantizedWeight) {
    checkFloat('quantizedMatmul', x);
    if (x.rank < 1 || x.shape[x.rank - 1] !== w.cols) {
      throw new ShapeError(`quantizedMatmul: x is ${fmtShape(x.shape)}, the weight is [${w.rows}, ${w.cols}]; x's last dim must equal the weight's in features (${w.cols})`);
    }
    ctx.data.w = w;
    const lead = x.shape.slice(0, -1);
    const flat = reshape(contiguous(x), [lead.reduce((p, d) => p * d, 1), w.cols]); // [M, in]
    return reshape(run(flat, w, true, 'quantizedMatmul'), [...lead, w.rows]);
  },
  // dX = dY W (the weight is frozen: no gradient)
  backward(ctx, g) {
    const { w } = ctx.data;
    const lead = g.shape.slice(0, -1);
    const flat = reshape(contiguous(g), [lead.reduce((p, d) => p * d, 1), w.rows]); // [M, out]
    return [reshape(run(flat, w, false, 'quantizedMatmul backward'), [...lead, w.cols])];
  },
});
