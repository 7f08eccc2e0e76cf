// In-place writes into existing storage, outside autograd: filling a preallocated buffer (a KV
// cache) through a view. Not differentiable; graph recording is not involved.
import { DTypeError, ShapeError, fmtShape } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { runCopy } from './launch.js';

/**
 * Copies `src` into the elements `dst` views (any strides, e.g. a slice of a larger tensor),
 * overwriting the storage `dst` shares. Shapes and dtypes must match. No gradient flows.
 * @example
 * copyInto(slice(cacheK, 2, pos, pos + T), k); // cacheK [B, H, maxLen, D], k [B, H, T, D]
 */
export function copyInto(dst: Tensor, src: Tensor): void {
  if (dst.shape.length !== src.shape.length || dst.shape.some((d, i) => d !== src.shape[i])) {
    throw new ShapeError(`copyInto: dst is ${fmtShape(dst.shape)}, src is ${fmtShape(src.shape)}; shapes must be equal`);
  }
  if (dst.dtype !== src.dtype) throw new DTypeError(`copyInto: dst is ${dst.dtype}, src is ${src.dtype}; cast src first`);
  runCopy('copyInto', src, dst);
}
