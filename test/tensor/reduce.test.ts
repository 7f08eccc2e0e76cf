// Reductions against the CPU reference: sum and mean over axis sets with keepdim, max and argmax
// over one axis (first index on ties), forward on fast-check shapes and views, backward by finite
// differences and against the reference.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import fc from 'fast-check';
import {
  sum, mean, max, argmax, mul, cast, tensor, transpose, hasF16, numel,
  refTensor, refTranspose, refCast, refSum, refSumBackward, refMean, refMeanBackward, refMax, refMaxBackward,
  ShapeError, type RefTensor, type Tensor,
} from '@huatuo/tensor';
import { assertClose, finiteDifferences, gpu, seededValues, scoped, viewedInput, type Layout } from './helpers.js';

before(async () => {
  await gpu();
});

/** A GPU tensor of `shape` in the given layout and its reference; `quantize` makes ties likely. */
const input = (shape: readonly number[], seed: number, layout: Layout, quantize = false) => viewedInput(shape, seed, layout, (v) => (quantize ? Math.round(v * 3) / 4 : v));

const dim = fc.constantFrom(1, 2, 3, 5, 17, 65, 257);
const shapeArb = fc.array(dim, { minLength: 1, maxLength: 4 }).filter((s) => numel(s) <= 6000);
const layoutArb = fc.constantFrom<Layout>('contiguous', 'transposed', 'sliced');
/** A shape and a subset of its axes (some given as negative numbers), or undefined for all. */
const axesCase = fc
  .record({ shape: shapeArb, pick: fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }), negative: fc.boolean(), all: fc.boolean() })
  .map(({ shape, pick, negative, all }) => {
    const axes = shape.map((_, i) => i).filter((i) => pick[i]).map((i) => (negative ? i - shape.length : i));
    return { shape, axes: all ? undefined : axes.length > 0 ? axes : [0] };
  });

const sumTol = { atol: 1e-4, rtol: 1e-5 };

test('sum and mean over any set of axes, with and without keepdim, match the reference on views', async () => {
  await fc.assert(
    fc.asyncProperty(axesCase, layoutArb, fc.boolean(), fc.nat(1 << 20), async ({ shape, axes }, layout, keepdim, seed) =>
      scoped(async () => {
        const x = input(shape, seed, layout);
        const s = sum(x.t, axes, keepdim);
        const expected = refSum(x.ref, axes, keepdim);
        assert.deepEqual(s.shape, expected.shape, `sum shape of [${shape}] over ${axes}`);
        assertClose(await s.toArray(), expected.data, sumTol, `sum [${shape}] (${layout}) axes ${axes} keepdim ${keepdim}`);
        const m = mean(x.t, axes, keepdim);
        assertClose(await m.toArray(), refMean(x.ref, axes, keepdim).data, sumTol, `mean [${shape}] (${layout}) axes ${axes}`);
      }),
    ),
    { numRuns: 25 },
  );
});

test('max and argmax over one axis match the reference, taking the first index on ties', async () => {
  await fc.assert(
    fc.asyncProperty(shapeArb, fc.nat(3), layoutArb, fc.boolean(), fc.nat(1 << 20), async (shape, axisPick, layout, keepdim, seed) =>
      scoped(async () => {
        const axis = axisPick % shape.length;
        const x = input(shape, seed, layout, true);
        const expected = refMax(x.ref, axis, keepdim);
        const values = max(x.t, axis, keepdim);
        assert.deepEqual(values.shape, expected.values.shape);
        assertClose(await values.toArray(), expected.values.data, { atol: 0, rtol: 0 }, `max [${shape}] axis ${axis}`);
        const idx = argmax(x.t, axis - shape.length, keepdim);
        assert.equal(idx.dtype, 'i32');
        assertClose(await idx.toArray(), expected.indices.data, { atol: 0, rtol: 0 }, `argmax [${shape}] axis ${axis}`);
      }),
    ),
    { numRuns: 25 },
  );
});

