// CPU reference of the elementwise ops: broadcasting arithmetic, unary functions, where and dtype
// casts, forward and backward, in float64 loops written from the math.
import { refNumel, refZeros, unravel, type RefTensor } from './ref-tensor.js';

/** The NumPy broadcast of two shapes; throws when they do not broadcast. */
export function refBroadcastShape(a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new Error(`reference: [${a.join(', ')}] and [${b.join(', ')}] do not broadcast`);
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Flat index into `shape` of the element that broadcasts to multi-index `idx` of a larger shape. */
function broadcastIndex(idx: readonly number[], shape: readonly number[]): number {
  const lead = idx.length - shape.length;
  let flat = 0;
  for (let d = 0; d < shape.length; d++) {
    const n = shape[d]!;
    flat = flat * n + (n === 1 ? 0 : idx[lead + d]!);
  }
  return flat;
}

/** `x` broadcast to `shape` (a materialised copy). */
export function refBroadcastTo(x: RefTensor, shape: readonly number[]): RefTensor {
  const out = refZeros(shape);
  for (let i = 0; i < out.data.length; i++) out.data[i] = x.data[broadcastIndex(unravel(i, shape), x.shape)]!;
  return out;
}

/** Sums `g` over the dimensions that were broadcast from `shape` (the adjoint of broadcasting). */
export function refSumToShape(g: RefTensor, shape: readonly number[]): RefTensor {
  const out = refZeros(shape);
  for (let i = 0; i < g.data.length; i++) out.data[broadcastIndex(unravel(i, g.shape), shape)]! += g.data[i]!;
  return out;
}

function zip(a: RefTensor, b: RefTensor, f: (x: number, y: number) => number): RefTensor {
  const shape = refBroadcastShape(a.shape, b.shape);
  const out = refZeros(shape);
  for (let i = 0; i < out.data.length; i++) {
    const idx = unravel(i, shape);
    out.data[i] = f(a.data[broadcastIndex(idx, a.shape)]!, b.data[broadcastIndex(idx, b.shape)]!);
  }
  return out;
}

function map(x: RefTensor, f: (v: number) => number): RefTensor {
  const out = refZeros(x.shape);
  for (let i = 0; i < out.data.length; i++) out.data[i] = f(x.data[i]!);
  return out;
}

/** Gradients of a broadcasting binary op from its partial derivatives at each output element. */
function binaryBackward(
  a: RefTensor,
  b: RefTensor,
  g: RefTensor,
  da: (x: number, y: number) => number,
  db: (x: number, y: number) => number,
): [RefTensor, RefTensor] {
  const ga = refZeros(g.shape);
  const gb = refZeros(g.shape);
  for (let i = 0; i < g.data.length; i++) {
    const idx = unravel(i, g.shape);
    const x = a.data[broadcastIndex(idx, a.shape)]!;
    const y = b.data[broadcastIndex(idx, b.shape)]!;
    ga.data[i] = g.data[i]! * da(x, y);
    gb.data[i] = g.data[i]! * db(x, y);
  }
  return [refSumToShape(ga, a.shape), refSumToShape(gb, b.shape)];
}

/** a + b with broadcasting. */
export function refAdd(a: RefTensor, b: RefTensor): RefTensor {
  return zip(a, b, (x, y) => x + y);
}

/** Gradients of a + b: g summed to each operand's shape. */
export function refAddBackward(a: RefTensor, b: RefTensor, g: RefTensor): [RefTensor, RefTensor] {
  return binaryBackward(a, b, g, () => 1, () => 1);
}

/** a - b with broadcasting. */
export function refSub(a: RefTensor, b: RefTensor): RefTensor {
  return zip(a, b, (x, y) => x - y);
}

/** Gradients of a - b: (g, -g) summed to each operand's shape. */
export function refSubBackward(a: RefTensor, b: RefTensor, g: RefTensor): [RefTensor, RefTensor] {
  return binaryBackward(a, b, g, () => 1, () => -1);
}

/** a * b with broadcasting. */
export function refMul(a: RefTensor, b: RefTensor): RefTensor {
  return zip(a, b, (x, y) => x * y);
}

/** Gradients of a * b: (g b, g a). */
export function refMulBackward(a: RefTensor, b: RefTensor, g: RefTensor): [RefTensor, RefTensor] {
  return binaryBackward(a, b, g, (_x, y) => y, (x) => x);
}

/** a / b with broadcasting. */
export function refDiv(a: RefTensor, b: RefTensor): RefTensor {
  return zip(a, b, (x, y) => x / y);
}

/** Gradients of a / b: (g / b, -g a / b^2). */
export function refDivBackward(a: RefTensor, b: RefTensor, g: RefTensor): [RefTensor, RefTensor] {
  return binaryBackward(a, b, g, (_x, y) => 1 / y, (x, y) => -x / (y * y));
}

/** -x. */
export function refNeg(x: RefTensor): RefTensor {
  return map(x, (v) => -v);
}

/** Gradient of -x: -g. */
export function refNegBackward(_x: RefTensor, g: RefTensor): RefTensor {
  return map(g, (v) => -v);
}

function unaryBackward(x: RefTensor, g: RefTensor, d: (v: number) => number): RefTensor {
  const out = refZeros(x.shape);
  for (let i = 0; i < out.data.length; i++) out.data[i] = g.data[i]! * d(x.data[i]!);
  return out;
}

/** e^x. */
export function refExp(x: RefTensor): RefTensor {
  return map(x, Math.exp);
}

/** Gradient of e^x: g e^x. */
export function refExpBackward(x: RefTensor, g: RefTensor): RefTensor {
  return unaryBackward(x, g, Math.exp);
}

/** ln x. */
export function refLog(x: RefTensor): RefTensor {
  return map(x, Math.log);
}

/** Gradient of ln x: g / x. */
export function refLogBackward(x: RefTensor, g: RefTensor): RefTensor {
  return unaryBackward(x, g, (v) => 1 / v);
}

/** sqrt x. */
export function refSqrt(x: RefTensor): RefTensor {
  return map(x, Math.sqrt);
}

/** Gradient of sqrt x: g / (2 sqrt x). */
export function refSqrtBackward(x: RefTensor, g: RefTensor): RefTensor {
  return unaryBackward(x, g, (v) => 1 / (2 * Math.sqrt(v)));
}

/** 1 / sqrt x. */
export function refRsqrt(x: RefTensor): RefTensor {
  return map(x, (v) => 1 / Math.sqrt(v));
}

/** Gradient of x^(-1/2): -g x^(-3/2) / 2. */
export function refRsqrtBackward(x: RefTensor, g: RefTensor): RefTensor {
  return unaryBackward(x, g, (v) => -0.5 * v ** -1.5);
}

/** x^p for a number exponent (NaN for a negative base with a non-integer p). */
export function refPow(x: RefTensor, p: number): RefTensor {
  return map(x, (v) => v ** p);
}

/** Gradient of x^p: g p x^(p-1) (0 when p = 0). */
export function refPowBackward(x: RefTensor, p: number, g: RefTensor): RefTensor {
  return unaryBackward(x, g, (v) => (p === 0 ? 0 : p * v ** (p - 1)));
}

function sigmoid(v: number): number {
  return 1 / (1 + Math.exp(-v));
}

/** SiLU: x sigmoid(x). */
export function refSilu(x: RefTensor): RefTensor {
  return map(x, (v) => v * sigmoid(v));
}

/** Gradient of x sigmoid(x): g (s + x s (1 - s)). */
export function refSiluBackward(x: RefTensor, g: RefTensor): RefTensor {
  return unaryBackward(x, g, (v) => {
    const s = sigmoid(v);
    return s + v * s * (1 - s);
  });
}

/** max(x, 0). */
export function refRelu(x: RefTensor): RefTensor {
  return map(x, (v) => (v < 0 ? 0 : v));
}

/** Gradient of relu: g where x > 0 or NaN (as torch), else 0. */
export function refReluBackward(x: RefTensor, g: RefTensor): RefTensor {
  return unaryBackward(x, g, (v) => (v <= 0 ? 0 : 1));
}

/** cond != 0 ? a : b, all three broadcast together. */
export function refWhere(cond: RefTensor, a: RefTensor, b: RefTensor): RefTensor {
  const shape = refBroadcastShape(cond.shape, refBroadcastShape(a.shape, b.shape));
  const out = refZeros(shape);
  for (let i = 0; i < out.data.length; i++) {
    const idx = unravel(i, shape);
    const c = cond.data[broadcastIndex(idx, cond.shape)]!;
    out.data[i] = c !== 0 ? a.data[broadcastIndex(idx, a.shape)]! : b.data[broadcastIndex(idx, b.shape)]!;
  }
  return out;
}

/** Gradients of where to a and b: g where cond holds (resp. does not), summed to each shape. */
export function refWhereBackward(cond: RefTensor, a: RefTensor, b: RefTensor, g: RefTensor): [RefTensor, RefTensor] {
  const ga = refZeros(g.shape);
  const gb = refZeros(g.shape);
  for (let i = 0; i < g.data.length; i++) {
    const c = cond.data[broadcastIndex(unravel(i, g.shape), cond.shape)]!;
    if (c !== 0) ga.data[i] = g.data[i]!;
    else gb.data[i] = g.data[i]!;
  }
  return [refSumToShape(ga, a.shape), refSumToShape(gb, b.shape)];
}

/**
 * The IEEE half-precision value nearest to v, ties to the even significand; beyond the largest
 * half (65504) values from 65520 up become infinite.
 */
export function refRoundToF16(v: number): number {
  if (Number.isNaN(v) || v === 0 || !Number.isFinite(v)) return v;
  const a = Math.abs(v);
  if (a >= 65520) return Math.sign(v) * Infinity;
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  // 10 fraction bits; below 2^-14 the spacing stays at the subnormal quantum 2^-24.
  const quantum = 2 ** (Math.max(e, -14) - 10);
  const r = a / quantum;
  const f = Math.floor(r);
  const rest = r - f;
  const n = rest > 0.5 ? f + 1 : rest < 0.5 ? f : f % 2 === 0 ? f : f + 1;
  return Math.sign(v) * n * quantum;
}

/** Values as stored in `dtype`: f32 and f16 round to nearest even, integers truncate toward zero. */
export function refCast(x: RefTensor, dtype: 'f32' | 'f16' | 'i32' | 'u32'): RefTensor {
  if (dtype === 'f16') return map(x, refRoundToF16);
  if (dtype === 'f32') return map(x, Math.fround);
  // i32 as torch on x86: NaN, infinities and values outside [-2^31, 2^31) give -2^31
  if (dtype === 'i32') return map(x, (v) => (Math.abs(v) < 2 ** 31 ? Math.trunc(v) : -(2 ** 31)));
  return map(x, Math.trunc);
}

/** Gradient of a float-to-float cast: g in the input's precision. */
export function refCastBackward(x: RefTensor, from: 'f32' | 'f16', g: RefTensor): RefTensor {
  if (refNumel(x.shape) !== g.data.length) throw new Error('reference: cast gradient has the wrong size');
  return refCast(g, from);
}
