// Batched matmul against the CPU reference: sizes off the tile grid, broadcast batch dimensions,
// transposed and sliced operands read in place, f16, and gradients by finite differences and
// against the reference.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import fc from 'fast-check';
import {
  matmul, mul, sum, cast, tensor, transpose, slice, runtimeStats, hasF16, numel,
  refTensor, refTranspose, refSlice, refCast, refMatmul, refMatmulBackward,
  type RefTensor, type Tensor,
} from '@huatuo/tensor';
import { assertClose, finiteDifferences, gpu, seededValues, scoped } from './helpers.js';

before(async () => {
  await gpu();
});

type Layout = 'contiguous' | 'transposed' | 'sliced';

/** An operand of `shape` ([..., R, C]) in the given layout and its reference. */
function operand(shape: readonly number[], seed: number, layout: Layout): { t: Tensor; ref: RefTensor } {
  const make = (s: readonly number[]) => {
    const values = seededValues(numel(s), seed);
    return { t: tensor(values, s), ref: refTensor(values, s) };
  };
  const [r, c] = [shape[shape.length - 2]!, shape[shape.length - 1]!];
  const batch = shape.slice(0, -2);
  if (layout === 'transposed') {
    const base = make([...batch, c, r]);
    return { t: transpose(base.t), ref: refTranspose(base.ref) };
  }
  if (layout === 'sliced') {
    const base = make([...batch, r + 1, c + 3]);
    const rows = { t: slice(base.t, -2, 1), ref: refSlice(base.ref, -2, 1) };
    return { t: slice(rows.t, -1, 2, 2 + c), ref: refSlice(rows.ref, -1, 2, 2 + c) };
  }
  return make(shape);
}

const size = fc.constantFrom(1, 3, 16, 17, 65, 257);
const batchDim = fc.constantFrom(1, 2, 3);
/** M, K, N and batch shapes of a and b that broadcast (a dropped leading dim, size-1 dims). */
const caseArb = fc
  .record({
    M: size,
    K: size,
    N: size,
    batch: fc.array(batchDim, { maxLength: 3 }),
    dropA: fc.nat(3),
    dropB: fc.nat(3),
    onesA: fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
    onesB: fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
  })
  .filter(({ M, K, N, batch }) => M * K * N * numel(batch) <= 400_000 && M * K * numel(batch) <= 40_000 && K * N * numel(batch) <= 40_000)
  .map(({ M, K, N, batch, dropA, dropB, onesA, onesB }) => {
    const derive = (drop: number, ones: boolean[]) => batch.slice(Math.min(drop, batch.length)).map((d, i) => (ones[i] ? 1 : d));
    return { M, K, N, a: [...derive(dropA, onesA), M, K], b: [...derive(dropB, onesB), K, N] };
  });
const layoutArb = fc.constantFrom<Layout>('contiguous', 'transposed', 'sliced');

const tol = { atol: 1e-4, rtol: 1e-4 };

test('matmul matches the reference for sizes off the tile grid, broadcast batches and strided operands', async () => {
  await fc.assert(
    fc.asyncProperty(caseArb, layoutArb, layoutArb, fc.nat(1 << 20), async (c, la, lb, seed) =>
      scoped(async () => {
        const a = operand(c.a, seed, la);
        const b = operand(c.b, seed + 1, lb);
        const out = matmul(a.t, b.t);
        const expected = refMatmul(a.ref, b.ref);
        assert.deepEqual(out.shape, expected.shape);
        assertClose(await out.toArray(), expected.data, tol, `matmul [${c.a}] (${la}) x [${c.b}] (${lb})`);
      }),
    ),
    { numRuns: 25 },
  );
});

test('matmul with a transposed operand reads it in place: one dispatch and no copy', async () => {
  await scoped(async () => {
    const a = operand([3, 17, 65], 1, 'contiguous');
    const w = operand([33, 65], 2, 'contiguous');
    const wt = transpose(w.t);
    assert.equal(wt.isContiguous, false);
    const before = runtimeStats().dispatches;
    const out = matmul(a.t, wt);
    assert.equal(runtimeStats().dispatches - before, 1, 'matmul(a, transpose(w)) must be a single kernel dispatch');
    assertClose(await out.toArray(), refMatmul(a.ref, refTranspose(w.ref)).data, tol, 'matmul(a, transpose(w))');
    const before2 = runtimeStats().dispatches;
    const out2 = matmul(transpose(w.t), transpose(wt));
    assert.equal(runtimeStats().dispatches - before2, 1, 'matmul(transpose(w), transpose(transpose(w))) must be a single dispatch');
    assertClose(await out2.toArray(), refMatmul(refTranspose(w.ref), w.ref).data, tol, 'matmul(w^T, w)');
  });
});

test('f16 matmul matches the reference on f16-rounded inputs, including the last row and column', async (t) => {
  if (!hasF16()) return t.skip('adapter lacks shader-f16');
  await fc.assert(
    fc.asyncProperty(caseArb, layoutArb, fc.nat(1 << 20), async (c, lb, seed) =>
      scoped(async () => {
        const a = operand(c.a, seed, 'contiguous');
        const b = operand(c.b, seed + 1, lb);
        const out = matmul(cast(a.t, 'f16'), cast(b.t, 'f16'));
        assert.equal(out.dtype, 'f16');
        const expected = refCast(refMatmul(refCast(a.ref, 'f16'), refCast(b.ref, 'f16')), 'f16');
        const got = await out.toArray();
        const f16tol = { atol: 2e-3 * Math.sqrt(c.K), rtol: 2e-3 };
        assertClose(got, expected.data, f16tol, `f16 matmul [${c.a}] x [${c.b}] (${lb})`);
        // The last row and column sit in partial tiles whenever M or N is off the tile grid.
        const { M, N } = c;
        const last = (i: number) => [got[i]!, expected.data[i]!];
        const batches = numel(out.shape.slice(0, -2));
        for (let bi = 0; bi < batches; bi++) {
          const base = bi * M * N;
          const lastRow = Array.from({ length: N }, (_, n) => base + (M - 1) * N + n);
          const lastCol = Array.from({ length: M }, (_, m) => base + m * N + N - 1);
          assertClose(lastRow.map((i) => last(i)[0]!), lastRow.map((i) => last(i)[1]!), f16tol, `last row of batch ${bi}`);
          assertClose(lastCol.map((i) => last(i)[0]!), lastCol.map((i) => last(i)[1]!), f16tol, `last column of batch ${bi}`);
        }
      }),
    ),
    { numRuns: 12 },
  );
});

