// Error classes of @huatuo/tensor. Messages name the op, what was expected, what was got, and the fix.

/** Base class of every error this package throws. */
export class TensorError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Shapes that do not fit an op: "matmul: a is [4, 8], b is [6, 2]; ...". */
export class ShapeError extends TensorError {}

/** A dtype an op does not accept, or two operands whose dtypes differ. */
export class DTypeError extends TensorError {}

/** A tensor used after `dispose()`. */
export class DisposedError extends TensorError {}

/** No WebGPU adapter or device, a lost device, or a WebGPU validation error. */
export class DeviceError extends TensorError {}

/** An argument outside its allowed range (ids out of the table, p outside [0, 1), ...). */
export class ValueError extends TensorError {}

/** Backward called where it cannot run (no graph, non-scalar loss without a gradient). */
export class AutogradError extends TensorError {}

/** Formats a shape as `[2, 3]` for messages. */
export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** The multi-index of flat index `i` in a row-major `shape`, for messages naming an element. */
export function unravelIndex(i: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d]!;
    i = Math.floor(i / shape[d]!);
  }
  return idx;
}
