// The grid-stride loop of the elementwise kernels: with the workgroup count capped at a few groups,
// each thread loops over many elements, and every op must give bit for bit what it gives uncapped
// (and what the CPU reference gives) at sizes with tails, on strided and broadcast views, and when empty.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import {
  add, neg, where, cast, dropout, swiglu, backward, SGD, full, arange, contiguous, transpose, slice, expand, cat, tensor, hasF16, numel,
  refTensor, refNeg, refAdd, refWhere, refTranspose, refSlice, refBroadcastTo,
  type RefTensor, type Tensor,
} from '@huatuo/tensor';
import { elementwiseGroups, setElementwiseGroupCap } from '@huatuo/tensor/internal';
import { assertClose, gpu, seededValues, scoped } from './helpers.js';

before(async () => {
  await gpu();
});

after(() => setElementwiseGroupCap(null));

const exact = { atol: 0, rtol: 0 };

/** Runs `f` uncapped and with at most `cap` workgroups; returns both results read back. */
async function cappedAndNot(cap: number, f: () => Tensor): Promise<[ArrayLike<number>, ArrayLike<number>]> {
  setElementwiseGroupCap(null);
  const free = await f().toArray();
  setElementwiseGroupCap(cap);
  try {
    return [await f().toArray(), free];
  } finally {
    setElementwiseGroupCap(null);
  }
}

/** Sizes around the 256-thread workgroup, so that n rarely divides the capped grid. */
const dim = fc.constantFrom(1, 2, 3, 7, 255, 256, 257);
const shapeArb = fc.array(dim, { minLength: 1, maxLength: 3 }).filter((s) => numel(s) <= 5000);
const capArb = fc.constantFrom(1, 2, 3, 5);

function input(shape: readonly number[], seed: number): { t: Tensor; ref: RefTensor } {
  const values = seededValues(numel(shape), seed);
  return { t: tensor(values, shape), ref: refTensor(values, shape) };
}

test('the launch is capped: fewer workgroups than elements / 256 under a cap, one per 256 elements below it', () => {
  setElementwiseGroupCap(3);
  try {
    assert.deepEqual(elementwiseGroups(10_000), [3, 1]);
    assert.deepEqual(elementwiseGroups(513), [3, 1]);
    assert.deepEqual(elementwiseGroups(300), [2, 1]);
  } finally {
    setElementwiseGroupCap(null);
  }
  assert.throws(() => setElementwiseGroupCap(0), /positive integer/);
});

test('unary, binary with broadcasting and where on strided views match uncapped and the reference under a cap', async () => {
  await fc.assert(
    fc.asyncProperty(shapeArb, capArb, fc.nat(1 << 20), async (shape, cap, seed) =>
      scoped(async () => {
        // x read through a transpose (first and last dimensions swapped), b broadcast along the first one.
        const base = input([shape[shape.length - 1]!, ...shape.slice(1, -1), shape[0]!].slice(0, shape.length), seed);
        const x = shape.length > 1 ? transpose(base.t, 0, -1) : base.t;
        const rx = shape.length > 1 ? refTranspose(base.ref, 0, shape.length - 1) : base.ref;
        const bShape = [1, ...shape.slice(1)];
        const b = input(bShape, seed + 1);
        const what = `[${shape}] cap ${cap}`;

        const [negCapped, negFree] = await cappedAndNot(cap, () => neg(x));
        assertClose(negCapped, negFree, exact, `neg ${what} vs uncapped`);
        assertClose(negCapped, refNeg(rx).data, exact, `neg ${what} vs reference`);

        const [addCapped, addFree] = await cappedAndNot(cap, () => add(x, b.t));
        assertClose(addCapped, addFree, exact, `add ${what} vs uncapped`);
        assertClose(addCapped, refAdd(rx, b.ref).data, { atol: 1e-6, rtol: 1e-6 }, `add ${what} vs reference`);

        const mask = seededValues(numel(bShape), seed + 2).map((v) => (v > 0 ? 1 : 0));
        const cond = tensor(Uint32Array.from(mask), bShape);
        const [whereCapped, whereFree] = await cappedAndNot(cap, () => where(cond, x, b.t));
        assertClose(whereCapped, whereFree, exact, `where ${what} vs uncapped`);
        assertClose(whereCapped, refWhere(refTensor(mask, bShape), rx, refBroadcastTo(b.ref, shape)).data, exact, `where ${what} vs reference`);
      }),
    ),
    { numRuns: 12 },
  );
});

