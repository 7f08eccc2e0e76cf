// CPU reference of the layout ops: reshape, permute/transpose, slice, expand and cat, forward
// and backward, on dense row-major copies.
import { refBroadcastTo, refSumToShape } from './elementwise.js';
import { refNumel, refStrides, refZeros, unravel, type RefTensor } from './ref-tensor.js';

function axisOf(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

/** The same elements in another shape; one dimension may be -1. */
export function refReshape(x: RefTensor, shape: readonly number[]): RefTensor {
  const target = [...shape];
  const unknown = target.indexOf(-1);
  if (unknown >= 0) target[unknown] = x.data.length / refNumel(target.filter((_, i) => i !== unknown));
  if (refNumel(target) !== x.data.length) throw new Error(`reference: cannot reshape [${x.shape.join(', ')}] to [${shape.join(', ')}]`);
  return { shape: target, data: Float64Array.from(x.data) };
}

/** Gradient of reshape: g in the input's shape. */
export function refReshapeBackward(x: RefTensor, g: RefTensor): RefTensor {
  return { shape: [...x.shape], data: Float64Array.from(g.data) };
}

/** Result dimension i is input dimension order[i]. */
export function refPermute(x: RefTensor, order: readonly number[]): RefTensor {
  const rank = x.shape.length;
  const axes = order.map((a) => axisOf(a, rank));
  const shape = axes.map((a) => x.shape[a]!);
  const inStrides = refStrides(x.shape);
  const out = refZeros(shape);
  for (let i = 0; i < out.data.length; i++) {
    const idx = unravel(i, shape);
    let src = 0;
    for (let d = 0; d < rank; d++) src += idx[d]! * inStrides[axes[d]!]!;
    out.data[i] = x.data[src]!;
  }
  return out;
}

/** Gradient of permute: g permuted by the inverse order. */
export function refPermuteBackward(x: RefTensor, order: readonly number[], g: RefTensor): RefTensor {
  const rank = x.shape.length;
  const inverse = new Array<number>(rank);
  order.forEach((a, i) => (inverse[axisOf(a, rank)] = i));
  return refPermute(g, inverse);
}

/** Swaps two dimensions (default: the last two). */
export function refTranspose(x: RefTensor, dim0 = -2, dim1 = -1): RefTensor {
  const rank = x.shape.length;
  const order = x.shape.map((_, i) => i);
  const a = axisOf(dim0, rank);
  const b = axisOf(dim1, rank);
  [order[a], order[b]] = [order[b]!, order[a]!];
  return refPermute(x, order);
}

/** Clamped [start, end) along an axis of size n, negative indices counting from the end. */
function sliceRange(n: number, start: number, end: number | undefined): [number, number] {
  const s = Math.min(Math.max(start < 0 ? start + n : start, 0), n);
  const e = Math.min(Math.max(end === undefined ? n : end < 0 ? end + n : end, s), n);
  return [s, e];
}

/** Elements start <= i < end along `axis`. */
export function refSlice(x: RefTensor, axis: number, start: number, end?: number): RefTensor {
  const a = axisOf(axis, x.shape.length);
  const [s, e] = sliceRange(x.shape[a]!, start, end);
  const shape = [...x.shape];
  shape[a] = e - s;
  const inStrides = refStrides(x.shape);
  const out = refZeros(shape);
  for (let i = 0; i < out.data.length; i++) {
    const idx = unravel(i, shape);
    idx[a] = idx[a]! + s;
    out.data[i] = x.data[idx.reduce((p, v, d) => p + v * inStrides[d]!, 0)]!;
  }
  return out;
}

/** Gradient of slice: g at the sliced positions, zeros elsewhere. */
export function refSliceBackward(x: RefTensor, axis: number, start: number, end: number | undefined, g: RefTensor): RefTensor {
  const a = axisOf(axis, x.shape.length);
  const [s] = sliceRange(x.shape[a]!, start, end);
  const inStrides = refStrides(x.shape);
  const out = refZeros(x.shape);
  for (let i = 0; i < g.data.length; i++) {
    const idx = unravel(i, g.shape);
    idx[a] = idx[a]! + s;
    out.data[idx.reduce((p, v, d) => p + v * inStrides[d]!, 0)] = g.data[i]!;
  }
  return out;
}

/** Size-1 dimensions repeated to `shape` (leading dimensions added). */
export function refExpand(x: RefTensor, shape: readonly number[]): RefTensor {
  return refBroadcastTo(x, shape);
}

/** Gradient of expand: g summed over the repeated dimensions. */
export function refExpandBackward(x: RefTensor, g: RefTensor): RefTensor {
  return refSumToShape(g, x.shape);
}

/** Tensors joined along `axis`. */
export function refCat(xs: readonly RefTensor[], axis = 0): RefTensor {
  const first = xs[0]!;
  const a = axisOf(axis, first.shape.length);
  const shape = [...first.shape];
  shape[a] = xs.reduce((s, x) => s + x.shape[a]!, 0);
  const outStrides = refStrides(shape);
  const out = refZeros(shape);
  let at = 0;
  for (const x of xs) {
    for (let i = 0; i < x.data.length; i++) {
      const idx = unravel(i, x.shape);
      idx[a] = idx[a]! + at;
      out.data[idx.reduce((p, v, d) => p + v * outStrides[d]!, 0)] = x.data[i]!;
    }
    at += x.shape[a]!;
  }
  return out;
}

/** Gradients of cat: the parts of g each input filled. */
export function refCatBackward(xs: readonly RefTensor[], axis: number, g: RefTensor): RefTensor[] {
  const a = axisOf(axis, g.shape.length);
  let at = 0;
  return xs.map((x) => {
    const part = refSlice(g, a, at, at + x.shape[a]!);
    at += x.shape[a]!;
    return part;
  });
}
