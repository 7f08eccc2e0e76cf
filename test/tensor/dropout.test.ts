// dropout: the GPU keep mask equals the host hash32 mask, scaling, gradients, seeds, and bad input.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  DTypeError, DisposedError, ValueError, dropout, hasF16, hash32, manualSeed, mul, ones, refDropout, refDropoutBackward, refDropoutKeep,
  refTensor, startScope, sum, tensor, transpose, type Tensor,
} from '@huatuo/tensor';
import { assertClose, finiteDifferences, gpu, seededValues } from './helpers.js';

const SIZES = [1, 3, 17, 65, 257];

test('dropout keeps exactly the elements whose host hash32(seed, i) / 2^32 is at least p', async () => {
  await gpu();
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...SIZES),
      fc.constantFrom([], [3], [2, 3]),
      fc.constantFrom(0.1, 0.5, 0.9, 1 / 3),
      fc.integer({ min: 0, max: 0xffffffff }),
      async (C, batch, p, seed) => {
        const shape = [...batch, C];
        const s = startScope();
        try {
          const y = await dropout(ones(shape), p, seed).toArray();
          for (let i = 0; i < y.length; i++) {
            const keep = hash32(seed, i) / 4294967296 >= p;
            assert.equal(y[i] !== 0, keep, `element ${i} of [${shape}], p ${p}, seed ${seed}: kept ${y[i] !== 0}, host ${keep}`);
          }
        } finally {
          s.end();
        }
      },
    ),
    { numRuns: 15 },
  );
});

test('dropout matches the CPU reference on random values, including strided inputs (row-major element order)', async () => {
  await gpu();
  const s = startScope();
  try {
    const xv = seededValues(17 * 65, 3, 2);
    const y = await dropout(tensor(xv, [17, 65]), 0.25, 99).toArray();
    assertClose(y, refDropout(refTensor(xv, [17, 65]), 0.25, 99).data, { atol: 1e-6, rtol: 1e-6 }, 'dropout f32');
    const xt = transpose(tensor(xv, [17, 65]));
    const yt = await dropout(xt, 0.25, 99).toArray();
    const rowMajor = await xt.toArray();
    assertClose(yt, refDropout(refTensor(rowMajor, [65, 17]), 0.25, 99).data, { atol: 1e-6, rtol: 1e-6 }, 'dropout of a transposed view');
  } finally {
    s.end();
  }
});

test('dropout in f16 matches the reference within f16 rounding', async (t) => {
  await gpu();
  if (!hasF16()) return t.skip('adapter lacks shader-f16');
  const s = startScope();
  try {
    const x = tensor(seededValues(3 * 257, 5, 2), [3, 257], { dtype: 'f16' });
    const y = await dropout(x, 0.3, 7).toArray();
    assertClose(y, refDropout(refTensor(await x.toArray(), [3, 257]), 0.3, 7).data, { atol: 1e-3, rtol: 1e-3 }, 'dropout f16');
  } finally {
    s.end();
  }
});

test('dropout with p = 0 copies the input, and keeps about 1 - p of a large tensor', async () => {
  await gpu();
  const s = startScope();
  try {
    const xv = seededValues(257, 4);
    assertClose(await dropout(tensor(xv), 0, 5).toArray(), xv, { atol: 0, rtol: 0 }, 'p = 0');
    const y = await dropout(ones([65, 257]), 0.3, 6).toArray();
    const kept = y.filter((v) => v !== 0).length / y.length;
    assert.ok(Math.abs(kept - 0.7) < 0.02, `kept fraction ${kept}`);
    assert.ok(y.every((v) => v === 0 || Math.abs(v - 1 / 0.7) < 1e-6));
  } finally {
    s.end();
  }
});

test('dropout backward applies the same mask and scale, by finite differences and by the reference', async () => {
  await gpu();
  const s = startScope();
  try {
    const shape = [3, 5];
    const xv = seededValues(15, 61, 2);
    const r = tensor(seededValues(15, 62), shape);
    const f = (x: Tensor) => sum(mul(dropout(x, 0.4, 1234), r));
    const x = tensor(xv, shape).requireGrad();
    f(x).backward();
    assertClose(await x.grad!.toArray(), await finiteDifferences(f, xv, shape), { atol: 5e-3, rtol: 1e-2 }, 'dropout grad vs finite differences');
    const rv = seededValues(17 * 257, 63);
    const x2 = tensor(seededValues(17 * 257, 64), [17, 257]).requireGrad();
    sum(mul(dropout(x2, 0.2, 77), tensor(rv, [17, 257]))).backward();
    assertClose(await x2.grad!.toArray(), refDropoutBackward(refTensor(rv, [17, 257]), 0.2, 77).data, { atol: 1e-6, rtol: 1e-6 }, 'dropout grad vs reference');
  } finally {
    s.end();
  }
});

test('dropout without a seed draws one from the default generator: reproducible after manualSeed, different on the next call', async () => {
  await gpu();
  const s = startScope();
  try {
    manualSeed(42);
    const a = await dropout(ones([257]), 0.5).toArray();
    const b = await dropout(ones([257]), 0.5).toArray();
    manualSeed(42);
    const a2 = await dropout(ones([257]), 0.5).toArray();
    assert.deepEqual(a2, a);
    assert.notDeepEqual(a, b);
  } finally {
    s.end();
  }
});

test('dropout rejects p outside [0, 1], integer tensors and disposed inputs, naming the op', async () => {
  await gpu();
  const x = tensor([1, 2, 3]);
  for (const p of [-0.1, 1.5, NaN]) {
    assert.throws(() => dropout(x, p, 1), (e: Error) => e instanceof ValueError && e.message.includes('dropout') && e.message.includes('[0, 1]'));
  }
  assert.throws(() => dropout(tensor(new Int32Array([1])), 0.5, 1), (e: Error) => e instanceof DTypeError && e.message.includes('dropout'));
  x.dispose();
  assert.throws(() => dropout(x, 0.5, 1), (e: Error) => e instanceof DisposedError && e.message.includes('dropout'));
});

test('dropout multiplies dropped elements by 0 as torch does: NaN and infinities give NaN there, and p = 1 zeroes the rest', async () => {
  await gpu();
  const s = startScope();
  try {
    const values = Array.from({ length: 64 }, (_, i) => (i % 3 === 0 ? NaN : i % 3 === 1 ? Infinity : 2));
    const x = tensor(values, [64]);
    const y = await dropout(x, 0.5, 11).toArray();
    let dropped = 0;
    for (let i = 0; i < 64; i++) {
      const kept = refDropoutKeep(11, i, 0.5);
      const expected = kept ? values[i]! * 2 : values[i]! * 0;
      if (!kept) dropped++;
      assert.ok(Object.is(y[i], expected), `element ${i} (${values[i]}, ${kept ? 'kept' : 'dropped'}): got ${y[i]}, expected ${expected}`);
    }
    assert.ok(dropped > 10 && dropped < 54, `${dropped} of 64 dropped`);
    const all = await dropout(x, 1, 11).toArray();
    assert.deepEqual(Array.from(all), values.map((v) => v * 0));
    const g = tensor([1, -2, 3], [3]).requireGrad();
    dropout(g, 1, 5).backward(tensor([1, 1, 1], [3]));
    assert.deepEqual(Array.from(await g.grad!.toArray()), [0, 0, 0]);
  } finally {
    s.end();
  }
});
