// Each row's log-probability at its most likely token (a greedy pick's), in one dispatch.
import { getRuntime } from '../backend/context.js';
import { ShapeError, fmtShape } from '../errors.js';
import { compileKernel, grid1d, packParams } from '../kernels.js';
import { empty, Tensor } from '../tensor.js';
import { checkFloat, contiguousData } from './launch.js';

/**
 * Log-softmax of each row of `logits` [R, V] (f32 or f16; computed in f32) at the row's maximum, [R] f32:
 * -log(sum_v exp(x[v] - max)), the log-probability of the token argmax picks. NaN for a row of all -inf or
 * one holding +inf or NaN, as the log-softmax there. One pass over each row, one dispatch. No gradient.
 * @example
 * const ids = argmax(scores, 1);
 * const logprobs = logSoftmaxAtMax(scores); // [B]: the log-probability of each row's pick
 */
export function logSoftmaxAtMax(logits: Tensor): Tensor {
  checkFloat('logSoftmaxAtMax', logits);
  if (logits.rank !== 2 || logits.shape[1] === 0) throw new ShapeError(`logSoftmaxAtMax: logits should be [R, V] with V >= 1, got ${fmtShape(logits.shape)}`);
  const [R, V] = logits.shape as [number, number];
  const out = empty([R], 'f32');
  if (R === 0) return out;
  const x = contiguousData('logSoftmaxAtMax', logits);
  const rt = getRuntime();
  rt.dispatch({
    kernel: compileKernel(rt, 'log_softmax_at_max', { T: logits.dtype }),
    params: packParams('log_softmax_at_max', { rows: R, C: V }),
    buffers: [x.buffer('logSoftmaxAtMax'), out.buffer('logSoftmaxAtMax')],
    workgroups: grid1d(R, 1),
    label: 'logSoftmaxAtMax',
  });
  if (x !== logits) x.dispose('temporary of logSoftmaxAtMax');
  return out;
}
