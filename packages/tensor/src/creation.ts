// Creating tensors: from host arrays, constants, ranges and seeded random numbers.
import { hasF16 } from './backend/context.js';
import { DTypeError, ShapeError, ValueError, fmtShape } from './errors.js';
import { runFill } from './ops/launch.js';
import { Generator, defaultGenerator } from './random.js';
import { f32ToF16Bits } from './f16-bits.js';
import { checkDTypeName, checkShape, fromHost, numel, type DType, type Tensor } from './tensor.js';

export { f16BitsToF32, f32ToF16Bits } from './f16-bits.js';

/** Options shared by the creation functions. */
export interface CreateOptions {
  dtype?: DType;
  requiresGrad?: boolean;
}

/** Options of the random creation functions. */
export interface RandomOptions extends CreateOptions {
  /** Same seed, same numbers on any device. Omitted: the default generator (see manualSeed). */
  seed?: number;
}

/** Nested lists of numbers, as torch.tensor takes them: [[1, 2], [3, 4]] is a [2, 2] tensor. */
export interface NestedNumbers extends ReadonlyArray<number | NestedNumbers> {}

type HostData = Float32Array | Int32Array | Uint32Array | Uint16Array | readonly number[] | NestedNumbers | number;

/** The values of a number list, nested or flat, in row-major order, and its shape; ragged lists and non-numbers are refused. */
function flattenList(data: readonly unknown[]): { values: number[]; shape: number[] } {
  const shape: number[] = [];
  for (let level: unknown = data; Array.isArray(level); level = level[0]) shape.push(level.length);
  const values: number[] = [];
  const walk = (x: unknown, depth: number, at: string): void => {
    if (depth === shape.length) {
      if (typeof x !== 'number' && typeof x !== 'boolean') throw new ValueError(`tensor: data${at} is ${x === null ? 'null' : typeof x}; expected numbers (or booleans)`);
      values.push(Number(x));
      return;
    }
    if (!Array.isArray(x) || x.length !== shape[depth]) {
      throw new ShapeError(`tensor: data${at} ${Array.isArray(x) ? `has ${x.length} entries` : 'is not a list'}, where data${'[0]'.repeat(depth)} has ${shape[depth]}; nested lists must be rectangular`);
    }
    x.forEach((v, i) => walk(v, depth + 1, `${at}[${i}]`));
  };
  walk(data, 0, '');
  return { values, shape };
}

function finish(t: Tensor, options: CreateOptions): Tensor {
  if (options.requiresGrad) t.requireGrad();
  return t;
}

function checkDType(op: string, dtype: DType): void {
  checkDTypeName(op, dtype);
  if (dtype === 'f16' && !hasF16()) {
    throw new DTypeError(`${op}: f16 needs the adapter feature shader-f16, which this adapter lacks; use f32`);
  }
}

function inferDType(data: HostData): DType {
  if (data instanceof Int32Array) return 'i32';
  if (data instanceof Uint32Array) return 'u32';
  return 'f32';
}

/**
 * A tensor from host data (a typed array, a number array, nested number lists as torch.tensor takes
 * them, or a number) in the given shape (default: 1-D, the nesting's shape, or a scalar for a number).
 * Uint16Array data is taken as f16 bit patterns.
 * @example
 * const x = tensor([1, 2, 3, 4], [2, 2]);
 * const y = tensor([[1, 2], [3, 4]]); // [2, 2]
 * const ids = tensor(new Int32Array([5, 7]));
 */
export function tensor(data: HostData, shape?: readonly number[], options: CreateOptions = {}): Tensor {
  let values: ArrayLike<number> = typeof data === 'number' ? [data] : (data as ArrayLike<number>);
  let nestedShape: number[] | undefined;
  if (Array.isArray(data)) ({ values, shape: nestedShape } = flattenList(data));
  else if (typeof data !== 'number' && !ArrayBuffer.isView(data)) {
    throw new ValueError(`tensor: data is ${data === null ? 'null' : typeof data}; expected a typed array, a list of numbers or a number`);
  }
  const dtype = options.dtype ?? (data instanceof Uint16Array ? 'f16' : inferDType(data));
  const dims = shape ?? (typeof data === 'number' ? [] : (nestedShape ?? [values.length]));
  checkShape('tensor', dims);
  checkDType('tensor', dtype);
  if (numel(dims) !== values.length) {
    throw new ShapeError(`tensor: ${values.length} values do not fill shape ${fmtShape(dims)} (${numel(dims)} elements)`);
  }
  let host: ArrayBufferView;
  if (dtype === 'f16') {
    host = values instanceof Uint16Array ? values : f32ToF16Bits(Float32Array.from(values as ArrayLike<number>));
  } else if (dtype === 'f32') {
    host = values instanceof Float32Array ? values : Float32Array.from(values as ArrayLike<number>);
  } else if (dtype === 'i32') {
    host = values instanceof Int32Array ? values : Int32Array.from(values as ArrayLike<number>);
  } else {
    host = values instanceof Uint32Array ? values : Uint32Array.from(values as ArrayLike<number>);
  }
  return finish(fromHost(host, dims, dtype), options);
}

