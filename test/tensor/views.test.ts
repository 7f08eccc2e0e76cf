// Layout ops against the CPU reference: reshape, permute, transpose, slice, expand, contiguous
// and cat, forward on fast-check shapes, views without copies, and gradients.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import fc from 'fast-check';
import {
  reshape, permute, transpose, slice, expand, contiguous, cat, mul, sum, tensor, runtimeStats, numel,
  refTensor, refReshape, refReshapeBackward, refPermute, refPermuteBackward, refTranspose, refSlice, refSliceBackward,
  refExpand, refExpandBackward, refCat, refCatBackward,
  ShapeError, type RefTensor, type Tensor,
} from '@huatuo/tensor';
import { assertClose, finiteDifferences, gpu, seededValues, scoped } from './helpers.js';

before(async () => {
  await gpu();
});

function leaf(shape: readonly number[], seed: number): { t: Tensor; ref: RefTensor } {
  const values = seededValues(numel(shape), seed);
  return { t: tensor(values, shape).requireGrad(), ref: refTensor(values, shape) };
}

function projection(shape: readonly number[], seed: number): { w: Tensor; rw: RefTensor } {
  const values = seededValues(numel(shape), seed);
  return { w: tensor(values, shape), rw: refTensor(values, shape) };
}

const exact = { atol: 0, rtol: 0 };
const dim = fc.constantFrom(1, 2, 3, 5, 17, 65);
const shapeArb = fc.array(dim, { minLength: 1, maxLength: 4 }).filter((s) => numel(s) <= 5000);

/** A shape and a permutation of its axes (from sorting random keys). */
const permuteArb = shapeArb.chain((shape) =>
  fc.array(fc.double({ noNaN: true }), { minLength: shape.length, maxLength: shape.length }).map((keys) => ({
    shape,
    order: shape.map((_, i) => i).sort((a, b) => keys[a]! - keys[b]!),
  })),
);

test('permute and transpose are views with no dispatch, and their gradients are the inverse permutation', async () => {
  await fc.assert(
    fc.asyncProperty(permuteArb, fc.nat(1 << 20), async ({ shape, order }, seed) =>
      scoped(async () => {
        const x = leaf(shape, seed);
        const before = runtimeStats().dispatches;
        const y = permute(x.t, order);
        assert.equal(runtimeStats().dispatches, before, 'permute must not dispatch');
        assertClose(await y.toArray(), refPermute(x.ref, order).data, exact, `permute [${shape}] by [${order}]`);
        const p = projection(y.shape, seed + 1);
        sum(mul(y, p.w)).backward();
        assertClose(await x.t.grad!.toArray(), refPermuteBackward(x.ref, order, p.rw).data, exact, `permute gradient [${shape}]`);
        if (shape.length >= 2) {
          const tr = transpose(x.t, 0, -1);
          assertClose(await tr.toArray(), refTranspose(x.ref, 0, -1).data, exact, `transpose [${shape}] 0, -1`);
        }
      }),
    ),
    { numRuns: 20 },
  );
});

test('reshape keeps row-major order for contiguous and transposed inputs, with -1 inferred', async () => {
  await fc.assert(
    fc.asyncProperty(shapeArb, fc.boolean(), fc.nat(1 << 20), async (shape, viaTranspose, seed) =>
      scoped(async () => {
        const x = leaf(shape, seed);
        const src = viaTranspose && shape.length >= 2 ? { t: transpose(x.t), ref: refTranspose(x.ref) } : x;
        const target = [src.t.shape[0]!, -1];
        const y = reshape(src.t, target);
        const expected = refReshape(src.ref, target);
        assert.deepEqual(y.shape, expected.shape);
        assertClose(await y.toArray(), expected.data, exact, `reshape [${src.t.shape}] to [${target}]`);
        const p = projection(y.shape, seed + 1);
        sum(mul(y, p.w)).backward();
        const g = refReshapeBackward(src.ref, p.rw);
        const expectedGrad = src === x ? g : refTranspose(g);
        assertClose(await x.t.grad!.toArray(), expectedGrad.data, exact, `reshape gradient [${shape}]`);
      }),
    ),
    { numRuns: 20 },
  );
});

test('slice selects start..end with negative indices as views, and its gradient is zero-padded', async () => {
  const sliceArb = shapeArb.chain((shape) =>
    fc.record({
      shape: fc.constant(shape),
      axis: fc.integer({ min: -shape.length, max: shape.length - 1 }),
      start: fc.integer({ min: -70, max: 70 }),
      end: fc.option(fc.integer({ min: -70, max: 70 }), { nil: undefined }),
    }),
  );
  await fc.assert(
    fc.asyncProperty(sliceArb, fc.nat(1 << 20), async ({ shape, axis, start, end }, seed) =>
      scoped(async () => {
        const x = leaf(shape, seed);
        const before = runtimeStats().dispatches;
        const y = slice(x.t, axis, start, end);
        assert.equal(runtimeStats().dispatches, before, 'slice must not dispatch');
        const expected = refSlice(x.ref, axis, start, end);
        assert.deepEqual(y.shape, expected.shape);
        assertClose(await y.toArray(), expected.data, exact, `slice [${shape}] axis ${axis} ${start}:${end}`);
        if (y.size === 0) return;
        const p = projection(y.shape, seed + 1);
        sum(mul(y, p.w)).backward();
        assertClose(await x.t.grad!.toArray(), refSliceBackward(x.ref, axis, start, end, p.rw).data, exact, `slice gradient [${shape}]`);
      }),
    ),
    { numRuns: 25 },
  );
});

