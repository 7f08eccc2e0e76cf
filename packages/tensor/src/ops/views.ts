// Layout ops. reshape, transpose, permute, slice and expand return views sharing storage (reshape
// copies only a non-contiguous input); contiguous and cat copy.
import { ShapeError, ValueError, fmtShape } from '../errors.js';
import { contiguousStrides, empty, numel, Tensor } from '../tensor.js';
import { checkTensorArg, defineOp, describeValue, type OpContext, type Op } from './define.js';
import { contiguousData, runCopy, runFill, runSumAxes } from './launch.js';

/** Throws a ValueError naming `op` unless `list` is an array of integers (a shape, an order). */
function checkIntegers(op: string, what: string, list: unknown): asserts list is readonly number[] {
  if (!Array.isArray(list) || !list.every((d) => Number.isInteger(d))) {
    throw new ValueError(`${op}: ${what} is ${Array.isArray(list) ? `[${list.map(String).join(', ')}]` : describeValue(list)}; expected an array of integers`);
  }
}

/** Resolves a possibly negative axis against a rank. */
export function normAxis(op: string, axis: number, rank: number): number {
  if (!Number.isInteger(axis)) throw new ValueError(`${op}: axis is ${describeValue(axis)}; expected an integer`);
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) {
    throw new ShapeError(`${op}: axis ${axis} is out of range for a tensor of rank ${rank}`);
  }
  return a;
}

/** Same elements in another shape; one dimension may be -1. */
export const reshape: Op<[Tensor, readonly number[]], [], { inShape: readonly number[] }> = defineOp({
  name: 'reshape',
  tensors: ['x'],
  forward(ctx: OpContext<[], { inShape: readonly number[] }>, x: Tensor, shape: readonly number[]) {
    checkIntegers('reshape', 'shape', shape);
    const target = [...shape];
    const unknown = target.indexOf(-1);
    if (unknown !== target.lastIndexOf(-1)) throw new ShapeError(`reshape: ${fmtShape(shape)} has more than one -1`);
    if (unknown >= 0) {
      const known = numel(target.filter((_, i) => i !== unknown));
      if (known === 0 || x.size % known !== 0) {
        throw new ShapeError(`reshape: cannot reshape ${fmtShape(x.shape)} (${x.size} elements) to ${fmtShape(shape)}`);
      }
      target[unknown] = x.size / known;
    }
    if (target.some((d) => !Number.isInteger(d) || d < 0) || numel(target) !== x.size) {
      throw new ShapeError(`reshape: cannot reshape ${fmtShape(x.shape)} (${x.size} elements) to ${fmtShape(shape)}`);
    }
    ctx.data = { inShape: x.shape };
    if (x.isContiguous) return x.view(target, contiguousStrides(target), x.offset, 'reshape');
    const c = contiguousData('reshape', x);
    return c.view(target, contiguousStrides(target), 0);
  },
  backward(ctx, g) {
    return [reshape(g, ctx.data.inShape)];
  },
});

/** Reorders dimensions: result dimension i is input dimension `order[i]`. A view. */
export const permute: Op<[Tensor, readonly number[]], [], { axes: number[] }> = defineOp({
  name: 'permute',
  tensors: ['x'],
  forward(ctx: OpContext<[], { axes: number[] }>, x: Tensor, order: readonly number[]) {
    checkIntegers('permute', 'order', order);
    const axes = order.map((a) => normAxis('permute', a, x.rank));
    if (axes.length !== x.rank || axes.some((a, i) => axes.indexOf(a) !== i)) {
      throw new ShapeError(`permute: order ${fmtShape(order)} is not a permutation of the ${x.rank} axes of ${fmtShape(x.shape)}`);
    }
    ctx.data = { axes };
    return x.view(
      axes.map((a) => x.shape[a]!),
      axes.map((a) => x.strides[a]!),
      x.offset,
      'permute',
    );
  },
  backward(ctx, g) {
    const { axes } = ctx.data;
    const inverse = new Array<number>(axes.length);
    axes.forEach((a, i) => (inverse[a] = i));
    return [permute(g, inverse)];
  },
});

/** Swaps two dimensions (default: the last two). A view. */
export function transpose(x: Tensor, dim0 = -2, dim1 = -1): Tensor {
  checkTensorArg('transpose', 'x', x);
  const order = x.shape.map((_, i) => i);
  const a = normAxis('transpose', dim0, x.rank);
  const b = normAxis('transpose', dim1, x.rank);
  [order[a], order[b]] = [order[b]!, order[a]!];
  return permute(x, order);
}

