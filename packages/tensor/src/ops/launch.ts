// Launch helpers shared by the ops: strided elementwise kernels, broadcasting, reductions and copies.
import { deviceInfo, getRuntime } from '../backend/context.js';
import { DTypeError, ShapeError, ValueError, fmtShape } from '../errors.js';
import { compileKernel, grid1d, packParams, type Defines } from '../kernels.js';
import type { WgslName } from '../kernels.generated.js';
import { contiguousStrides, empty, numel, Tensor, type DType } from '../tensor.js';

/** Kernels index at most this many dimensions after merging contiguous ones. */
export const MAX_RANK = 8;

export function isFloat(dtype: DType): boolean {
  return dtype === 'f32' || dtype === 'f16';
}

export function checkFloat(op: string, ...ts: Tensor[]): void {
  for (const t of ts) {
    if (!isFloat(t.dtype)) throw new DTypeError(`${op}: expected a float tensor (f32 or f16), got ${t.dtype} ${fmtShape(t.shape)}`);
  }
}

export function checkSameDType(op: string, a: Tensor, b: Tensor): void {
  if (a.dtype !== b.dtype) {
    throw new DTypeError(
      `${op}: operands have different dtypes (${a.dtype} ${fmtShape(a.shape)} and ${b.dtype} ${fmtShape(b.shape)}); cast one with .to()`,
    );
  }
}

/** The broadcast shape of two shapes (NumPy rules), or a ShapeError naming the op. */
export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new ShapeError(
        `${op}: shapes ${fmtShape(a)} and ${fmtShape(b)} do not broadcast (dimension ${i} of the result: ${da} vs ${db})`,
      );
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Strides that read `t` as if it had `shape` (0 on broadcast dimensions). */
export function broadcastStrides(t: Tensor, shape: readonly number[]): number[] {
  const rank = shape.length;
  const out = new Array<number>(rank).fill(0);
  for (let i = 0; i < t.rank; i++) {
    const j = rank - t.rank + i;
    out[j] = t.shape[i] === 1 && shape[j] !== 1 ? 0 : t.strides[i]!;
  }
  return out;
}

/** Drops size-1 dimensions and merges dimensions that are contiguous in every stride list. */
export function coalesce(shape: readonly number[], stridesList: readonly (readonly number[])[]): { shape: number[]; strides: number[][] } {
  // Plain loops: every elementwise op and product coalesces its operands.
  const n = stridesList.length;
  const dims: number[] = [];
  const strides: number[][] = new Array<number[]>(n);
  for (let k = 0; k < n; k++) strides[k] = [];
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i]!;
    if (d === 1) continue;
    const last = dims.length - 1;
    let merges = last >= 0;
    for (let k = 0; k < n && merges; k++) merges = strides[k]![last] === stridesList[k]![i]! * d;
    if (merges) {
      dims[last] = dims[last]! * d;
      for (let k = 0; k < n; k++) strides[k]![last] = stridesList[k]![i]!;
    } else {
      dims.push(d);
      for (let k = 0; k < n; k++) strides[k]!.push(stridesList[k]![i]!);
    }
  }
  if (dims.length === 0) {
    dims.push(1);
    for (let k = 0; k < n; k++) strides[k]!.push(0);
  }
  return { shape: dims, strides };
}

function checkRank(op: string, shape: readonly number[], original: readonly number[]): void {
  if (shape.length > MAX_RANK) {
    throw new ShapeError(`${op}: ${fmtShape(original)} has more than ${MAX_RANK} non-mergeable dimensions; make it contiguous or reshape first`);
  }
}

/**
 * Most workgroups an elementwise kernel launches on a software (CPU) adapter such as lavapipe, which
 * pays a fixed cost per workgroup: each thread then loops over many elements.
 */
const CPU_ELEMENTWISE_GROUPS = 256;
/** Most on a GPU: enough to fill the largest GPUs' SMs many times over, each thread looping a few times. */
const GPU_ELEMENTWISE_GROUPS = 4096;

/**
 * Workgroups (256 threads each) for an elementwise kernel over `n` elements that loops with a grid
 * stride (kernels/include/elementwise.wgsl): a thread per element up to a cap for the adapter's kind.
 */
export function elementwiseGroups(n: number): [number, number] {
  const cap = groupCap ?? (deviceInfo()?.isFallbackAdapter ? CPU_ELEMENTWISE_GROUPS : GPU_ELEMENTWISE_GROUPS);
  return grid1d(Math.min(n, cap * 256), 256);
}

let groupCap: number | null = null;

/**
 * Sets the most workgroups {@link elementwiseGroups} launches (null: the adapter's default), so that
 * tests reach the grid-stride loop's later rounds and tails on small tensors.
 */
export function setElementwiseGroupCap(cap: number | null): void {
  if (cap !== null && !(Number.isInteger(cap) && cap >= 1)) throw new ValueError(`setElementwiseGroupCap: expected a positive integer or null, got ${cap}`);
  groupCap = cap;
}

/**
 * Dispatches the elementwise kernel `name` over the elements of `shape` (a grid-stride loop, see
 * {@link elementwiseGroups}), over
 * views read with `viewStrides` (one list per view): the dimensions are coalesced first (at most MAX_RANK
 * may remain), then `pack` fills the kernel's uniform from the element count, the coalesced shape
 * (its length is the rank) and each view's coalesced strides. Nothing runs for an empty shape.
 * Packers list their fields one by one: `{ ...base, more }` costs V8 about a microsecond a call.
 */
