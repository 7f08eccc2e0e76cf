// softmax and logSoftmax over the last axis: one workgroup per row (max, sum of exp, write).
import { getRuntime } from '../backend/context.js';
import { ShapeError } from '../errors.js';
import { compileKernel, grid1d, packParams } from '../kernels.js';
import { empty, Tensor } from '../tensor.js';
import { defineOp } from './define.js';
import { checkFloat, checkSameDType, contiguousData } from './launch.js';

/** Runs a row kernel over the last axis of contiguous operands: out = kernel(...inputs). */
function runRows(op: string, name: 'softmax_forward' | 'softmax_backward', log: boolean, inputs: Tensor[], shape: readonly number[]): Tensor {
  const out = empty(shape, inputs[0]!.dtype);
  const C = shape[shape.length - 1]!;
  const rows = C === 0 ? 0 : out.size / C;
  if (rows === 0) return out;
  const rt = getRuntime();
  const kernel = compileKernel(rt, name, { T: out.dtype, LOG: String(log) });
  const params = packParams(name, { rows, C });
  const buffers = inputs.map((t) => contiguousData(op, t).buffer(op));
  rt.dispatch({ kernel, params, buffers: [...buffers, out.buffer(op)], workgroups: grid1d(rows, 1), label: op });
  return out;
}

function checkInput(op: string, x: Tensor): void {
  checkFloat(op, x);
  if (x.rank === 0) throw new ShapeError(`${op}: x is a scalar []; it needs at least one axis (the last is normalised)`);
}

/** Softmax (`log` false) or log-softmax (`log` true) over the last axis as the op `name`; both keep only y. */
function softmaxOp(name: 'softmax' | 'logSoftmax', log: boolean) {
  return defineOp({
    name,
    tensors: ['x'],
    forward(ctx, x: Tensor) {
      checkInput(name, x);
      const y = runRows(name, 'softmax_forward', log, [x], x.shape);
      ctx.saved.push(y);
      return y;
    },
    // softmax: dx = y * (dy - sum_k dy_k y_k); log-softmax: dx = dy - exp(y) * sum_k dy_k
    backward(ctx, g) {
      const y = ctx.saved[0]!;
      checkSameDType(`${name} backward`, y, g);
      return [runRows(`${name} backward`, 'softmax_backward', log, [y, g], y.shape)];
    },
  });
}

/**
 * Softmax over the last axis, computed in f32: exp(x - max) / sum(exp(x - max)). A row whose
 * entries are all -inf gives NaN, as torch.softmax does.
 * @example
 * const p = softmax(tensor([1, 2, 3], [1, 3])); // rows sum to 1
 */
export const softmax = softmaxOp('softmax', false);

/**
 * Log-softmax over the last axis, computed in f32: x - max - log(sum(exp(x - max))). A row whose
 * entries are all -inf gives NaN, as torch.log_softmax does.
 * @example
 * const lp = logSoftmax(logits); // [N, V]
 */
export const logSoftmax = softmaxOp('logSoftmax', true);
