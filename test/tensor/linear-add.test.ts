// linearAdd(input, x, w, bias, alpha) and addmm(input, mat1, mat2, { alpha }) as torch.addmm with beta = 1:
// input + alpha (x W^T + b) rounded once in the product's epilogue, against the CPU reference in f32 and f16
// at sizes off the tile grid, 1-D, batched, transposed and strided operands; bit for bit the separate ops in
// f32 with alpha = 1; gradients against the reference and by finite differences; its argument checks.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import fc from 'fast-check';
import {
  add, addmm, f16BitsToF32, f32ToF16Bits, hasF16, linear, linearAdd, matmul, mul, refAddmm, refBiasBackward, refMatmulBackward, refTensor, refTranspose, sum, tensor, transpose,
  type FloatDType, type Tensor,
} from '@huatuo/tensor';
import { assertClose, finiteDifferences, gpu, scoped, seededValues } from './helpers.js';

before(async () => {
  await gpu();
});

/** Values exactly representable in the dtype, so the reference sees what the kernel reads. */
function values(n: number, seed: number, dtype: FloatDType, scale = 1): Float32Array {
  const v = seededValues(n, seed, scale);
  return dtype === 'f16' ? f16BitsToF32(f32ToF16Bits(v)) : v;
}

/** [..., R, C] data as a tensor laid out as asked: rows, stored transposed (read through a transpose), or a column slice of wider rows. */
function laidOut(data: Float32Array, shape: number[], layout: 'rows' | 'transposed' | 'sliced', dtype: FloatDType): Tensor {
  const [R, C] = shape.slice(-2) as [number, number];
  const lead = shape.slice(0, -2);
  const batch = data.length / (R * C);
  if (layout === 'transposed') {
    const t = new Float32Array(data.length);
    for (let b = 0; b < batch; b++) for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) t[b * R * C + c * R + r] = data[b * R * C + r * C + c]!;
    return transpose(tensor(t, [...lead, C, R], { dtype }));
  }
  if (layout === 'sliced') {
    const wide = new Float32Array(batch * R * (C + 3));
    for (let i = 0; i < batch * R; i++) wide.set(data.subarray(i * C, (i + 1) * C), i * (C + 3) + 2);
    return tensor(wide, [...lead, R, C + 3], { dtype }).slice(-1, 2, 2 + C);
  }
  return tensor(data, shape, { dtype });
}

const dim = fc.constantFrom(1, 3, 4, 17, 33, 65);
const layout = fc.constantFrom<'rows' | 'transposed' | 'sliced'>('rows', 'transposed', 'sliced');
const caseArb = fc.record({
  lead: fc.constantFrom<number[]>([], [1], [5], [2, 3], [65]),
  I: dim,
  O: dim,
  biased: fc.boolean(),
  alpha: fc.constantFrom(1, 0.5, -2, 3.25),
  xLayout: layout,
  wLayout: layout,
  inputLayout: layout,
  seed: fc.nat(1 << 20),
});

for (const dtype of ['f32', 'f16'] as const) {
  test(`linearAdd in ${dtype} matches input + alpha (x W^T + b) of the reference, for any layout of x, w and input, at sizes off the tile grid`, async (t) => {
    if (dtype === 'f16' && !hasF16()) return t.skip('adapter lacks shader-f16');
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) =>
        scoped(async () => {
          const rows = c.lead.reduce((p, d) => p * d, 1);
          const [xv, wv, bv, iv] = [values(rows * c.I, c.seed, dtype), values(c.O * c.I, c.seed + 1, dtype), values(c.O, c.seed + 2, dtype, 4), values(rows * c.O, c.seed + 3, dtype, 4)];
          // 1-D x (no lead) is laid out as given; the others as [rows, cols] matrices of their lead dims.
          const x = c.lead.length === 0 ? tensor(xv, [c.I], { dtype }) : laidOut(xv, [...c.lead, c.I], c.xLayout, dtype);
          const w = laidOut(wv, [c.O, c.I], c.wLayout, dtype);
          const input = c.lead.length === 0 ? tensor(iv, [c.O], { dtype }) : laidOut(iv, [...c.lead, c.O], c.inputLayout, dtype);
          const out = linearAdd(input, x, w, c.biased ? tensor(bv, [c.O], { dtype }) : null, c.alpha);
          assert.equal(out.dtype, dtype);
          assert.deepEqual(out.shape, [...c.lead, c.O]);
          const want = refAddmm(refTensor(iv, [rows, c.O]), refTensor(xv, [rows, c.I]), refTranspose(refTensor(wv, [c.O, c.I])), c.alpha, c.biased ? refTensor(bv, [c.O]) : undefined);
          const scale = Math.abs(c.alpha);
          const tol = dtype === 'f16' ? { atol: scale * (2e-3 * Math.sqrt(c.I) + 1e-2) + 1e-2, rtol: 1e-2 } : { atol: scale * (1e-5 * Math.sqrt(c.I) + 1e-5) + 1e-5, rtol: 1e-4 };
          const what = `${dtype} [${c.lead}, ${c.O}] ${c.inputLayout} + ${c.alpha} ([${c.lead}, ${c.I}] ${c.xLayout} x [${c.O}, ${c.I}]T ${c.wLayout}${c.biased ? ' + b' : ''}) seed ${c.seed}`;
          assertClose(await out.toArray(), want.data, tol, what);
        }),
      ),
      { numRuns: 16, seed: 20261206 },
    );
  });
}

