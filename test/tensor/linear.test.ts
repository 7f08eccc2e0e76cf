// linear(x, w, bias) as torch.nn.functional.linear: x W^T + b with the bias added to the f32 sums before the
// one rounding (addmm), against the CPU reference in f32 and f16 at sizes off the tile grid, 1-D and batched
// x; gradients of x, w and the bias against the reference and by finite differences; its argument checks.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import fc from 'fast-check';
import {
  add, f16BitsToF32, f32ToF16Bits, hasF16, linear, matmul, mul, refBiasBackward, refMatmul, refMatmulBackward, refTensor, refTranspose, sum, tensor, transpose,
  type FloatDType,
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

const dim = fc.constantFrom(1, 3, 4, 17, 33, 65);
const caseArb = fc.record({ lead: fc.constantFrom<number[]>([], [1], [5], [2, 3], [65]), I: dim, O: dim, biased: fc.boolean(), seed: fc.nat(1 << 20) });

for (const dtype of ['f32', 'f16'] as const) {
  test(`linear in ${dtype} matches x W^T + b of the reference, x 1-D or batched, at sizes off the tile grid`, async (t) => {
    if (dtype === 'f16' && !hasF16()) return t.skip('adapter lacks shader-f16');
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) =>
        scoped(async () => {
          const xShape = [...c.lead, c.I];
          const rows = c.lead.reduce((p, d) => p * d, 1);
          const [xv, wv, bv] = [values(rows * c.I, c.seed, dtype), values(c.O * c.I, c.seed + 1, dtype), values(c.O, c.seed + 2, dtype, 4)];
          const x = tensor(xv, xShape, { dtype });
          const w = tensor(wv, [c.O, c.I], { dtype });
          const out = linear(x, w, c.biased ? tensor(bv, [c.O], { dtype }) : null);
          assert.equal(out.dtype, dtype);
          assert.deepEqual(out.shape, [...c.lead, c.O]);
          const want = refMatmul(refTensor(xv, [rows, c.I]), refTranspose(refTensor(wv, [c.O, c.I])), c.biased ? refTensor(bv, [c.O]) : undefined);
          const tol = dtype === 'f16' ? { atol: 2e-3 * Math.sqrt(c.I) + 1e-2, rtol: 1e-2 } : { atol: 1e-5 * Math.sqrt(c.I) + 1e-5, rtol: 1e-4 };
          assertClose(await out.toArray(), want.data, tol, `${dtype} linear [${xShape}] x [${c.O}, ${c.I}]T${c.biased ? ' + b' : ''} seed ${c.seed}`);
        }),
      ),
      { numRuns: 12, seed: 20261205 },
    );
  });
}

test('linear in f16 rounds x W^T + b once, where matmul then add rounds twice', async (t) => {
  if (!hasF16()) return t.skip('adapter lacks shader-f16');
  await scoped(async () => {
    // Every sum is 2049 (x = [2048, 1], rows of w [1, 1]); with a bias of 1, one rounding gives 2050, two give
    // 2048 (2049 rounds to even 2048, and so does 2048 + 1).
    const [rows, O] = [33, 37];
    const x = tensor(Float32Array.from({ length: rows * 2 }, (_, i) => (i % 2 === 0 ? 2048 : 1)), [rows, 2], { dtype: 'f16' });
    const w = tensor(new Float32Array(O * 2).fill(1), [O, 2], { dtype: 'f16' });
    const b = tensor(new Float32Array(O).fill(1), [O], { dtype: 'f16' });
    const once = await linear(x, w, b).toArray();
    assert.ok(once.every((v) => v === 2050), `linear gives ${[...new Set(once)].join(', ')}; x W^T + b rounded once is 2050`);
    const twice = await add(matmul(x, transpose(w)), b).toArray();
    assert.ok(twice.every((v) => v === 2048), 'matmul then add rounds twice to 2048');
  });
});

test('linear gradients of x, w and the bias match the reference, the bias\'s being dy summed over every row', async () => {
  await fc.assert(
    fc.asyncProperty(fc.constantFrom<number[]>([], [7], [2, 3]), dim, dim, fc.nat(1 << 20), async (lead, I, O, seed) =>
      scoped(async () => {
        const rows = lead.reduce((p, d) => p * d, 1);
        const [xv, wv, bv] = [seededValues(rows * I, seed), seededValues(O * I, seed + 1), seededValues(O, seed + 2)];
        const x = tensor(xv, [...lead, I]).requireGrad();
        const w = tensor(wv, [O, I]).requireGrad();
        const b = tensor(bv, [O]).requireGrad();
        const gv = seededValues(rows * O, seed + 3);
        sum(mul(linear(x, w, b), tensor(gv, [...lead, O]))).backward();
        const g = refTensor(gv, [rows, O]);
        const [gx, gwt] = refMatmulBackward(refTensor(xv, [rows, I]), refTranspose(refTensor(wv, [O, I])), g);
        const gtol = { atol: 2e-4, rtol: 1e-4 };
        const what = `[${lead}, ${I}] x [${O}, ${I}]T seed ${seed}`;
        assertClose(await x.grad!.toArray(), gx.data, gtol, `d/dx ${what}`);
        assertClose(await w.grad!.toArray(), refTranspose(gwt).data, gtol, `d/dw ${what}`);
        assertClose(await b.grad!.toArray(), refBiasBackward(g).data, gtol, `d/db ${what}`);
      }),
    ),
    { numRuns: 10, seed: 20261205 },
  );
});

test('linear gradients match central finite differences, and a frozen bias gets none', async () => {
  await scoped(async () => {
    const [xv, wv, bv, mv] = [seededValues(6, 91), seededValues(8, 92), seededValues(4, 93), seededValues(12, 94)];
    const m = tensor(mv, [3, 4]);
    const b = tensor(bv, [4]).requireGrad();
    sum(mul(linear(tensor(xv, [3, 2]), tensor(wv, [4, 2]), b), m)).backward();
    const fb = await finiteDifferences((y) => sum(mul(linear(tensor(xv, [3, 2]), tensor(wv, [4, 2]), y), m)), bv, [4]);
    assertClose(await b.grad!.toArray(), fb, { atol: 5e-3, rtol: 5e-3 }, 'linear d/dbias vs finite differences');
    const frozen = tensor(bv, [4]);
    const w = tensor(wv, [4, 2]).requireGrad();
    sum(mul(linear(tensor(xv, [3, 2]), w, frozen), m)).backward();
    const fw = await finiteDifferences((y) => sum(mul(linear(tensor(xv, [3, 2]), y, frozen), m)), wv, [4, 2]);
    assertClose(await w.grad!.toArray(), fw, { atol: 5e-3, rtol: 5e-3 }, 'linear d/dw vs finite differences');
    assert.equal(frozen.grad, null);
  });
});

test('linear refuses a weight or bias that does not fit x, naming the shapes it needs', () => {
  const x = tensor(seededValues(6, 1), [2, 3]);
  assert.throws(() => linear(x, tensor(seededValues(8, 2), [4, 2])), /linear: x is \[2, 3\], w is \[4, 2\]; w must be \[out, in\] with in equal to x's last dim/);
  assert.throws(() => linear(x, tensor(seededValues(12, 2), [4, 3]), tensor(seededValues(3, 3), [3])), /linear: the bias is \[3\], w is \[4, 3\]; the bias must be \[4\], one value per output/);
  assert.throws(() => linear(x, tensor(seededValues(12, 2), [4, 3]), 5 as never), /linear: bias is the number 5; expected a Tensor/);
});