test('f16 sum and max match the reference on f16-rounded inputs', async (t) => {
  if (!hasF16()) return t.skip('adapter lacks shader-f16');
  await fc.assert(
    fc.asyncProperty(axesCase, fc.nat(1 << 20), async ({ shape, axes }, seed) =>
      scoped(async () => {
        const x = input(shape, seed, 'contiguous');
        const x16 = cast(x.t, 'f16');
        const r16 = refCast(x.ref, 'f16');
        const s = refSum(r16, axes);
        assertClose(await sum(x16, axes).toArray(), refCast(s, 'f16').data, { atol: 2e-3, rtol: 2e-3 }, `f16 sum [${shape}] axes ${axes}`);
        assertClose(await max(x16, 0).toArray(), refMax(r16, 0).values.data, { atol: 0, rtol: 0 }, `f16 max [${shape}]`);
      }),
    ),
    { numRuns: 10 },
  );
});

function projection(shape: readonly number[], seed: number): { w: Tensor; rw: RefTensor } {
  const values = seededValues(numel(shape), seed);
  return { w: tensor(values, shape), rw: refTensor(values, shape) };
}

test('sum, mean and max gradients match central finite differences', async () => {
  const shape = [2, 3, 4];
  const values = seededValues(24, 61);
  const cases: [string, (x: Tensor) => Tensor, number[]][] = [
    ['sum over [0, 2]', (x) => sum(x, [0, 2]), [3]],
    ['mean over axis 1 keepdim', (x) => mean(x, 1, true), [2, 1, 4]],
    ['max over axis 1', (x) => max(x, 1), [2, 4]],
    ['max over axis -1 keepdim', (x) => max(x, -1, true), [2, 3, 1]],
  ];
  for (const [what, f, outShape] of cases) {
    await scoped(async () => {
      const { w } = projection(outShape, 62);
      const x = tensor(values, shape).requireGrad();
      sum(mul(f(x), w)).backward();
      const fd = await finiteDifferences((v) => sum(mul(f(v), w)), values, shape, 1e-3);
      assertClose(await x.grad!.toArray(), fd, { atol: 5e-3, rtol: 5e-3 }, `${what} vs finite differences`);
    });
  }
});

test('sum, mean and max gradients match the reference on larger shapes with ties', async () => {
  await fc.assert(
    fc.asyncProperty(axesCase, fc.boolean(), fc.nat(1 << 20), async ({ shape, axes }, keepdim, seed) =>
      scoped(async () => {
        const x = input(shape, seed, 'contiguous', true);
        x.t.requireGrad();
        const s = sum(x.t, axes, keepdim);
        const ps = projection(s.shape, seed + 1);
        sum(mul(s, ps.w)).backward();
        assertClose(await x.t.grad!.toArray(), refSumBackward(x.ref, axes, keepdim, ps.rw).data, sumTol, `sum gradient [${shape}] axes ${axes}`);
        x.t.grad!.dispose();
        x.t.grad = null;
        const m = mean(x.t, axes, keepdim);
        sum(mul(m, ps.w)).backward();
        assertClose(await x.t.grad!.toArray(), refMeanBackward(x.ref, axes, keepdim, ps.rw).data, sumTol, `mean gradient [${shape}] axes ${axes}`);
        x.t.grad!.dispose();
        x.t.grad = null;
        const axis = shape.length - 1;
        const mx = max(x.t, axis, keepdim);
        const pm = projection(mx.shape, seed + 2);
        sum(mul(mx, pm.w)).backward();
        assertClose(await x.t.grad!.toArray(), refMaxBackward(x.ref, axis, keepdim, pm.rw).data, { atol: 0, rtol: 0 }, `max gradient [${shape}]`);
      }),
    ),
    { numRuns: 15 },
  );
});