test('linearAdd in f32 with alpha 1 is add(input, linear(x, w, b)) bit for bit', async () => {
  await scoped(async () => {
    for (const [rows, I, O, seed] of [[37, 44, 52, 1], [1, 136, 37, 2], [130, 33, 65, 3]] as const) {
      const x = tensor(seededValues(rows * I, seed), [rows, I]);
      const w = tensor(seededValues(O * I, seed + 1), [O, I]);
      const b = tensor(seededValues(O, seed + 2), [O]);
      const input = tensor(seededValues(rows * O, seed + 3, 8), [rows, O]);
      assert.deepEqual(await linearAdd(input, x, w, b).toArray(), await add(input, linear(x, w, b)).toArray(), `[${rows}, ${I}] x [${O}, ${I}]T`);
      assert.deepEqual(await linearAdd(input, x, w).toArray(), await add(input, linear(x, w)).toArray(), `[${rows}, ${I}] x [${O}, ${I}]T, no bias`);
    }
  });
});

test('linearAdd in f16 rounds input + alpha x W^T once, where linear, mul then add round three times', async (t) => {
  if (!hasF16()) return t.skip('adapter lacks shader-f16');
  await scoped(async () => {
    // Every sum is 2049 (x = [2048, 1], rows of w [1, 1]); 1025 + 0.5 * 2049 = 2049.5 rounds once to 2050; the
    // separate ops round 2049 to 2048 (ties to even), halve it to 1024, and round 1025 + 1024 to 2048.
    const [rows, O] = [33, 37];
    const x = tensor(Float32Array.from({ length: rows * 2 }, (_, i) => (i % 2 === 0 ? 2048 : 1)), [rows, 2], { dtype: 'f16' });
    const w = tensor(new Float32Array(O * 2).fill(1), [O, 2], { dtype: 'f16' });
    const input = tensor(new Float32Array(rows * O).fill(1025), [rows, O], { dtype: 'f16' });
    const once = await linearAdd(input, x, w, null, 0.5).toArray();
    assert.ok(once.every((v) => v === 2050), `linearAdd gives ${[...new Set(once)].join(', ')}; 1025 + 0.5 x W^T rounded once is 2050`);
    const thrice = await add(input, mul(linear(x, w), 0.5)).toArray();
    assert.ok(thrice.every((v) => v === 2048), 'linear, mul then add round to 2048');
  });
});

test('linearAdd gradients match the reference: dinput = dy, dx = alpha dy w, dw = alpha dy^T x, dbias = alpha dy summed over rows', async () => {
  await fc.assert(
    fc.asyncProperty(fc.constantFrom<number[]>([], [7], [2, 3]), dim, dim, fc.constantFrom(1, -1.5, 2), fc.nat(1 << 20), async (lead, I, O, alpha, seed) =>
      scoped(async () => {
        const rows = lead.reduce((p, d) => p * d, 1);
        const [xv, wv, bv, iv] = [seededValues(rows * I, seed), seededValues(O * I, seed + 1), seededValues(O, seed + 2), seededValues(rows * O, seed + 4)];
        const x = tensor(xv, [...lead, I]).requireGrad();
        const w = tensor(wv, [O, I]).requireGrad();
        const b = tensor(bv, [O]).requireGrad();
        const input = tensor(iv, [...lead, O]).requireGrad();
        const gv = seededValues(rows * O, seed + 3);
        sum(mul(linearAdd(input, x, w, b, alpha), tensor(gv, [...lead, O]))).backward();
        const g = refTensor(gv, [rows, O]);
        const scaled = refTensor(gv.map((v) => alpha * v), [rows, O]);
        const [gx, gwt] = refMatmulBackward(refTensor(xv, [rows, I]), refTranspose(refTensor(wv, [O, I])), scaled);
        const gtol = { atol: 4e-4, rtol: 1e-4 };
        const what = `[${lead}, ${I}] x [${O}, ${I}]T alpha ${alpha} seed ${seed}`;
        assertClose(await input.grad!.toArray(), g.data, gtol, `d/dinput ${what}`);
        assertClose(await x.grad!.toArray(), gx.data, gtol, `d/dx ${what}`);
        assertClose(await w.grad!.toArray(), refTranspose(gwt).data, gtol, `d/dw ${what}`);
        assertClose(await b.grad!.toArray(), refBiasBackward(scaled).data, gtol, `d/db ${what}`);
      }),
    ),
    { numRuns: 10, seed: 20261206 },
  );
});

