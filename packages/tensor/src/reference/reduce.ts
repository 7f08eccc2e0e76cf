// CPU reference of the reductions: sum and mean over axes (optionally keeping them as size 1) and
// max over one axis with the gradient routed to the first maximal element.
import { refStrides, refZeros, unravel, type RefTensor } from './ref-tensor.js';

function normAxes(rank: number, axes: number | readonly number[] | undefined): number[] {
  if (axes === undefined || (Array.isArray(axes) && axes.length === 0)) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof axes === 'number' ? [axes] : axes;
  return [...new Set(list.map((a) => (a < 0 ? a + rank : a)))].sort((p, q) => p - q);
}

function reducedShape(shape: readonly number[], axes: readonly number[], keepdim: boolean): number[] {
  return keepdim ? shape.map((d, i) => (axes.includes(i) ? 1 : d)) : shape.filter((_, i) => !axes.includes(i));
}

/** Flat index in the reduced (keepdim) layout of the input element at multi-index idx. */
function reducedIndex(idx: readonly number[], shape: readonly number[], axes: readonly number[]): number {
  let flat = 0;
  for (let d = 0; d < shape.length; d++) {
    if (axes.includes(d)) continue;
    flat = flat * shape[d]! + idx[d]!;
  }
  return flat;
}

/** Sum over `axes` (every axis when omitted; negative axes count from the end). */
export function refSum(x: RefTensor, axes?: number | readonly number[], keepdim = false): RefTensor {
  const ax = normAxes(x.shape.length, axes);
  const out = refZeros(reducedShape(x.shape, ax, keepdim));
  for (let i = 0; i < x.data.length; i++) out.data[reducedIndex(unravel(i, x.shape), x.shape, ax)]! += x.data[i]!;
  return out;
}

/** Gradient of sum: g copied to every element it summed. */
export function refSumBackward(x: RefTensor, axes: number | readonly number[] | undefined, _keepdim: boolean, g: RefTensor): RefTensor {
  const ax = normAxes(x.shape.length, axes);
  const out = refZeros(x.shape);
  for (let i = 0; i < out.data.length; i++) out.data[i] = g.data[reducedIndex(unravel(i, x.shape), x.shape, ax)]!;
  return out;
}

function count(x: RefTensor, axes: number | readonly number[] | undefined): number {
  return normAxes(x.shape.length, axes).reduce((n, a) => n * x.shape[a]!, 1);
}

/** Mean over `axes` (every axis when omitted). */
export function refMean(x: RefTensor, axes?: number | readonly number[], keepdim = false): RefTensor {
  const s = refSum(x, axes, keepdim);
  const n = count(x, axes);
  for (let i = 0; i < s.data.length; i++) s.data[i] = s.data[i]! / n;
  return s;
}

/** Gradient of mean: g / n copied to every element it averaged. */
export function refMeanBackward(x: RefTensor, axes: number | readonly number[] | undefined, keepdim: boolean, g: RefTensor): RefTensor {
  const out = refSumBackward(x, axes, keepdim, g);
  const n = count(x, axes);
  for (let i = 0; i < out.data.length; i++) out.data[i] = out.data[i]! / n;
  return out;
}

/** Maximum along `axis` and the index of its first occurrence (NaN counts as the maximum). */
export function refMax(x: RefTensor, axis: number, keepdim = false): { values: RefTensor; indices: RefTensor } {
  const a = axis < 0 ? axis + x.shape.length : axis;
  const shape = reducedShape(x.shape, [a], keepdim);
  const values = refZeros(shape);
  const indices = refZeros(shape);
  const n = x.shape[a]!;
  const stride = refStrides(x.shape)[a]!;
  const outer = x.shape.slice(0, a).reduce((p, d) => p * d, 1);
  const inner = stride;
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < inner; j++) {
      let best = -Infinity;
      let at = 0;
      for (let k = 0; k < n; k++) {
        const v = x.data[o * n * inner + k * inner + j]!;
        if (Number.isNaN(v)) {
          best = v;
          at = k;
          break;
        }
        if (v > best || k === 0) {
          best = v;
          at = k;
        }
      }
      values.data[o * inner + j] = best;
      indices.data[o * inner + j] = at;
    }
  }
  return { values, indices };
}

/** Gradient of max along `axis`: g at the first maximal element of each slice, 0 elsewhere. */
export function refMaxBackward(x: RefTensor, axis: number, keepdim: boolean, g: RefTensor): RefTensor {
  const a = axis < 0 ? axis + x.shape.length : axis;
  const { indices } = refMax(x, a, keepdim);
  const out = refZeros(x.shape);
  for (let i = 0; i < out.data.length; i++) {
    const idx = unravel(i, x.shape);
    const r = reducedIndex(idx, x.shape, [a]);
    if (indices.data[r] === idx[a]) out.data[i] = g.data[r]!;
  }
  return out;
}