/** A tensor filled with `value`. */
export function full(shape: readonly number[], value: number, options: CreateOptions = {}): Tensor {
  return filled('full', shape, value, options);
}

function filled(op: string, shape: readonly number[], value: number, options: CreateOptions): Tensor {
  checkShape(op, shape);
  const dtype = options.dtype ?? 'f32';
  checkDType(op, dtype);
  if (typeof value !== 'number') throw new ValueError(`${op}: value is ${typeof value}; expected a number`);
  return finish(runFill(shape, dtype, value, null), options);
}

/** A tensor of zeros. */
export function zeros(shape: readonly number[], options: CreateOptions = {}): Tensor {
  return filled('zeros', shape, 0, options);
}

/** A tensor of ones. */
export function ones(shape: readonly number[], options: CreateOptions = {}): Tensor {
  return filled('ones', shape, 1, options);
}

/** Zeros with the shape and dtype of `t`. */
export function zerosLike(t: Tensor): Tensor {
  return full(t.shape, 0, { dtype: t.dtype });
}

/**
 * start, start + step, ... below end, as torch.arange: the length is ceil((end - start) / step) and
 * element i is start + i * step computed in float64 for f32 (in f32 for f16) and then rounded. For
 * i32 and u32, start and step are truncated to integers first (a step that truncates to 0 is refused).
 * `arange(n)` is 0..n-1.
 * @example
 * arange(0, 1, 0.1); // 10 elements, the last 0.9 rounded to f32
 */
export function arange(start: number, end?: number, step = 1, options: CreateOptions = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  for (const [what, v] of [['start', start], ['end', end], ['step', step]] as const) {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new ValueError(`arange: ${what} must be a finite number, got ${v}`);
  }
  const dtype = options.dtype ?? 'f32';
  checkDType('arange', dtype);
  const integer = dtype === 'i32' || dtype === 'u32';
  if (step === 0 || (integer && Math.trunc(step) === 0)) throw new ValueError(`arange: step must not be 0${step !== 0 ? ` (${step} truncates to 0 for ${dtype})` : ''}`);
  const n = Math.max(0, Math.ceil((end - start) / step));
  if (integer) {
    const host = dtype === 'i32' ? new Int32Array(n) : new Uint32Array(n);
    const s0 = Math.trunc(start);
    const d = Math.trunc(step);
    for (let i = 0; i < n; i++) host[i] = s0 + i * d;
    return finish(fromHost(host, [n], dtype), options);
  }
  const host = new Float32Array(n);
  if (dtype === 'f16') {
    const s0 = Math.fround(start);
    const d = Math.fround(step);
    for (let i = 0; i < n; i++) host[i] = s0 + Math.fround(d * i);
    return finish(fromHost(f32ToF16Bits(host), [n], 'f16'), options);
  }
  for (let i = 0; i < n; i++) host[i] = start + i * step;
  return finish(fromHost(host, [n], 'f32'), options);
}

function randomTensor(op: string, shape: readonly number[], options: RandomOptions, fill: (g: Generator, out: Float32Array) => void): Tensor {
  checkShape(op, shape);
  const dtype = options.dtype ?? 'f32';
  if (dtype !== 'f32' && dtype !== 'f16') throw new DTypeError(`${op}: dtype must be f32 or f16, got ${dtype}`);
  checkDType(op, dtype);
  const g = options.seed === undefined ? defaultGenerator() : new Generator(options.seed >>> 0);
  const host = new Float32Array(numel(shape));
  fill(g, host);
  // f16 is rounded on the host (to nearest even), so no f32 copy twice the size (over the binding limit
  // for a weight that fits it in f16) is ever uploaded.
  return finish(dtype === 'f32' ? fromHost(host, shape, 'f32') : fromHost(f32ToF16Bits(host), shape, 'f16'), options);
}

/** Standard normal samples (mean 0, std 1), seeded. */
export function randn(shape: readonly number[], options: RandomOptions = {}): Tensor {
  return randomTensor('randn', shape, options, (g, out) => g.fillNormal(out));
}

/** Uniform samples in [0, 1), seeded: k / 2^24 in f32, k / 2^11 in f16 (as torch.rand), so never 1. */
export function rand(shape: readonly number[], options: RandomOptions = {}): Tensor {
  return randomTensor('rand', shape, options, (g, out) => g.fillUniform(out, 0, 1, options.dtype === 'f16' ? 11 : 24));
}
