// swiglu(gate, up) = silu(gate) * up against the CPU reference, the unfused silu * up, finite
// differences, f16, and bad input.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  DTypeError, DisposedError, ShapeError, hasF16, mul, refSwiglu, refSwigluBackward, refTensor, silu, startScope, sum,
  swiglu, tensor, transpose, type Tensor,
} from '@huatuo/tensor';
import { assertClose, finiteDifferences, gpu, seededValues } from './helpers.js';

const SIZES = [1, 3, 17, 65, 257];
const shapeArb = fc.tuple(fc.constantFrom(...SIZES), fc.constantFrom([], [1], [3], [2, 3]), fc.integer({ min: 1, max: 1e6 }));
const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

test('swiglu matches the CPU reference in f32 for any width and batch dims', async () => {
  await gpu();
  await fc.assert(
    fc.asyncProperty(shapeArb, async ([C, batch, seed]) => {
      const shape = [...batch, C];
      const gv = seededValues(numel(shape), seed, 6);
      const uv = seededValues(numel(shape), seed + 7, 3);
      const s = startScope();
      try {
        const y = await swiglu(tensor(gv, shape), tensor(uv, shape)).toArray();
        const expected = refSwiglu(refTensor(gv, shape), refTensor(uv, shape)).data;
        assertClose(y, expected, { atol: 1e-6, rtol: 1e-5 }, `swiglu [${shape}] seed ${seed}`);
      } finally {
        s.end();
      }
    }),
    { numRuns: 12 },
  );
});

test('swiglu gradients of gate and up match the reference analytic gradients for any width and batch dims', async () => {
  await gpu();
  await fc.assert(
    fc.asyncProperty(shapeArb, async ([C, batch, seed]) => {
      const shape = [...batch, C];
      const n = numel(shape);
      const gv = seededValues(n, seed, 6);
      const uv = seededValues(n, seed + 1, 3);
      const rv = seededValues(n, seed + 2);
      const s = startScope();
      try {
        const g = tensor(gv, shape).requireGrad();
        const u = tensor(uv, shape).requireGrad();
        sum(mul(swiglu(g, u), tensor(rv, shape))).backward();
        const { dGate, dUp } = refSwigluBackward(refTensor(gv, shape), refTensor(uv, shape), refTensor(rv, shape));
        assertClose(await g.grad!.toArray(), dGate.data, { atol: 1e-5, rtol: 1e-4 }, `d gate [${shape}] seed ${seed}`);
        assertClose(await u.grad!.toArray(), dUp.data, { atol: 1e-5, rtol: 1e-4 }, `d up [${shape}] seed ${seed}`);
      } finally {
        s.end();
      }
    }),
    { numRuns: 10 },
  );
});

test('swiglu gradients of gate and up match central finite differences of a random projection', async () => {
  await gpu();
  const s = startScope();
  try {
    const shape = [3, 5];
    const gv = seededValues(15, 31, 4);
    const uv = seededValues(15, 32, 2);
    const r = tensor(seededValues(15, 33), shape);
    const g = tensor(gv, shape).requireGrad();
    const u = tensor(uv, shape).requireGrad();
    sum(mul(swiglu(g, u), r)).backward();
    const ut = tensor(uv, shape);
    const gt = tensor(gv, shape);
    const fg = (x: Tensor) => sum(mul(swiglu(x, ut), r));
    const fu = (x: Tensor) => sum(mul(swiglu(gt, x), r));
    assertClose(await g.grad!.toArray(), await finiteDifferences(fg, gv, shape), { atol: 5e-3, rtol: 1e-2 }, 'd gate vs finite differences');
    assertClose(await u.grad!.toArray(), await finiteDifferences(fu, uv, shape), { atol: 5e-3, rtol: 1e-2 }, 'd up vs finite differences');
  } finally {
    s.end();
  }
});

test('swiglu of strided views equals silu(gate) * up and only the inputs that need it get a gradient', async () => {
  await gpu();
  const s = startScope();
  try {
    const gv = seededValues(6 * 17, 41, 5);
    const uv = seededValues(6 * 17, 42, 2);
    const gate = transpose(tensor(gv, [17, 6]), 0, 1); // [6, 17], strided
    const up = transpose(tensor(uv, [17, 6]), 0, 1).requireGrad();
    assertClose(await swiglu(gate, up).toArray(), await mul(silu(gate), up).toArray(), { atol: 1e-6, rtol: 1e-5 }, 'strided swiglu');
    sum(swiglu(gate, up)).backward();
    assert.equal(gate.grad, null);
    assertClose(await up.grad!.toArray(), await silu(gate).toArray(), { atol: 1e-6, rtol: 1e-5 }, 'd up with a ones upstream');
  } finally {
    s.end();
  }
});

test('swiglu in f16 matches the reference on the f16 inputs within f16 rounding, forward and backward', async (t) => {
  await gpu();
  if (!hasF16()) return t.skip('adapter lacks shader-f16');
  const s = startScope();
  try {
    for (const shape of [[3, 17], [2, 257]]) {
      const n = numel(shape);
      const g = tensor(seededValues(n, 5, 6), shape, { dtype: 'f16' }).requireGrad();
      const u = tensor(seededValues(n, 6, 3), shape, { dtype: 'f16' }).requireGrad();
      const r = tensor(seededValues(n, 7), shape, { dtype: 'f16' });
      const y = swiglu(g, u);
      assert.equal(y.dtype, 'f16');
      const [gh, uh, rh] = [await g.toArray(), await u.toArray(), await r.toArray()];
      assertClose(await y.toArray(), refSwiglu(refTensor(gh, shape), refTensor(uh, shape)).data, { atol: 2e-3, rtol: 2e-3 }, `swiglu f16 [${shape}]`);
      sum(mul(y, r)).backward();
      const { dGate, dUp } = refSwigluBackward(refTensor(gh, shape), refTensor(uh, shape), refTensor(rh, shape));
      assertClose(await g.grad!.toArray(), dGate.data, { atol: 4e-3, rtol: 4e-3 }, `d gate f16 [${shape}]`);
      assertClose(await u.grad!.toArray(), dUp.data, { atol: 4e-3, rtol: 4e-3 }, `d up f16 [${shape}]`);
    }
  } finally {
    s.end();
  }
});

test('swiglu rejects different shapes, integer and mixed dtypes and disposed inputs, naming the op and shapes', async () => {
  await gpu();
  const g = tensor(seededValues(6, 1), [2, 3]);
  assert.throws(
    () => swiglu(g, tensor(seededValues(3, 2), [3])),
    (e: Error) => e instanceof ShapeError && e.message.includes('swiglu') && e.message.includes('[2, 3]') && e.message.includes('[3]'),
  );
  assert.throws(() => swiglu(g, tensor(new Int32Array(6), [2, 3])), (e: Error) => e instanceof DTypeError && e.message.includes('swiglu'));
  if (hasF16()) {
    assert.throws(() => swiglu(g, tensor(seededValues(6, 3), [2, 3], { dtype: 'f16' })), (e: Error) => e instanceof DTypeError && e.message.includes('f16'));
  }
  const u = tensor(seededValues(6, 4), [2, 3]);
  u.dispose();
  assert.throws(() => swiglu(g, u), (e: Error) => e instanceof DisposedError && e.message.includes('swiglu'));
});