test('linearAdd gradients match central finite differences, and frozen operands get none', async () => {
  await scoped(async () => {
    const [xv, wv, iv, mv] = [seededValues(6, 91), seededValues(8, 92), seededValues(12, 93), seededValues(12, 94)];
    const m = tensor(mv, [3, 4]);
    const w = tensor(wv, [4, 2]).requireGrad();
    const frozen = tensor(iv, [3, 4]);
    sum(mul(linearAdd(frozen, tensor(xv, [3, 2]), w, null, -1.5), m)).backward();
    const fw = await finiteDifferences((y) => sum(mul(linearAdd(frozen, tensor(xv, [3, 2]), y, null, -1.5), m)), wv, [4, 2]);
    assertClose(await w.grad!.toArray(), fw, { atol: 5e-3, rtol: 5e-3 }, 'linearAdd d/dw vs finite differences');
    assert.equal(frozen.grad, null);
    const input = tensor(iv, [3, 4]).requireGrad();
    sum(mul(linearAdd(input, tensor(xv, [3, 2]), tensor(wv, [4, 2]), null, 3), m)).backward();
    const fi = await finiteDifferences((y) => sum(mul(linearAdd(y, tensor(xv, [3, 2]), tensor(wv, [4, 2]), null, 3), m)), iv, [3, 4]);
    assertClose(await input.grad!.toArray(), fi, { atol: 5e-3, rtol: 5e-3 }, 'linearAdd d/dinput vs finite differences');
  });
});

test('addmm is torch.addmm with beta 1: input + alpha mat1 mat2, and an input that broadcasts is added after the product', async () => {
  await scoped(async () => {
    const [M, K, N] = [5, 7, 3];
    const [av, bv, iv] = [seededValues(M * K, 1), seededValues(K * N, 2), seededValues(M * N, 3)];
    const want = refAddmm(refTensor(iv, [M, N]), refTensor(av, [M, K]), refTensor(bv, [K, N]), 0.25);
    const got = addmm(tensor(iv, [M, N]), tensor(av, [M, K]), tensor(bv, [K, N]), { alpha: 0.25 });
    assertClose(await got.toArray(), want.data, { atol: 1e-5, rtol: 1e-5 }, 'addmm [5, 3] + 0.25 [5, 7] x [7, 3]');
    const row = tensor(iv.subarray(0, N), [N]);
    const broadcast = await addmm(row, tensor(av, [M, K]), tensor(bv, [K, N])).toArray();
    const product = await matmul(tensor(av, [M, K]), tensor(bv, [K, N])).toArray();
    assertClose(broadcast, product.map((v, i) => v + iv[i % N]!), { atol: 1e-5, rtol: 1e-5 }, 'addmm with a row input [3]');
  });
});

test('linearAdd refuses an input that is not the product\'s shape, a mismatched dtype or alpha, naming what it needs', () => {
  const x = tensor(seededValues(6, 1), [2, 3]);
  const w = tensor(seededValues(12, 2), [4, 3]);
  assert.throws(() => linearAdd(tensor(seededValues(4, 3), [4]), x, w), /linearAdd: input is \[4\], x is \[2, 3\], w is \[4, 3\]; input must be the product's shape \[2, 4\] \(use add for a broadcast\)/);
  assert.throws(() => linearAdd(tensor(seededValues(8, 3), [2, 4]), x, tensor(seededValues(8, 2), [4, 2])), /linearAdd: x is \[2, 3\], w is \[4, 2\]; w must be \[out, in\]/);
  assert.throws(() => linearAdd(tensor(seededValues(8, 3), [2, 4]), x, w, null, Number.NaN), /linearAdd: alpha is NaN; expected a finite number/);
  assert.throws(() => linearAdd(tensor(seededValues(8, 3), [2, 4], { dtype: 'f16' }), x, w), /linearAdd/);
  assert.throws(() => linearAdd(5 as never, x, w), /linearAdd: input is the number 5; expected a Tensor/);
});
