// Inputs of the on-device checks (the matmul search, the fused and quantized decode products): seeded
// values the CPU reference reproduces exactly.
import { f16BitsToF32, f32ToF16Bits } from './creation.js';
import type { FloatDType } from './tensor.js';

/** Seeded values in [-1, 1) (a linear congruential sequence), exactly representable in f16 when `dtype` is f16. */
export function checkValues(n: number, seed: number, dtype: FloatDType = 'f32'): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 4294967296) * 2 - 1;
  }
  return dtype === 'f16' ? f16BitsToF32(f32ToF16Bits(out)) : out;
}