test('expand repeats size-1 and new leading dimensions, and its gradient sums over them', async () => {
  const expandArb = shapeArb.chain((shape) =>
    fc.record({
      target: fc.constant(shape),
      ones: fc.array(fc.boolean(), { minLength: shape.length, maxLength: shape.length }),
      lead: fc.nat(Math.max(0, shape.length - 1)),
    }),
  );
  await fc.assert(
    fc.asyncProperty(expandArb, fc.nat(1 << 20), async ({ target, ones, lead }, seed) =>
      scoped(async () => {
        const inShape = target.slice(lead).map((d, i) => (ones[i + lead] ? 1 : d));
        const x = leaf(inShape, seed);
        const y = expand(x.t, target);
        assertClose(await y.toArray(), refExpand(x.ref, target).data, exact, `expand [${inShape}] to [${target}]`);
        const p = projection(target, seed + 1);
        sum(mul(y, p.w)).backward();
        assertClose(await x.t.grad!.toArray(), refExpandBackward(x.ref, p.rw).data, { atol: 1e-5, rtol: 1e-5 }, `expand gradient [${inShape}]`);
      }),
    ),
    { numRuns: 20 },
  );
});

test('cat joins views along any axis, and each input gets its part of the gradient', async () => {
  const catArb = fc.record({
    shape: fc.array(dim, { minLength: 1, maxLength: 3 }).filter((s) => numel(s) <= 2000),
    axisPick: fc.nat(2),
    sizes: fc.array(fc.constantFrom(1, 2, 3, 17), { minLength: 1, maxLength: 4 }),
  });
  await fc.assert(
    fc.asyncProperty(catArb, fc.nat(1 << 20), async ({ shape, axisPick, sizes }, seed) =>
      scoped(async () => {
        const axis = axisPick % shape.length;
        const parts = sizes.map((n, k) => leaf(shape.map((d, i) => (i === axis ? n : d)), seed + k));
        // Feed one input as a transposed view to check strided reads.
        const inputs = parts.map((p, k) =>
          k === 0 && shape.length >= 2 ? transpose(contiguous(transpose(p.t))) : p.t,
        );
        const y = cat(inputs, axis);
        const expected = refCat(parts.map((p) => p.ref), axis);
        assert.deepEqual(y.shape, expected.shape);
        assertClose(await y.toArray(), expected.data, exact, `cat of ${sizes} along ${axis} of [${shape}]`);
        const p = projection(y.shape, seed + 99);
        sum(mul(y, p.w)).backward();
        const grads = refCatBackward(parts.map((q) => q.ref), axis, p.rw);
        for (let k = 0; k < parts.length; k++) {
          assertClose(await parts[k]!.t.grad!.toArray(), grads[k]!.data, exact, `cat gradient of input ${k}`);
        }
      }),
    ),
    { numRuns: 20 },
  );
});

test('view gradients match central finite differences through a chain of layout ops', async () => {
  await scoped(async () => {
    const values = seededValues(24, 91);
    const { w } = projection([3, 4], 92);
    const f = (x: Tensor) => {
      const y = slice(permute(reshape(x, [2, 3, 4]), [1, 0, 2]), 1, 1); // [3, 1, 4]
      const z = expand(y, [3, 2, 4]);
      return sum(mul(sum(mul(z, z), 1), w));
    };
    const x = tensor(values, [6, 4]).requireGrad();
    f(x).backward();
    const fd = await finiteDifferences(f, values, [6, 4], 1e-3);
    assertClose(await x.grad!.toArray(), fd, { atol: 5e-3, rtol: 5e-3 }, 'chain of views vs finite differences');
  });
});

test('expand takes -1 as keep this size, as torch, and refuses negative sizes by name', async () => {
  await scoped(async () => {
    const x = tensor([1, 2, 3], [1, 3]).requireGrad();
    const y = expand(x, [2, 2, -1]);
    assert.deepEqual(y.shape, [2, 2, 3]);
    assert.deepEqual(Array.from(await y.toArray()), [1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3]);
    sum(y).backward();
    assert.deepEqual(Array.from(await x.grad!.toArray()), [4, 4, 4]);
    assert.deepEqual(expand(x, [0, 3]).shape, [0, 3]);
    const refused = (shape: number[], why: RegExp) =>
      assert.throws(() => expand(x, shape), (e: Error) => e instanceof ShapeError && why.test(e.message), `expand to [${shape}]`);
    refused([-1, 1, 3], /dimension 0 must be a size >= 0 \(-1 is allowed only on existing dimensions\)/);
    refused([-2, 3], /dimension 0 must be a size >= 0 or -1/);
    refused([2, 4], /dimension 1: 3 vs 4/);
  });
});
