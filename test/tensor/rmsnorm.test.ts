// rmsNorm (LlamaRMSNorm semantics) against the CPU reference, by finite differences, and on bad input.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  DTypeError, DisposedError, ShapeError, ValueError, hasF16, mul, refRmsNorm, refRmsNormBackward, refTensor, rmsNorm,
  cast, startScope, sum, tensor, type Tensor,
} from '@huatuo/tensor';
import { assertClose, finiteDifferences, gpu, seededValues } from './helpers.js';

const SIZES = [1, 3, 17, 65, 257];
const shapeArb = fc.tuple(fc.constantFrom(...SIZES), fc.constantFrom([], [1], [3], [2, 3]), fc.integer({ min: 1, max: 1e6 }));
const EPS = 1e-6;

test('rmsNorm matches the CPU reference in f32 for any width and batch dims', async () => {
  await gpu();
  await fc.assert(
    fc.asyncProperty(shapeArb, async ([C, batch, seed]) => {
      const shape = [...batch, C];
      const xv = seededValues(batch.reduce((a, b) => a * b, C), seed, 3);
      const wv = seededValues(C, seed + 7, 2);
      const s = startScope();
      try {
        const y = await rmsNorm(tensor(xv, shape), tensor(wv, [C]), EPS).toArray();
        const expected = refRmsNorm(refTensor(xv, shape), refTensor(wv, [C]), EPS).data;
        assertClose(y, expected, { atol: 1e-5, rtol: 1e-4 }, `rmsNorm [${shape}] seed ${seed}`);
      } finally {
        s.end();
      }
    }),
    { numRuns: 12 },
  );
});

test('rmsNorm in f16 matches the reference within f16 rounding of the normalised value and the product', async (t) => {
  await gpu();
  if (!hasF16()) return t.skip('adapter lacks shader-f16');
  const s = startScope();
  try {
    for (const shape of [[3, 17], [2, 257]]) {
      const C = shape[1]!;
      const x = tensor(seededValues(shape[0]! * C, 5, 3), shape, { dtype: 'f16' });
      const w = tensor(seededValues(C, 6, 2), [C], { dtype: 'f16' });
      const y = await rmsNorm(x, w, EPS).toArray();
      const expected = refRmsNorm(refTensor(await x.toArray(), shape), refTensor(await w.toArray(), [C]), EPS).data;
      assertClose(y, expected, { atol: 4e-3, rtol: 2e-3 }, `rmsNorm f16 [${shape}]`);
    }
  } finally {
    s.end();
  }
});

test('rmsNorm gradients for x and weight match central finite differences of a random projection', async () => {
  await gpu();
  const s = startScope();
  try {
    const shape = [3, 5];
    const xv = seededValues(15, 21, 2);
    const wv = seededValues(5, 22, 2);
    const r = tensor(seededValues(15, 23), shape);
    const w = tensor(wv, [5]);
    const fx = (x: Tensor) => sum(mul(rmsNorm(x, w, EPS), r));
    const x = tensor(xv, shape).requireGrad();
    const wg = tensor(wv, [5]).requireGrad();
    sum(mul(rmsNorm(x, wg, EPS), r)).backward();
    assertClose(await x.grad!.toArray(), await finiteDifferences(fx, xv, shape), { atol: 5e-3, rtol: 1e-2 }, 'dx vs finite differences');
    const xt = tensor(xv, shape);
    const fw = (wt: Tensor) => sum(mul(rmsNorm(xt, wt, EPS), r));
    assertClose(await wg.grad!.toArray(), await finiteDifferences(fw, wv, [5]), { atol: 5e-3, rtol: 1e-2 }, 'dweight vs finite differences');
  } finally {
    s.end();
  }
});

test('rmsNorm gradients match the reference analytic gradients on larger shapes', async () => {
  await gpu();
  await fc.assert(
    fc.asyncProperty(shapeArb, async ([C, batch, seed]) => {
      const shape = [...batch, C];
      const n = batch.reduce((a, b) => a * b, C);
      const xv = seededValues(n, seed, 2);
      const wv = seededValues(C, seed + 1, 2);
      const rv = seededValues(n, seed + 2);
      const s = startScope();
      try {
        const x = tensor(xv, shape).requireGrad();
        const w = tensor(wv, [C]).requireGrad();
        sum(mul(rmsNorm(x, w, EPS), tensor(rv, shape))).backward();
        const { dx, dw } = refRmsNormBackward(refTensor(xv, shape), refTensor(wv, [C]), EPS, refTensor(rv, shape));
        assertClose(await x.grad!.toArray(), dx.data, { atol: 1e-4, rtol: 1e-3 }, `dx [${shape}] seed ${seed}`);
        assertClose(await w.grad!.toArray(), dw.data, { atol: 1e-4, rtol: 1e-3 }, `dweight [${shape}] seed ${seed}`);
      } finally {
        s.end();
      }
    }),
    { numRuns: 10 },
  );
});

test('rmsNorm rejects a weight of the wrong width, mixed dtypes, a bad eps and disposed inputs, naming the op and shapes', async () => {
  await gpu();
  const x = tensor(seededValues(6, 1), [2, 3]);
  assert.throws(
    () => rmsNorm(x, tensor([1, 1, 1, 1]), EPS),
    (e: Error) => e instanceof ShapeError && e.message.includes('rmsNorm') && e.message.includes('[2, 3]') && e.message.includes('[4]'),
  );
  assert.throws(() => rmsNorm(x, tensor(new Int32Array([1, 1, 1])), EPS), (e: Error) => e instanceof DTypeError && e.message.includes('rmsNorm'));
  if (hasF16()) {
    assert.throws(() => rmsNorm(x, tensor([1, 1, 1], [3], { dtype: 'f16' }), EPS), (e: Error) => e instanceof DTypeError && e.message.includes('f16'));
  }
  assert.throws(() => rmsNorm(x, tensor([1, 1, 1]), -1), (e: Error) => e instanceof ValueError && e.message.includes('eps'));
  const w = tensor([1, 1, 1]);
  w.dispose();
  assert.throws(() => rmsNorm(x, w, EPS), (e: Error) => e instanceof DisposedError && e.message.includes('rmsNorm'));
});

test('rmsNorm in f16 equals Hugging Face LlamaRMSNorm bit for bit: the normalised value is rounded to f16 before the weight product', async (t) => {
  await gpu();
  if (!hasF16()) return t.skip('no shader-f16');
  const f = (
    JSON.parse(readFileSync(new URL('../fixtures/tensor/torch-values.json', import.meta.url), 'utf8')) as {
      rmsNormF16: { eps: number; x: number[]; weight: number[]; y: number[] };
    }
  ).rmsNormF16;
  const s = startScope();
  try {
    const C = f.weight.length;
    const x = cast(tensor(f.x, [f.x.length / C, C]), 'f16');
    const w = cast(tensor(f.weight, [C]), 'f16');
    const y = await rmsNorm(x, w, f.eps).toArray();
    const bad = f.y.findIndex((v, i) => y[i] !== v);
    assert.equal(bad, -1, `element ${bad}: got ${y[bad]}, LlamaRMSNorm gives ${f.y[bad]}`);
  } finally {
    s.end();
  }
});
