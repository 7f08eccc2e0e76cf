// The dequantizing matmuls (int8 and NF4 weights; f32 and f16 activations) against the CPU reference on
// awkward sizes: the forward x W^T reading W transposed, and the gradient dX = dY W reading it as stored.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  QuantizedWeight,
  backward,
  dequantizeHost,
  f16BitsToF32,
  f32ToF16Bits,
  hasF16,
  mul,
  quantizeHost,
  quantizedMatmul,
  sum,
  tensor,
  type FloatDType,
  type QuantFormat,
} from '@huatuo/tensor';
import { gpu, seededValues } from '../tensor/helpers.js';

await gpu();
const dtypes: FloatDType[] = hasF16() ? ['f32', 'f16'] : ['f32'];
const formats: QuantFormat[] = ['int8', 'nf4'];
const exact = (v: Float32Array, dtype: FloatDType) => (dtype === 'f16' ? f16BitsToF32(f32ToF16Bits(v)) : v);

/** c [M, N] = a [M, K] times b, b(k, n) read from W [R, C] as W[n, k] (transposed) or W[k, n]; also sum |a b| per entry. */
function reference(a: Float32Array, w: Float32Array, M: number, R: number, C: number, transposed: boolean): { c: Float64Array; mag: Float64Array } {
  const [K, N] = transposed ? [C, R] : [R, C];
  const c = new Float64Array(M * N);
  const mag = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      let t = 0;
      for (let k = 0; k < K; k++) {
        const p = a[m * K + k]! * (transposed ? w[n * C + k]! : w[k * C + n]!);
        s += p;
        t += Math.abs(p);
      }
      c[m * N + n] = s;
      mag[m * N + n] = t;
    }
  }
  return { c, mag };
}

function check(got: ArrayLike<number>, ref: { c: Float64Array; mag: Float64Array }, dtype: FloatDType, what: string): void {
  // f32 accumulation error grows with sum |a b|; an f16 result is also rounded once to 11 bits.
  const rel = dtype === 'f16' ? 2 ** -11 : 0;
  for (let i = 0; i < ref.c.length; i++) {
    const bound = 2e-6 * ref.mag[i]! + rel * Math.abs(ref.c[i]!) + 1e-7;
    if (!(Math.abs(got[i]! - ref.c[i]!) <= bound)) assert.fail(`${what}: first mismatch at ${i}: got ${got[i]}, expected ${ref.c[i]} (bound ${bound})`);
  }
}

const sizes = fc.record({
  M: fc.constantFrom(1, 2, 7, 8, 9, 31, 33, 65),
  R: fc.constantFrom(4, 12, 36, 68, 100),
  C: fc.constantFrom(4, 20, 24, 64, 72, 172),
  seed: fc.integer({ min: 1, max: 1e9 }),
});

for (const format of formats) {
  for (const dtype of dtypes) {
    test(`${format} weight, ${dtype} activations: x W^T and dX = dY W match the reference on the dequantized weight`, async () => {
      await fc.assert(
        fc.asyncProperty(sizes, async ({ M, R, C, seed }) => {
          const what = `${format} ${dtype} M=${M} W=[${R}, ${C}] seed=${seed}`;
          const q = quantizeHost(seededValues(R * C, seed, 0.5), R, C, format);
          const wq = dequantizeHost(q);
          const w = QuantizedWeight.upload(q);
          const a = exact(seededValues(M * C, seed + 1), dtype);
          const dy = exact(seededValues(M * R, seed + 2), dtype);
          const x = tensor(a, [M, C], { dtype, requiresGrad: true });
          const y = quantizedMatmul(x, w);
          assert.deepEqual(y.shape, [M, R]);
          check(await y.toArray(), reference(a, wq, M, R, C, true), dtype, `${what} forward`);
          backward(sum(mul(y, tensor(dy, [M, R], { dtype }))));
          check(await x.grad!.toArray(), reference(dy, wq, M, R, C, false), dtype, `${what} dX`);
          for (const t of [x, y, x.grad!]) t.dispose();
          w.dispose();
        }),
        { numRuns: 6 },
      );
    });
  }
}

test('quantizedMatmul reads batched activations [B, T, in] and refuses a mismatched in dimension', async () => {
  const q = quantizeHost(seededValues(16 * 24, 3), 16, 24, 'nf4');
  const w = QuantizedWeight.upload(q);
  const a = seededValues(2 * 3 * 24, 4);
  const y = quantizedMatmul(tensor(a, [2, 3, 24]), w);
  assert.deepEqual(y.shape, [2, 3, 16]);
  check(await y.toArray(), reference(a, dequantizeHost(q), 6, 16, 24, true), 'f32', 'batched');
  assert.throws(() => quantizedMatmul(tensor(seededValues(10, 1), [1, 10]), w), /last dim must equal the weight's in features \(24\)/);
  assert.throws(() => QuantizedWeight.upload(quantizeHost(seededValues(6 * 8, 1), 6, 8, 'int8'), 'q_proj'), /q_proj is \[6, 8\]; int8 weights need rows and columns that are multiples of 4/);
});
