// softmax and logSoftmax over the last axis against the CPU reference, by finite differences, and on bad input.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  DTypeError, DisposedError, ShapeError, hasF16, logSoftmax, mul, refLogSoftmax, refLogSoftmaxBackward, refSoftmax,
  refSoftmaxBackward, refTensor, softmax, startScope, sum, tensor, type Tensor,
} from '@huatuo/tensor';
import { assertClose, finiteDifferences, gpu, seededValues } from './helpers.js';

const SIZES = [1, 3, 17, 65, 257];
const shapeArb = fc.tuple(fc.constantFrom(...SIZES), fc.constantFrom([], [1], [3], [2, 3]), fc.integer({ min: 1, max: 1e6 }));
const OPS = [
  { name: 'softmax', op: softmax, ref: refSoftmax, refBack: refSoftmaxBackward },
  { name: 'logSoftmax', op: logSoftmax, ref: refLogSoftmax, refBack: refLogSoftmaxBackward },
] as const;

for (const { name, op, ref, refBack } of OPS) {
  test(`${name} matches the CPU reference in f32 for any row length and batch dims`, async () => {
    await gpu();
    await fc.assert(
      fc.asyncProperty(shapeArb, async ([C, batch, seed]) => {
        const shape = [...batch, C];
        const vals = seededValues(batch.reduce((a, b) => a * b, C), seed, 4);
        const s = startScope();
        try {
          const y = await op(tensor(vals, shape)).toArray();
          assertClose(y, ref(refTensor(vals, shape)).data, { atol: 1e-5, rtol: 1e-4 }, `${name} [${shape}] seed ${seed}`);
        } finally {
          s.end();
        }
      }),
      { numRuns: 12 },
    );
  });

  test(`${name} in f16 matches the CPU reference within f16 rounding`, async (t) => {
    await gpu();
    if (!hasF16()) return t.skip('adapter lacks shader-f16');
    const s = startScope();
    try {
      for (const shape of [[3, 17], [2, 257]]) {
        const vals = seededValues(shape[0]! * shape[1]!, 11, 3);
        const y = await op(tensor(vals, shape, { dtype: 'f16' })).toArray();
        const x16 = await tensor(vals, shape, { dtype: 'f16' }).toArray();
        assertClose(y, ref(refTensor(x16, shape)).data, { atol: 2e-3, rtol: 4e-3 }, `${name} f16 [${shape}]`);
      }
    } finally {
      s.end();
    }
  });

  test(`${name} of a row of all -inf is NaN (as torch) while other rows stay finite`, async () => {
    await gpu();
    const s = startScope();
    try {
      const y = await op(tensor([-Infinity, -Infinity, -Infinity, 0, -Infinity, 1], [2, 3])).toArray();
      assert.ok([0, 1, 2].every((i) => Number.isNaN(y[i])), `row of -inf: ${y.slice(0, 3)}`);
      const expected = ref(refTensor([0, -Infinity, 1], [1, 3])).data;
      assertClose(y.slice(3), expected, { atol: 1e-6, rtol: 1e-5 }, `${name} masked row`);
    } finally {
      s.end();
    }
  });

  test(`${name} of long rows: -inf entries before the finite ones in each thread's part count as 0, and a NaN or +inf makes the row NaN (as torch)`, async () => {
    await gpu();
    const s = startScope();
    try {
      const C = 257;
      const masked = Array.from(seededValues(C, 21, 3), (v, c) => (c < 130 || c % 7 === 0 ? -Infinity : v));
      const withNaN = Array.from(seededValues(C, 22, 3), (v, c) => (c === 200 ? NaN : v));
      const withInf = Array.from(seededValues(C, 23, 3), (v, c) => (c === 5 ? Infinity : v));
      const y = await op(tensor([...masked, ...withNaN, ...withInf], [3, C])).toArray();
      assertClose(y.slice(0, C), ref(refTensor(masked, [1, C])).data, { atol: 1e-6, rtol: 1e-5 }, `${name} masked row`);
      for (const r of [1, 2]) assert.ok(y.slice(r * C, (r + 1) * C).every((v) => Number.isNaN(v)), `${name} row ${r}: ${y.slice(r * C, r * C + 8)}`);
    } finally {
      s.end();
    }
  });

  test(`${name} backward matches central finite differences of a random projection`, async () => {
    await gpu();
    const s = startScope();
    try {
      const shape = [2, 5];
      const xv = seededValues(10, 3, 2);
      const r = tensor(seededValues(10, 4), shape);
      const f = (x: Tensor) => sum(mul(op(x), r));
      const x = tensor(xv, shape).requireGrad();
      f(x).backward();
      const fd = await finiteDifferences(f, xv, shape);
      assertClose(await x.grad!.toArray(), fd, { atol: 5e-3, rtol: 1e-2 }, `${name} grad vs finite differences`);
    } finally {
      s.end();
    }
  });

  test(`${name} backward matches the reference's analytic gradient on larger shapes`, async () => {
    await gpu();
    await fc.assert(
      fc.asyncProperty(shapeArb, async ([C, batch, seed]) => {
        const shape = [...batch, C];
        const n = batch.reduce((a, b) => a * b, C);
        const xv = seededValues(n, seed, 3);
        const rv = seededValues(n, seed + 1);
        const s = startScope();
        try {
          const x = tensor(xv, shape).requireGrad();
          sum(mul(op(x), tensor(rv, shape))).backward();
          const expected = refBack(refTensor(xv, shape), refTensor(rv, shape)).data;
          assertClose(await x.grad!.toArray(), expected, { atol: 1e-5, rtol: 1e-4 }, `${name} grad [${shape}] seed ${seed}`);
        } finally {
          s.end();
        }
      }),
      { numRuns: 10 },
    );
  });

  test(`${name} rejects integer tensors, scalars and disposed tensors naming the op`, async () => {
    await gpu();
    assert.throws(() => op(tensor(new Int32Array([1, 2]))), (e: Error) => e instanceof DTypeError && e.message.includes(name) && e.message.includes('[2]'));
    assert.throws(() => op(tensor(3)), (e: Error) => e instanceof ShapeError && e.message.includes(name));
    const x = tensor([1, 2, 3]);
    x.dispose();
    assert.throws(() => op(x), (e: Error) => e instanceof DisposedError && e.message.includes(name));
  });
}

test('softmax rows sum to one and logSoftmax equals the log of softmax', async () => {
  await gpu();
  const s = startScope();
  try {
    const vals = seededValues(3 * 65, 9, 5);
    const p = await softmax(tensor(vals, [3, 65])).toArray();
    const lp = await logSoftmax(tensor(vals, [3, 65])).toArray();
    for (let r = 0; r < 3; r++) {
      const total = Array.from(p.slice(r * 65, (r + 1) * 65)).reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(total - 1) < 1e-5, `row ${r} sums to ${total}`);
    }
    assertClose(lp, Array.from(p, Math.log), { atol: 1e-5, rtol: 1e-4 }, 'logSoftmax vs log(softmax)');
  } finally {
    s.end();
  }
});