test('reduction gradients are right when the incoming gradient is a non-contiguous view', async () => {
  await scoped(async () => {
    const values = seededValues(24, 71);
    const rx = refTensor(values, [2, 3, 4]);
    const { w, rw } = projection([3, 2], 72);
    // sum/mean over the last axis gives [2, 3]; its transpose [3, 2] meets w, so the gradient
    // arriving at the reduction is a transposed view.
    const expectedSum = refSumBackward(rx, 2, false, refTranspose(rw));
    const x = tensor(values, [2, 3, 4]).requireGrad();
    sum(mul(transpose(sum(x, 2)), w)).backward();
    assertClose(await x.grad!.toArray(), expectedSum.data, { atol: 1e-6, rtol: 1e-6 }, 'sum gradient through a transpose');
    x.grad!.dispose();
    x.grad = null;
    sum(mul(transpose(mean(x, 2)), w)).backward();
    assertClose(await x.grad!.toArray(), refMeanBackward(rx, 2, false, refTranspose(rw)).data, { atol: 1e-6, rtol: 1e-6 }, 'mean gradient through a transpose');
    x.grad!.dispose();
    x.grad = null;
    sum(mul(transpose(max(x, 2)), w)).backward();
    assertClose(await x.grad!.toArray(), refMaxBackward(rx, 2, false, refTranspose(rw)).data, { atol: 0, rtol: 0 }, 'max gradient through a transpose');
  });
});

test('max and argmax propagate NaN as torch.max(dim) does: the value is NaN, the index the first NaN, and the gradient goes there', async () => {
  await scoped(async () => {
    // Rows of 3 and of 200 elements (one thread's share, and the workgroup's tree), NaN first, in the middle, twice, or not at all.
    for (const n of [3, 200]) {
      const rows = [[], [0], [n - 1], [1, n - 2]].map((nans) => {
        const row = Array.from(seededValues(n, 7 + nans.length));
        for (const k of nans) row[k] = NaN;
        return row;
      });
      const values = rows.flat();
      const x = tensor(values, [rows.length, n], { requiresGrad: true });
      const r = refTensor(values, [rows.length, n]);
      const expected = refMax(r, 1);
      assert.deepEqual(Array.from(await argmax(x, 1).toArray()), Array.from(expected.indices.data), `argmax, rows of ${n}`);
      const m = max(x, 1);
      assertClose(await m.toArray(), expected.values.data, { atol: 0, rtol: 0 }, `max, rows of ${n}`);
      assert.ok(Number.isNaN((await m.toArray())[1]!), 'a row with a NaN has the maximum NaN');
      m.backward(tensor(rows.map((_, i) => i + 1), [rows.length]));
      const g = refTensor(rows.map((_, i) => i + 1), [rows.length]);
      assertClose(await x.grad!.toArray(), refMaxBackward(r, 1, false, g).data, { atol: 0, rtol: 0 }, `max backward, rows of ${n}`);
    }
  });
});

test('sum and mean over [] reduce every axis, and an axis named twice is refused, as torch', async () => {
  await scoped(async () => {
    const x = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    const s = sum(x, []);
    assert.deepEqual(s.shape, []);
    assert.deepEqual(Array.from(await s.toArray()), [21]);
    assert.deepEqual(Array.from(await mean(x, [], true).toArray()), [3.5]);
    assert.deepEqual(mean(x, [], true).shape, [1, 1]);
    assert.throws(() => sum(x, [0, 0]), (e: Error) => e instanceof ShapeError && /axis 0 appears more than once/.test(e.message));
    assert.throws(() => mean(x, [1, -1]), (e: Error) => e instanceof ShapeError && /axis 1 appears more than once/.test(e.message));
  });
});

test('max and argmax over an axis of size 0 are refused (torch has no maximum there); other axes of empty tensors reduce', async () => {
  await scoped(async () => {
    const x = tensor([], [0, 3]);
    assert.throws(() => max(x, 0), (e: Error) => e instanceof ShapeError && /max: axis 0 of \[0, 3\] has size 0/.test(e.message));
    assert.throws(() => argmax(x, -2), (e: Error) => e instanceof ShapeError && /argmax: axis 0/.test(e.message));
    const m = max(x, 1);
    assert.deepEqual(m.shape, [0]);
    assert.equal((await m.toArray()).length, 0);
  });
});