/** Elements start <= i < end along `axis` (negative indices count from the end). A view. */
export const slice = defineOp({
  name: 'slice',
  tensors: ['x'],
  forward(ctx: OpContext<[], { a: number; s: number; inShape: readonly number[] }>, x: Tensor, axis: number, start: number, end?: number) {
    const a = normAxis('slice', axis, x.rank);
    if (!Number.isInteger(start) || (end !== undefined && !Number.isInteger(end))) {
      throw new ValueError(`slice: start ${start} and end ${end} must be integers`);
    }
    const n = x.shape[a]!;
    const s = Math.min(Math.max(start < 0 ? start + n : start, 0), n);
    const e = Math.min(Math.max(end === undefined ? n : end < 0 ? end + n : end, s), n);
    ctx.data = { a, s, inShape: x.shape };
    const shape = [...x.shape];
    shape[a] = e - s;
    return x.view(shape, x.strides, x.offset + s * x.strides[a]!, 'slice');
  },
  // The gradient is g placed into zeros at the sliced positions.
  backward(ctx, g) {
    const { a, s, inShape } = ctx.data;
    const out = runFill(inShape, g.dtype, 0, null);
    const strides = contiguousStrides(inShape);
    runCopy('slice', g, out.view(g.shape, strides, s * strides[a]!));
    return [out];
  },
});

/**
 * Broadcasts size-1 dimensions to `shape` (and adds leading ones); -1 keeps a dimension's size, as
 * torch.Tensor.expand. A view with zero strides.
 */
export const expand = defineOp({
  name: 'expand',
  tensors: ['x'],
  forward(ctx: OpContext<[], { inShape: readonly number[]; lead: number }>, x: Tensor, shape: readonly number[]) {
    checkIntegers('expand', 'shape', shape);
    const lead = shape.length - x.rank;
    if (lead < 0) throw new ShapeError(`expand: cannot expand ${fmtShape(x.shape)} to the lower rank ${fmtShape(shape)}`);
    const target = shape.map((d, i) => {
      if (d === -1 && i >= lead) return x.shape[i - lead]!;
      if (!Number.isInteger(d) || d < 0) {
        throw new ShapeError(
          `expand: cannot expand ${fmtShape(x.shape)} to ${fmtShape(shape)}: dimension ${i} must be a size >= 0` +
            (i >= lead ? ' or -1 (keep it)' : ' (-1 is allowed only on existing dimensions)'),
        );
      }
      return d;
    });
    const strides = target.map((d, i) => {
      if (i < lead) return 0;
      const src = x.shape[i - lead]!;
      if (src === d) return x.strides[i - lead]!;
      if (src === 1) return 0;
      throw new ShapeError(`expand: cannot expand ${fmtShape(x.shape)} to ${fmtShape(shape)} (dimension ${i}: ${src} vs ${d})`);
    });
    ctx.data = { inShape: x.shape, lead };
    return x.view(target, strides, x.offset, 'expand');
  },
  backward(ctx, g) {
    const { inShape, lead } = ctx.data;
    const axes: number[] = [];
    g.shape.forEach((d, i) => {
      if (i < lead || (inShape[i - lead] === 1 && d !== 1)) axes.push(i);
    });
    const summed = runSumAxes('expand', g, axes);
    return [summed.view(inShape, contiguousStrides(inShape), 0)];
  },
});

/** A row-major copy (or the tensor itself when already contiguous). */
export const contiguous = defineOp({
  name: 'contiguous',
  tensors: ['x'],
  forward(_ctx, x: Tensor) {
    if (x.isContiguous) return x.view(x.shape, x.strides, x.offset, 'contiguous');
    return contiguousData('contiguous', x);
  },
  backward(_ctx, g) {
    return [g];
  },
});

/** Joins tensors of equal shape except along `axis`. */
export const cat = defineOp({
  name: 'cat',
  tensors: ['xs[]'],
  forward(ctx: OpContext<[], { a: number; sizes: number[] }>, xs: readonly Tensor[], axis: number = 0) {
    if (xs.length === 0) throw new ShapeError('cat: needs at least one tensor');
    const first = xs[0]!;
    const a = normAxis('cat', axis, first.rank);
    for (const x of xs) {
      const same = x.rank === first.rank && x.shape.every((d, i) => i === a || d === first.shape[i]) && x.dtype === first.dtype;
      if (!same) {
        throw new ShapeError(
          `cat: ${xs.map((t) => `${fmtShape(t.shape)} ${t.dtype}`).join(', ')} differ outside axis ${axis} (or in dtype)`,
        );
      }
    }
    const shape = [...first.shape];
    shape[a] = xs.reduce((s, x) => s + x.shape[a]!, 0);
    const out = empty(shape, first.dtype);
    const strides = contiguousStrides(shape);
    let at = 0;
    for (const x of xs) {
      runCopy('cat', x, out.view(x.shape, strides, at * strides[a]!));
      at += x.shape[a]!;
    }
    ctx.data = { a, sizes: xs.map((x) => x.shape[a]!) };
    return out;
  },
  backward(ctx, g) {
    const { a, sizes } = ctx.data;
    let at = 0;
    return sizes.map((n) => {
      const part = slice(g, a, at, at + n);
      at += n;
      return contiguousData('cat', part);
    });
  },
});
