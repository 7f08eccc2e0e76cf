// logSoftmaxTopK against the float64 reference: each row's target log-probability and its k most likely
// tokens (descending, ties lower id first), read back as k + 1 pairs a row.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { hasF16, logSoftmaxTopK, refLogSoftmaxTopK, tensor, unpackLogprobs } from '@huatuo/tensor';
import { gpu, scoped, seededValues } from './helpers.js';

const caseArb = fc
  .record({
    R: fc.integer({ min: 1, max: 3 }),
    V: fc.constantFrom(1, 2, 7, 63, 64, 65, 1000, 32000),
    scale: fc.constantFrom(1, 8, 40),
    // Rounded to steps of 1/4, values repeat and the order's ties decide.
    ties: fc.boolean(),
    seed: fc.integer({ min: 1, max: 1e6 }),
  })
  .chain((c) => fc.record({ c: fc.constant(c), k: fc.integer({ min: 0, max: Math.min(c.V, 20) }), targets: fc.array(fc.integer({ min: 0, max: c.V - 1 }), { minLength: c.R, maxLength: c.R }) }));

for (const dtype of ['f32', 'f16'] as const) {
  test(`logSoftmaxTopK (${dtype}) gives each row's target log-probability and its k most likely tokens in order, as the reference`, async (t) => {
    await gpu();
    if (dtype === 'f16' && !hasF16()) return t.skip('adapter lacks shader-f16');
    await fc.assert(
      fc.asyncProperty(caseArb, async ({ c, k, targets }) =>
        scoped(async () => {
          let values = seededValues(c.R * c.V, c.seed, c.scale);
          if (c.ties) values = values.map((v) => Math.round(v * 4) / 4);
          const x = tensor(values, [c.R, c.V], { dtype });
          // The reference reads the values the GPU reads (f16 rounded).
          const host = (await x.toArray()) as Float32Array;
          const packed = logSoftmaxTopK(x, tensor(Int32Array.from(targets), [c.R], { dtype: 'i32' }), k);
          assert.deepEqual(packed.shape, [c.R, k + 1, 2]);
          const got = unpackLogprobs((await packed.toArray()) as Uint32Array, k);
          const want = refLogSoftmaxTopK({ shape: [c.R, c.V], data: host }, targets, k);
          const close = (a: number, b: number) => Math.abs(a - b) <= 2e-5 + 2e-6 * Math.abs(b);
          for (let r = 0; r < c.R; r++) {
            const where = `row ${r} of [${c.R}, ${c.V}], k ${k}, scale ${c.scale}, ties ${c.ties}, seed ${c.seed}`;
            assert.equal(got[r]!.id, targets[r], where);
            assert.ok(close(got[r]!.logprob, want[r]!.logprob), `${where}: target ${targets[r]} logprob ${got[r]!.logprob}, want ${want[r]!.logprob}`);
            // The ids themselves: the reference's order on the same f32 values is exact.
            assert.deepEqual(got[r]!.top.map((e) => e.id), want[r]!.top.map((e) => e.id), where);
            got[r]!.top.forEach((e, j) => assert.ok(close(e.logprob, want[r]!.top[j]!.logprob), `${where}: top ${j} (id ${e.id}) ${e.logprob}, want ${want[r]!.top[j]!.logprob}`));
          }
        }),
      ),
      { numRuns: 30 },
    );
  });
}

test('logSoftmaxTopK refuses targets of the wrong dtype or length and k beyond the vocabulary', async () => {
  await gpu();
  await scoped(async () => {
    const x = tensor(new Float32Array(2 * 5), [2, 5]);
    assert.throws(() => logSoftmaxTopK(x, tensor(new Float32Array(2), [2]), 1), /targets should be i32/);
    assert.throws(() => logSoftmaxTopK(x, tensor(new Int32Array(3), [3], { dtype: 'i32' }), 1), /targets should be \[2\]/);
    assert.throws(() => logSoftmaxTopK(x, tensor(new Int32Array(2), [2], { dtype: 'i32' }), 6), /k should be an integer in \[0, 5\]/);
  });
});
