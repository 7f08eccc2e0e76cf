// Reductions over axes: sum, mean, max (with torch.max(dim)'s first-index gradient routing).
import { getRuntime } from '../backend/context.js';
import { ShapeError, fmtShape } from '../errors.js';
import { compileKernel, grid1d, packParams } from '../kernels.js';
import { contiguousStrides, empty, numel, Tensor } from '../tensor.js';
import { checkTensorArg, defineOp, type OpContext } from './define.js';
import { checkFloat, contiguousData, runSumAxes, runUnary } from './launch.js';
import { expand, normAxis } from './views.js';

/**
 * Axes to reduce, normalised and sorted: all when undefined or an empty list (as torch.sum(x, [])
 * does); an axis named twice (as 0 and -rank, say) is an error, as in torch.
 */
function reduceAxes(op: string, x: Tensor, axis: number | readonly number[] | undefined): number[] {
  if (axis === undefined || (Array.isArray(axis) && axis.length === 0)) return x.shape.map((_, i) => i);
  const list = typeof axis === 'number' ? [axis] : axis;
  const axes = list.map((a) => normAxis(op, a, x.rank));
  const twice = axes.find((a, i) => axes.indexOf(a) !== i);
  if (twice !== undefined) throw new ShapeError(`${op}: axis ${twice} appears more than once in ${fmtShape(list)}; name each axis once`);
  return axes.sort((p, q) => p - q);
}

function resultShape(x: Tensor, axes: number[], keepdim: boolean): number[] {
  return keepdim ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !axes.includes(i));
}

function sumLike(op: string, scaleOf: (n: number) => number) {
  return defineOp({
    name: op,
    tensors: ['x'],
    forward(ctx: OpContext<[], { inShape: readonly number[]; keptShape: readonly number[]; scale: number }>, x: Tensor, axis?: number | readonly number[], keepdim: boolean = false) {
      checkFloat(op, x);
      const axes = reduceAxes(op, x, axis);
      const n = numel(axes.map((a) => x.shape[a]!));
      const kept = runSumAxes(op, x, axes, scaleOf(n));
      const shape = resultShape(x, axes, keepdim);
      ctx.data = { inShape: x.shape, keptShape: kept.shape, scale: scaleOf(n) };
      return kept.view(shape, contiguousStrides(shape), 0);
    },
    // d sum/dx = 1 (mean: 1/n) broadcast over the reduced axes
    backward(ctx, g) {
      const { inShape, keptShape, scale } = ctx.data;
      // g may be any view (a transpose downstream): make it row-major before re-viewing its shape.
      const gk = contiguousData(op, g).view(keptShape, contiguousStrides(keptShape), 0);
      const spread = expand(gk, inShape);
      return [scale === 1 ? contiguousData(op, spread) : runUnary(op, spread, 'v * c', scale)];
    },
  });
}

/** Sum over `axis` (a number, a list, or every axis when omitted or []); `keepdim` keeps them as size 1. */
export const sum = sumLike('sum', () => 1);

/** Mean over `axis` (a number, a list, or every axis when omitted or []); NaN over no elements, as torch. */
export const mean = sumLike('mean', (n) => (n === 0 ? NaN : 1 / n));

/** Maximum over one axis. The gradient goes to the first maximal element, as torch.max(dim) does. */
export const max = defineOp({
  name: 'max',
  tensors: ['x'],
  forward(ctx: OpContext<[Tensor], { inShape: readonly number[]; a: number }>, x: Tensor, axis: number, keepdim: boolean = false) {
    checkFloat('max', x);
    const a = normAxis('max', axis, x.rank);
    const { values, indices } = maxWithIndices(x, a);
    const shape = resultShape(x, [a], keepdim);
    ctx.saved = [indices];
    ctx.data = { inShape: x.shape, a };
    return values.view(shape, contiguousStrides(shape), 0);
  },
  // d max/dx = 1 at the argmax, 0 elsewhere
  backward(ctx, g) {
    const { inShape, a } = ctx.data;
    const [indices] = ctx.saved;
    const gk = contiguousData('max', g);
    const outer = numel(inShape.slice(0, a));
    const n = inShape[a]!;
    const inner = numel(inShape.slice(a + 1));
    const dx = empty(inShape, g.dtype);
    const rt = getRuntime();
    const kernel = compileKernel(rt, 'scatter_max_grad', { T: g.dtype });
    const params = packParams('scatter_max_grad', { outer, n, inner });
    rt.dispatch({
      kernel,
      params,
      buffers: [gk.buffer('max'), indices.buffer('max'), dx.buffer('max')],
      workgroups: grid1d(outer * n * inner, 256),
      label: 'max backward',
    });
    return [dx];
  },
});

/** Maximum values and their first indices (i32) along axis `a`, keeping it as size 1. */
export function maxWithIndices(x: Tensor, a: number, op = 'max'): { values: Tensor; indices: Tensor } {
  const n = x.shape[a]!;
  if (n === 0) {
    throw new ShapeError(`${op}: axis ${a} of ${fmtShape(x.shape)} has size 0, so there is no maximum (torch refuses it too)`);
  }
  const c = contiguousData(op, x);
  const outer = numel(x.shape.slice(0, a));
  const inner = numel(x.shape.slice(a + 1));
  const shape = x.shape.map((d, i) => (i === a ? 1 : d));
  const values = empty(shape, x.dtype);
  const indices = empty(shape, 'i32');
  if (values.size > 0) {
    const rt = getRuntime();
    const kernel = compileKernel(rt, 'reduce_max', { T: x.dtype });
    const params = packParams('reduce_max', { outer, n, inner });
    rt.dispatch({
      kernel,
      params,
      buffers: [c.buffer('max'), values.buffer('max'), indices.buffer('max')],
      workgroups: grid1d(outer * inner, 1),
      label: 'max',
    });
  }
  if (c !== x) c.dispose('temporary of max');
  return { values, indices };
}

/** Index of the first maximum along `axis` (i32, no gradient). */
export function argmax(x: Tensor, axis: number, keepdim: boolean = false): Tensor {
  checkTensorArg('argmax', 'x', x);
  checkFloat('argmax', x);
  const a = normAxis('argmax', axis, x.rank);
  const { values, indices } = maxWithIndices(x, a, 'argmax');
  values.dispose('not needed by argmax');
  const shape = resultShape(x, [a], keepdim);
  const out = indices.view(shape, contiguousStrides(shape), 0);
  indices.dispose('replaced by a reshaped view');
  return out;
}
