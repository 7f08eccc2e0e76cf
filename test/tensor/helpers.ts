// Shared test helpers: one WebGPU device per test process, a scope around a test body, closeness
// checks that name the first mismatch, seeded inputs (also as strided views), and central finite differences.
import assert from 'node:assert/strict';
import { initWebGPU, numel, refSlice, refTensor, refTranspose, slice, startScope, tensor, transpose, type DeviceInfo, type RefTensor, type Tensor } from '@huatuo/tensor';
import { setV2Creation } from '@huatuo/tensor/internal';

let info: Promise<DeviceInfo> | null = null;

/** Runs `body` with a scope that frees the tensors it creates. */
export async function scoped<R>(body: () => Promise<R>): Promise<R> {
  const scope = startScope();
  try {
    return await body();
  } finally {
    scope.end();
  }
}

/** Opens the device once per process. */
export function gpu(): Promise<DeviceInfo> {
  info ??= initWebGPU();
  return info;
}

export interface Tolerance {
  atol: number;
  rtol: number;
}

/** Asserts |actual - expected| <= atol + rtol * |expected| elementwise; names the first bad index. */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} vs expected ${expected.length}`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (Number.isNaN(e) && Number.isNaN(a)) continue;
    if (e === a) continue;
    const bound = tol.atol + tol.rtol * Math.abs(e);
    if (!(Math.abs(a - e) <= bound)) {
      assert.fail(`${what}: first mismatch at index ${i}: got ${a}, expected ${e} (|diff| ${Math.abs(a - e)} > ${bound})`);
    }
  }
}

/** Seeded values in [-1, 1) from a 32-bit LCG, for test inputs. */
export function seededValues(n: number, seed: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s / 4294967296) * 2 - 1) * scale;
  }
  return out;
}

/** How an input is laid out in memory: as written, transposed in its last two axes, or sliced within a wider last axis. */
export type Layout = 'contiguous' | 'transposed' | 'sliced';

/**
 * A GPU tensor of `shape` with seeded values mapped through `domain`, laid out as asked (read in place through
 * strides), and its reference.
 */
export function viewedInput(shape: readonly number[], seed: number, layout: Layout, domain: (v: number) => number = (v) => v): { t: Tensor; ref: RefTensor } {
  const make = (s: readonly number[]) => {
    const values = seededValues(numel(s), seed).map(domain);
    return { t: tensor(values, s), ref: refTensor(values, s) };
  };
  if (layout === 'transposed' && shape.length >= 2) {
    const base = make([...shape.slice(0, -2), shape[shape.length - 1]!, shape[shape.length - 2]!]);
    return { t: transpose(base.t), ref: refTranspose(base.ref) };
  }
  if (layout === 'sliced' && shape.length >= 1) {
    const last = shape[shape.length - 1]!;
    const base = make([...shape.slice(0, -1), last + 2]);
    return { t: slice(base.t, -1, 1, 1 + last), ref: refSlice(base.ref, -1, 1, 1 + last) };
  }
  return make(shape);
}

/**
 * Central finite differences of a scalar function of one f32 input, evaluated on the GPU:
 * d f / d x_i ~ (f(x + h e_i) - f(x - h e_i)) / 2h.
 */
export async function finiteDifferences(
  f: (x: Tensor) => Tensor,
  x: Float32Array,
  shape: readonly number[],
  h = 1e-2,
): Promise<Float64Array> {
  const grad = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const plus = Float32Array.from(x);
    const minus = Float32Array.from(x);
    plus[i] = plus[i]! + h;
    minus[i] = minus[i]! - h;
    const tp = tensor(plus, shape);
    const tm = tensor(minus, shape);
    const fp = f(tp);
    const fm = f(tm);
    grad[i] = ((await fp.item()) - (await fm.item())) / (2 * h);
    for (const t of [tp, tm, fp, fm]) t.dispose();
  }
  return grad;
}

/** Runs `body` with the v2 attention pipelines created in the background, as on adapters with 32-wide subgroups. */
export async function inBackground(body: () => Promise<void>): Promise<void> {
  setV2Creation('async');
  try {
    await body();
  } finally {
    setV2Creation(null);
  }
}
