// In-place writes into existing storage, outside autograd: filling a preallocated buffer (a KV
// cache) through a view. Not differentiable; graph recording is not involved.
import { AutogradError, DTypeError, ShapeError, fmtShape } from '../errors.js';
import { isGradEnabled } from '../grad-mode.js';
import type { Tensor } from '../tensor.js';
import { runCopy } from './launch.js';

/**
 * The leaf requiring a gradient that `t` is or views through recorded view ops (its storage), or null. Views
 * made under noGrad record no op, so they are not traced back.
 */
function gradLeafOf(t: Tensor): Tensor | null {
  let cur = t;
  for (;;) {
    if (cur.node === null) return cur.requiresGrad ? cur : null;
    const storage = cur.storage('copyInto');
    const base = cur.node.inputs.find((i) => !i.disposed && i.storage('copyInto') === storage);
    if (base === undefined) return null;
    cur = base;
  }
}

/**
 * Refuses, as torch does, an in-place write with grad mode on into a leaf that requires a gradient or
 * a view of one: the write would not be recorded, so backward would differentiate values it no longer holds.
 */
function checkNotGradLeaf(op: string, dst: Tensor): void {
  if (!isGradEnabled()) return;
  const leaf = gradLeafOf(dst);
  if (leaf === null) return;
  const what = leaf === dst ? `dst ${dst} is a leaf that requires grad` : `dst ${dst} is a view of ${leaf}, a leaf that requires grad`;
  throw new AutogradError(
    `${op}: ${what}, and an in-place write into it is not recorded for backward (torch: "a ${leaf === dst ? '' : 'view of a '}leaf Variable that requires grad is being used in an in-place operation."); ` +
      `write it under noGrad(() => ${op}(dst, src)), as optimizers and loading do, or into dst.detach() to leave it out of the graph`,
  );
}

/**
 * Copies `src` into the elements `dst` views (any strides, e.g. a slice of a larger tensor),
 * overwriting the storage `dst` shares. Shapes and dtypes must match. No gradient flows. With grad
 * mode on, a `dst` that is a leaf requiring a gradient (a parameter) or a view of one is refused, as
 * torch refuses in-place ops on it: write parameters under {@link noGrad}.
 * @example
 * copyInto(slice(cacheK, 2, pos, pos + T), k); // cacheK [B, H, maxLen, D], k [B, H, T, D]
 * noGrad(() => copyInto(lora.B, loaded)); // a parameter
 */
export function copyInto(dst: Tensor, src: Tensor): void {
  if (dst.shape.length !== src.shape.length || dst.shape.some((d, i) => d !== src.shape[i])) {
    throw new ShapeError(`copyInto: dst is ${fmtShape(dst.shape)}, src is ${fmtShape(src.shape)}; shapes must be equal`);
  }
  if (dst.dtype !== src.dtype) throw new DTypeError(`copyInto: dst is ${dst.dtype}, src is ${src.dtype}; cast src first`);
  checkNotGradLeaf('copyInto', dst);
  runCopy('copyInto', src, dst);
}
