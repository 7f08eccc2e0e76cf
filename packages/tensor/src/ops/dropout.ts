// dropout: training-time dropout with a keep mask hashed from (seed, element index) in the kernel,
// so the backward recomputes the mask from the seed and saves nothing else.
import { getRuntime } from '../backend/context.js';
import { ValueError } from '../errors.js';
import { compileKernel, packParams } from '../kernels.js';
import { defaultGenerator } from '../random.js';
import { empty, Tensor } from '../tensor.js';
import { defineOp, type OpContext } from './define.js';
import { checkFloat, contiguousData, elementwiseGroups } from './launch.js';

const TWO_32 = 4294967296;

/** Applies the mask of (seed, p) to a contiguous copy of x: kept elements scaled by 1 / (1 - p), the rest times 0. */
function runDropout(op: string, x: Tensor, p: number, seed: number): Tensor {
  const y = empty(x.shape, x.dtype);
  if (y.size === 0) return y;
  const xc = contiguousData(op, x);
  // keep iff hash / 2^32 >= p iff hash >= ceil(p * 2^32) (hash is an integer)
  const threshold = Math.ceil(p * TWO_32);
  const dropAll = threshold >= TWO_32 ? 1 : 0;
  const rt = getRuntime();
  rt.dispatch({
    kernel: compileKernel(rt, 'dropout', { T: x.dtype }),
    params: packParams('dropout', { numel: y.size, seed, threshold: dropAll ? 0 : threshold, drop_all: dropAll, scale: p === 1 ? 0 : 1 / (1 - p) }),
    buffers: [xc.buffer(op), y.buffer(op)],
    workgroups: elementwiseGroups(y.size),
    label: op,
  });
  return y;
}

/**
 * Training dropout as torch: each element is multiplied by 0 with probability p and the kept ones
 * by 1 / (1 - p), so NaN and infinities stay visible (as NaN) where dropped, as in torch. Element i
 * (row-major) is kept when hash32(seed, i) / 2^32 >= p, with random.ts's hash32 computed in the
 * kernel, so a seed gives the same mask on every device. Without a seed one is drawn from the
 * default generator (see manualSeed). p = 0 copies x; p = 1 multiplies every element by 0; p must
 * be in [0, 1].
 * @example
 * const h = dropout(x, 0.1, 1234);
 */
export const dropout = defineOp({
  name: 'dropout',
  tensors: ['x'],
  forward(ctx: OpContext<[], { p: number; seed: number }>, x: Tensor, p: number, seed?: number) {
    checkFloat('dropout', x);
    if (!(p >= 0 && p <= 1)) throw new ValueError(`dropout: p must be in [0, 1], got ${p}`);
    if (seed !== undefined && !Number.isInteger(seed)) throw new ValueError(`dropout: seed must be an integer, got ${seed}`);
    const s = seed === undefined ? defaultGenerator().nextU32() : seed >>> 0;
    ctx.data = { p, seed: s };
    return runDropout('dropout', x, p, s);
  },
  // dx = dy * mask / (1 - p), with the mask recomputed from the seed
  backward(ctx, g) {
    const { p, seed } = ctx.data;
    return [runDropout('dropout backward', g, p, seed)];
  },
});
