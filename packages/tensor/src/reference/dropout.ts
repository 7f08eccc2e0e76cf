// CPU reference of dropout with the counter-based keep mask of random.ts, forward and backward.
import { hash32 } from '../random.js';
import { refZeros, type RefTensor } from './ref-tensor.js';

/** Whether element i is kept: hash32(seed, i) / 2^32 >= p. */
export function refDropoutKeep(seed: number, i: number, p: number): boolean {
  return hash32(seed, i) / 4294967296 >= p;
}

/** y[i] = x[i] / (1 - p) where kept, else x[i] * 0 (NaN for NaN and infinities); row-major order. */
export function refDropout(x: RefTensor, p: number, seed: number): RefTensor {
  const y = refZeros(x.shape);
  for (let i = 0; i < x.data.length; i++) y.data[i] = refDropoutKeep(seed, i, p) ? x.data[i]! / (1 - p) : x.data[i]! * 0;
  return y;
}

/** Gradient of dropout: the same mask and scale applied to dy. */
export function refDropoutBackward(dy: RefTensor, p: number, seed: number): RefTensor {
  return refDropout(dy, p, seed);
}
