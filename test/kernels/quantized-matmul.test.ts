// The dequantizing matmuls (int8 and NF4 weights; f32 and f16 activations) against the CPU reference on
// awkward sizes: the forward x W^T reading W transposed, and the gradient dX = dY W reading it as stored.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  QuantizedWeight,
  add,
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

for (const format of formats) {
  for (const dtype of dtypes) {
    test(`${format} weight, ${dtype} activations: x W^T + b, dX and dbias match the reference, the bias read at an offset`, async () => {
      await fc.assert(
        fc.asyncProperty(sizes, async ({ M, R, C, seed }) => {
          const what = `${format} ${dtype} M=${M} W=[${R}, ${C}] seed=${seed} with a bias`;
          const q = quantizeHost(seededValues(R * C, seed, 0.5), R, C, format);
          const wq = dequantizeHost(q);
          const w = QuantizedWeight.upload(q);
          const a = exact(seededValues(M * C, seed + 1), dtype);
          const dy = exact(seededValues(M * R, seed + 2), dtype);
          const bs = exact(seededValues(R + 3, seed + 3), dtype);
          const x = tensor(a, [M, C], { dtype, requiresGrad: true });
          const stored = tensor(bs, [R + 3], { dtype, requiresGrad: true });
          const b = stored.slice(0, 3, R + 3); // at element 3 of its buffer
          const y = quantizedMatmul(x, w, b);
          const ref = reference(a, wq, M, R, C, true);
          for (let i = 0; i < ref.c.length; i++) ref.c[i]! += bs[3 + (i % R)]!;
          check(await y.toArray(), ref, dtype, `${what} forward`);
          backward(sum(mul(y, tensor(dy, [M, R], { dtype }))));
          check(await x.grad!.toArray(), reference(dy, wq, M, R, C, false), dtype, `${what} dX`);
          const dbias = await stored.grad!.toArray();
          const want = { c: new Float64Array(R + 3), mag: new Float64Array(R + 3) };
          for (let m = 0; m < M; m++) {
            for (let n = 0; n < R; n++) {
              want.c[3 + n]! += dy[m * R + n]!;
              want.mag[3 + n]! += Math.abs(dy[m * R + n]!);
            }
          }
          check(dbias, want, dtype, `${what} dbias`);
          for (const t of [x, y, stored, x.grad!, stored.grad!]) t.dispose();
          w.dispose();
        }),
        { numRuns: 4 },
      );
    });
  }
}

/**
 * Sums of exactly 2049 in every output (x = [2048, 1, 0, ...], each weight row [r, r, 0, ...] dequantizing to
 * r = 1 in int8 and NF4) plus a bias of 1, in f16: rounded once, 2050; rounded twice (2049 to 2048, ties to
 * even, then 2048 + 1 to 2048), 2048.
 */
for (const format of formats) {
  test(`${format} weight, f16: the bias is added to the f32 sum before the one rounding, as linear does`, async () => {
    if (!hasF16()) return;
    for (const [M, K, N] of [[1, 8, 12], [3, 16, 8], [37, 64, 36]] as const) {
      const wd = new Float32Array(N * K);
      for (let n = 0; n < N; n++) [wd[n * K], wd[n * K + 1]] = [1, 1];
      const q = quantizeHost(wd, N, K, format);
      assert.ok(dequantizeHost(q).every((v, i) => v === wd[i]), `${format}: the weight dequantizes exactly`);
      const w = QuantizedWeight.upload(q);
      const xd = new Float32Array(M * K);
      for (let m = 0; m < M; m++) [xd[m * K], xd[m * K + 1]] = [2048, 1];
      const x = tensor(xd, [M, K], { dtype: 'f16' });
      const bias = tensor(new Float32Array(N).fill(1), [N], { dtype: 'f16' });
      const got = await quantizedMatmul(x, w, bias).toArray();
      assert.ok(got.every((v) => v === 2050), `${format} [${M}, ${K}] x [${N}, ${K}]T: ${[...new Set(got)].join(', ')} where the bias rounded with the sum is 2050 everywhere`);
      const twice = await add(quantizedMatmul(x, w), bias).toArray();
      assert.equal(twice[0], 2048, 'quantizedMatmul then add rounds twice');
      for (const t of [x, bias]) t.dispose();
      w.dispose();
    }
  });
}

test('quantizedMatmul refuses a bias of the wrong length or dtype', () => {
  const w = QuantizedWeight.upload(quantizeHost(seededValues(8 * 12, 3), 8, 12, 'int8'));
  const x = tensor(seededValues(2 * 12, 4), [2, 12]);
  assert.throws(() => quantizedMatmul(x, w, tensor(seededValues(6, 1), [6])), /the bias is \[6\], the weight is \[8, 12\]; the bias must be \[8\]/);
  w.dispose();
});

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