test('copies into and out of views, casts and fills match uncapped under a cap', async () => {
  await fc.assert(
    fc.asyncProperty(shapeArb, capArb, fc.nat(1 << 20), async (shape, cap, seed) =>
      scoped(async () => {
        const what = `[${shape}] cap ${cap}`;
        const last = shape[shape.length - 1]!;
        const wide = input([...shape.slice(0, -1), last + 3], seed);
        const x = slice(wide.t, -1, 1, 1 + last);
        const rx = refSlice(wide.ref, -1, 1, 1 + last);

        const [copyCapped, copyFree] = await cappedAndNot(cap, () => contiguous(shape.length > 1 ? transpose(x, 0, -1) : x));
        assertClose(copyCapped, copyFree, exact, `transpose copy ${what} vs uncapped`);
        assertClose(copyCapped, (shape.length > 1 ? refTranspose(rx, 0, shape.length - 1) : rx).data, exact, `transpose copy ${what} vs reference`);

        // cat writes each part into a strided view of its output.
        const [catCapped, catFree] = await cappedAndNot(cap, () => cat([x, neg(x)], -1));
        assertClose(catCapped, catFree, exact, `cat ${what} vs uncapped`);

        const [i32Capped, i32Free] = await cappedAndNot(cap, () => cast(x, 'i32'));
        assertClose(i32Capped, i32Free, exact, `cast i32 ${what} vs uncapped`);
        if (hasF16()) {
          const [f16Capped, f16Free] = await cappedAndNot(cap, () => cast(x, 'f16'));
          assertClose(f16Capped, f16Free, exact, `cast f16 ${what} vs uncapped`);
        }

        const n = numel(shape);
        const [fillCapped] = await cappedAndNot(cap, () => full(shape, 0.75));
        assertClose(fillCapped, new Float32Array(n).fill(0.75), exact, `full ${what}`);
        const [rangeCapped] = await cappedAndNot(cap, () => arange(n));
        assertClose(rangeCapped, Float32Array.from({ length: n }, (_, i) => i), exact, `arange ${n} cap ${cap}`);
      }),
    ),
    { numRuns: 12 },
  );
});

test('dropout, swiglu forward and backward and an SGD step match uncapped under a cap', async () => {
  await fc.assert(
    fc.asyncProperty(shapeArb, capArb, fc.nat(1 << 20), async (shape, cap, seed) =>
      scoped(async () => {
        const what = `[${shape}] cap ${cap}`;
        const x = input(shape, seed).t;
        const [dropCapped, dropFree] = await cappedAndNot(cap, () => dropout(x, 0.3, seed));
        assertClose(dropCapped, dropFree, exact, `dropout ${what} vs uncapped`);
        const up = input(shape, seed + 1).t;
        const [swiCapped, swiFree] = await cappedAndNot(cap, () => swiglu(x, up));
        assertClose(swiCapped, swiFree, exact, `swiglu ${what} vs uncapped`);
        // The gradient of gate, through swiglu_backward; then one SGD step on it (the sgd kernel).
        const step = () => {
          const gate = input(shape, seed).t.requireGrad();
          backward(swiglu(gate, up), input(shape, seed + 2).t);
          new SGD([gate], { lr: 0.1, momentum: 0.9 }).step();
          return gate.detach();
        };
        const [stepCapped, stepFree] = await cappedAndNot(cap, step);
        assertClose(stepCapped, stepFree, exact, `swiglu backward + SGD step ${what} vs uncapped`);
      }),
    ),
    { numRuns: 8 },
  );
});

test('empty tensors and broadcast views give empty or exact results under a cap', async () => {
  await scoped(async () => {
    setElementwiseGroupCap(1);
    try {
      assert.equal((await neg(tensor([], [0, 3])).toArray()).length, 0);
      assert.equal((await add(tensor([], [0, 3]), tensor([1, 2, 3], [3])).toArray()).length, 0);
      assert.equal((await full([4, 0], 2).toArray()).length, 0);
      assert.equal((await contiguous(transpose(tensor([], [0, 5]))).toArray()).length, 0);
      // A stride-0 source: 600 copies of one row, more than one round of the single workgroup.
      const row = tensor([1, -2, 3], [1, 3]);
      const wide = await contiguous(expand(row, [600, 3])).toArray();
      assertClose(wide, Float32Array.from({ length: 1800 }, (_, i) => [1, -2, 3][i % 3]!), exact, 'expand copy cap 1');
    } finally {
      setElementwiseGroupCap(null);
    }
  });
});