export function runStrided(
  op: string,
  name: WgslName,
  defines: Defines,
  shape: readonly number[],
  viewStrides: readonly (readonly number[])[],
  buffers: () => GPUBuffer[],
  pack: (numel: number, shape: number[], strides: number[][]) => Uint32Array,
): void {
  const n = numel(shape);
  if (n === 0) return;
  const merged = coalesce(shape, viewStrides);
  checkRank(op, merged.shape, shape);
  const rt = getRuntime();
  const kernel = compileKernel(rt, name, defines);
  const params = pack(n, merged.shape, merged.strides);
  rt.dispatch({ kernel, params, buffers: buffers(), workgroups: elementwiseGroups(n), label: op });
}

/** y = f(x) elementwise (`expr` over `v` and the constant `c`), for any view of x. */
export function runUnary(op: string, x: Tensor, expr: string, c = 0, outDtype: DType = x.dtype): Tensor {
  const y = empty(x.shape, outDtype);
  runStrided(op, 'unary', { TX: x.dtype, TY: outDtype, EXPR: expr }, x.shape, [x.strides], () => [x.buffer(op), y.buffer(op)], (numel, s, [xs]) =>
    packParams('unary', { numel, rank: s.length, shape: s, x_offset: x.offset, c, x_strides: xs! }),
  );
  return y;
}

/** out = f(a, b) elementwise with broadcasting (`expr` over `a` and `b`). */
export function runBinary(op: string, a: Tensor, b: Tensor, expr: string): Tensor {
  checkSameDType(op, a, b);
  const outShape = broadcastShapes(op, a.shape, b.shape);
  const out = empty(outShape, a.dtype);
  const views = [broadcastStrides(a, outShape), broadcastStrides(b, outShape)];
  runStrided(op, 'binary', { T: a.dtype, EXPR: expr }, outShape, views, () => [a.buffer(op), b.buffer(op), out.buffer(op)], (numel, s, [as, bs]) =>
    packParams('binary', { numel, rank: s.length, shape: s, a_offset: a.offset, b_offset: b.offset, a_strides: as!, b_strides: bs! }),
  );
  return out;
}

/** Copies `src` (any view) into the view `dst` of the same shape (a write into dst's storage: its version grows). */
export function runCopy(op: string, src: Tensor, dst: Tensor): void {
  if (src.dtype !== dst.dtype) throw new DTypeError(`${op}: copy from ${src.dtype} into ${dst.dtype}`);
  dst.storage(op).bump();
  runStrided(op, 'copy_strided', { T: src.dtype }, src.shape, [src.strides, dst.strides], () => [src.buffer(op), dst.buffer(op)], (numel, s, [ss, ds]) =>
    packParams('copy_strided', { numel, rank: s.length, shape: s, src_offset: src.offset, dst_offset: dst.offset, src_strides: ss!, dst_strides: ds! }),
  );
}

/** A contiguous copy of any view (the input itself when it is already contiguous from offset 0). */
export function contiguousData(op: string, x: Tensor): Tensor {
  if (x.isContiguous && x.offset === 0) return x;
  const y = empty(x.shape, x.dtype);
  runCopy(op, x, y);
  return y;
}

/** Fills a new tensor with a constant (mode 0) or start + i * step (mode 1). */
export function runFill(shape: readonly number[], dtype: DType, start: number, step: number | null): Tensor {
  const y = empty(shape, dtype);
  const n = y.size;
  if (n === 0) return y;
  const rt = getRuntime();
  const kernel = compileKernel(rt, 'fill', { T: dtype });
  const params = packParams('fill', { numel: n, mode: step === null ? 0 : 1, start, step: step ?? 0 });
  rt.dispatch({ kernel, params, buffers: [y.buffer('fill')], workgroups: elementwiseGroups(n), label: 'fill' });
  return y;
}

/** Sums a contiguous tensor over the given axes (scaled by `scale`), keeping them as size 1. */
export function runSumAxes(op: string, x: Tensor, axes: readonly number[], scale = 1): Tensor {
  let cur = contiguousData(op, x);
  let shape = [...x.shape];
  const sorted = [...new Set(axes)].sort((p, q) => p - q);
  // Merge runs of adjacent reduced axes, then reduce each run as the middle of [outer, n, inner].
  const runs: [number, number][] = [];
  for (const a of sorted) {
    const last = runs[runs.length - 1];
    if (last && last[1] === a) last[1] = a + 1;
    else runs.push([a, a + 1]);
  }
  const rt = getRuntime();
  runs.forEach(([from, to], k) => {
    const outer = numel(shape.slice(0, from));
    const n = numel(shape.slice(from, to));
    const inner = numel(shape.slice(to));
    const outShape = shape.map((d, i) => (i >= from && i < to ? 1 : d));
    const y = empty(outShape, cur.dtype);
    if (y.size > 0) {
      const kernel = compileKernel(rt, 'reduce_sum', { T: cur.dtype });
      const s = k === runs.length - 1 ? scale : 1;
      const params = packParams('reduce_sum', { outer, n, inner, scale: s });
      rt.dispatch({ kernel, params, buffers: [cur.buffer(op), y.buffer(op)], workgroups: grid1d(outer * inner, 1), label: op });
    }
    if (cur !== x) cur.dispose('temporary of a reduction');
    cur = y;
    shape = outShape;
  });
  if (runs.length === 0) {
    if (scale !== 1) {
      const y = runUnary(op, cur, 'v * c', scale);
      if (cur !== x) cur.dispose('temporary of a reduction');
      return y;
    }
    return cur === x ? runUnary(op, x, 'v') : cur;
  }
  return cur;
}

/** Sums a broadcast gradient back to `shape` (the reverse of broadcasting). */
export function sumToShape(op: string, g: Tensor, shape: readonly number[]): Tensor {
  if (g.shape.length === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  const summed = runSumAxes(op, g, axes);
  return summed.view([...shape], contiguousStrides(shape), 0);
}