test('matmul gradients match central finite differences with a broadcast batch dimension', async () => {
  await scoped(async () => {
    const aShape = [2, 2, 3];
    const bShape = [3, 2];
    const av = seededValues(12, 81);
    const bv = seededValues(6, 82);
    const wv = seededValues(8, 83);
    const w = tensor(wv, [2, 2, 2]);
    const a = tensor(av, aShape).requireGrad();
    const b = tensor(bv, bShape).requireGrad();
    sum(mul(matmul(a, b), w)).backward();
    const fa = await finiteDifferences((x) => sum(mul(matmul(x, tensor(bv, bShape)), w)), av, aShape);
    const fb = await finiteDifferences((y) => sum(mul(matmul(tensor(av, aShape), y), w)), bv, bShape);
    assertClose(await a.grad!.toArray(), fa, { atol: 5e-3, rtol: 5e-3 }, 'matmul d/da vs finite differences');
    assertClose(await b.grad!.toArray(), fb, { atol: 5e-3, rtol: 5e-3 }, 'matmul d/db vs finite differences');
  });
});

test('matmul gradients match the reference on larger shapes with broadcast batches and transposed operands', async () => {
  await fc.assert(
    fc.asyncProperty(caseArb, fc.boolean(), fc.nat(1 << 20), async (c, transposeB, seed) =>
      scoped(async () => {
        const a = operand(c.a, seed, 'contiguous');
        // b as a leaf stored [..., N, K] and used transposed, as a linear layer's weight.
        const stored = operand(transposeB ? [...c.b.slice(0, -2), c.N, c.K] : c.b, seed + 1, 'contiguous');
        a.t.requireGrad();
        const leafB = stored.t.requireGrad();
        const b = transposeB ? { t: transpose(leafB), ref: refTranspose(stored.ref) } : stored;
        const out = matmul(a.t, b.t);
        const wv = seededValues(out.size, seed + 2);
        const rw = refTensor(wv, out.shape);
        sum(mul(out, tensor(wv, out.shape))).backward();
        const [ga, gb] = refMatmulBackward(a.ref, b.ref, rw);
        const gtol = { atol: 2e-4, rtol: 1e-4 };
        assertClose(await a.t.grad!.toArray(), ga.data, gtol, `d/da [${c.a}] x [${c.b}]`);
        const expectedB = transposeB ? refTranspose(gb) : gb;
        assertClose(await leafB.grad!.toArray(), expectedB.data, gtol, `d/db [${c.a}] x [${c.b}]${transposeB ? ' (transposed leaf)' : ''}`);
      }),
    ),
    { numRuns: 12 },
  );
});

test('matmul takes 1-D operands as torch.matmul does: a row or column dropped from the result, with gradients of the operands\' shapes', async () => {
  await scoped(async () => {
    const cases: { a: number[]; b: number[]; out: number[] }[] = [
      { a: [4], b: [4, 3], out: [3] },
      { a: [2, 4], b: [4], out: [2] },
      { a: [4], b: [4], out: [] },
      { a: [4], b: [2, 4, 3], out: [2, 3] },
      { a: [2, 3, 4], b: [4], out: [2, 3] },
    ];
    for (const [i, c] of cases.entries()) {
      const av = seededValues(numel(c.a), 10 + i);
      const bv = seededValues(numel(c.b), 20 + i);
      const a = tensor(av, c.a, { requiresGrad: true });
      const b = tensor(bv, c.b, { requiresGrad: true });
      const y = matmul(a, b);
      assert.deepEqual(y.shape, c.out, `[${c.a}] x [${c.b}]`);
      // The same product with the 1-D operands as [1, K] and [K, 1] in the reference; the data match as laid out.
      const a2 = refTensor(av, c.a.length === 1 ? [1, c.a[0]!] : c.a);
      const b2 = refTensor(bv, c.b.length === 1 ? [c.b[0]!, 1] : c.b);
      const expected = refMatmul(a2, b2);
      assertClose(await y.toArray(), expected.data, { atol: 1e-5, rtol: 1e-5 }, `[${c.a}] x [${c.b}]`);
      const gv = seededValues(Math.max(1, numel(c.out)), 30 + i);
      y.backward(tensor(gv, c.out));
      const [da, db] = refMatmulBackward(a2, b2, refTensor(gv, expected.shape));
      assert.deepEqual(a.grad!.shape, c.a);
      assert.deepEqual(b.grad!.shape, c.b);
      assertClose(await a.grad!.toArray(), da!.data, { atol: 1e-5, rtol: 1e-5 }, `d a, [${c.a}] x [${c.b}]`);
      assertClose(await b.grad!.toArray(), db!.data, { atol: 1e-5, rtol: 1e-5 }, `d b, [${c.a}] x [${c.b}]`);
    }
    assert.throws(() => matmul(tensor([2], []), tensor([1, 2], [2])), /matmul: both operands need at least 1 dimension, got \[\] and \[2\]; multiply by a scalar with mul/);
  });
});
