// logitBias and logitBiasRow against the float64 reference: each biased token's score in every row rises by
// its bias (summed in f32, stored in the logits' dtype); tokens without a bias are untouched.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { f16BitsToF32, f32ToF16Bits, hasF16, logitBias, logitBiasRow, refLogitBias, tensor } from '@huatuo/tensor';
import { gpu, scoped, seededValues } from './helpers.js';

const caseArb = fc
  .record({
    B: fc.integer({ min: 1, max: 3 }),
    V: fc.constantFrom(1, 31, 32, 33, 97, 1000),
    seed: fc.integer({ min: 1, max: 1e6 }),
  })
  .chain((c) => fc.record({ c: fc.constant(c), bias: fc.array(fc.tuple(fc.integer({ min: 0, max: c.V - 1 }), fc.double({ min: -100, max: 100, noNaN: true })), { maxLength: 12 }) }));

for (const dtype of ['f32', 'f16'] as const) {
  test(`logitBias (${dtype}) adds each token's bias to its score in every row, as the reference summed in f32 and stored in ${dtype}`, async (t) => {
    await gpu();
    if (dtype === 'f16' && !hasF16()) return t.skip('adapter lacks shader-f16');
    const round = dtype === 'f32' ? Math.fround : (v: number) => f16BitsToF32(f32ToF16Bits(Float32Array.of(v)))[0]!;
    await fc.assert(
      fc.asyncProperty(caseArb, async ({ c, bias: pairs }) =>
        scoped(async () => {
          const bias = new Map(pairs.map(([id, d]) => [id, Math.fround(d)]));
          const x = tensor(seededValues(c.B * c.V, c.seed, 4), [c.B, c.V], { dtype });
          const host = (await x.toArray()) as Float32Array;
          const y = await logitBias(x, logitBiasRow(bias, c.V)).toArray();
          const want = refLogitBias({ shape: [c.B, c.V], data: host }, bias);
          for (let i = 0; i < want.length; i++) {
            const where = `element ${i} of [${c.B}, ${c.V}], bias ${JSON.stringify([...bias])}, seed ${c.seed}: got ${y[i]}, want ${want[i]}, x ${host[i]}`;
            // The sum in f32 (the float64 sum of two f32 values rounded once), then stored in the dtype.
            assert.equal(y[i], bias.has(i % c.V) ? round(Math.fround(want[i]!)) : host[i], where);
          }
        }),
      ),
      { numRuns: 25 },
    );
  });
}

test('logitBiasRow refuses ids outside the vocabulary and non-finite biases; logitBias refuses a row of another length', async () => {
  await gpu();
  await scoped(async () => {
    assert.throws(() => logitBiasRow(new Map([[40, 1]]), 40), /token id 40 is outside \[0, 40\)/);
    assert.throws(() => logitBiasRow(new Map([[3, Number.POSITIVE_INFINITY]]), 40), /bias of token 3 should be a finite number/);
    assert.throws(() => logitBias(tensor(new Float32Array(80), [2, 40]), logitBiasRow(new Map(), 41)), /bias row should be f32 \[40\]/);
  });
});
