// logSoftmaxAtMax against the float64 reference and the composition it replaces in greedy decoding
// (-log(sum(exp(x - max(x))))): each row's log-probability at its maximum, in one dispatch, f32 and f16.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { cast, exp, hasF16, log, logSoftmaxAtMax, max, neg, refLogSoftmaxAtMax, runtimeStats, sub, sum, tensor, type Tensor } from '@huatuo/tensor';
import { gpu, scoped, seededValues } from './helpers.js';

// Equal (both infinite or both NaN included), or within 2e-5 + 2e-6 |want|.
const close = (got: number, want: number) => got === want || (Number.isNaN(got) && Number.isNaN(want)) || Math.abs(got - want) <= 2e-5 + 2e-6 * Math.abs(want);

/** The composition of six (seven with f16's cast) dispatches that logSoftmaxAtMax replaces. */
const composed = (x: Tensor) => {
  const s = x.dtype === 'f32' ? x : cast(x, 'f32');
  return neg(log(sum(exp(sub(s, max(s, 1, true))), 1)));
};

const caseArb = fc.record({
  R: fc.integer({ min: 1, max: 9 }),
  // Around the 64 threads of a row and their multiples, primes, and LLaMA's vocabulary.
  V: fc.constantFrom(1, 2, 7, 63, 64, 65, 129, 1000, 4099, 32000),
  // Flat rows (log-probabilities near -log V) to peaked ones (near 0).
  scale: fc.constantFrom(0.01, 1, 8, 40),
  // A share of -inf entries (masked tokens).
  masked: fc.constantFrom(0, 0, 0.3, 0.9),
  seed: fc.integer({ min: 1, max: 1e6 }),
});

for (const dtype of ['f32', 'f16'] as const) {
  test(`logSoftmaxAtMax (${dtype}) gives each row's log-probability at its maximum in one dispatch, as the reference and the composition it replaces`, async (t) => {
    await gpu();
    if (dtype === 'f16' && !hasF16()) return t.skip('adapter lacks shader-f16');
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) =>
        scoped(async () => {
          const mask = seededValues(c.R * c.V, c.seed + 1);
          // Entry 0 of each row stays finite, so no row is -inf throughout.
          const values = seededValues(c.R * c.V, c.seed, c.scale).map((v, i) => (i % c.V !== 0 && (mask[i]! + 1) / 2 < c.masked ? -Infinity : v));
          const x = tensor(values, [c.R, c.V], { dtype });
          const host = (await x.toArray()) as Float32Array;
          const dispatches = runtimeStats().dispatches;
          const y = logSoftmaxAtMax(x);
          assert.equal(runtimeStats().dispatches - dispatches, 1, 'one dispatch');
          assert.deepEqual(y.shape, [c.R]);
          assert.equal(y.dtype, 'f32');
          const got = (await y.toArray()) as Float32Array;
          const want = refLogSoftmaxAtMax({ shape: [c.R, c.V], data: host });
          const old = (await composed(x).toArray()) as Float32Array;
          const where = `[${c.R}, ${c.V}], scale ${c.scale}, masked ${c.masked}, seed ${c.seed}`;
          got.forEach((g, r) => {
            assert.ok(close(g, want[r]!), `row ${r} of ${where}: ${g}, the reference ${want[r]}`);
            assert.ok(close(g, old[r]!), `row ${r} of ${where}: ${g}, the composition ${old[r]}`);
          });
        }),
      ),
      { numRuns: 40 },
    );
  });
}

test('logSoftmaxAtMax: a row of all -inf, or holding +inf or NaN, gives NaN; a row of one entry or of equal entries its exact log-probability', async () => {
  await gpu();
  await scoped(async () => {
    const V = 130;
    const rows = [
      new Array<number>(V).fill(-Infinity),
      Array.from({ length: V }, (_, i) => (i === 77 ? Infinity : i)),
      Array.from({ length: V }, (_, i) => (i === 5 ? NaN : i)),
      new Array<number>(V).fill(0.5),
      Array.from({ length: V }, (_, i) => (i === 100 ? 3 : -Infinity)),
    ];
    const got = [...((await logSoftmaxAtMax(tensor(rows.flat(), [rows.length, V])).toArray()) as Float32Array)];
    assert.deepEqual(got.slice(0, 3).map(Number.isNaN), [true, true, true], `${got}`);
    assert.equal(got[3], Math.fround(-Math.log(V)));
    assert.equal(got[4], 0);
    assert.deepEqual([...((await logSoftmaxAtMax(tensor([2.5], [1, 1])).toArray()) as Float32Array)], [0]);
    assert.deepEqual(logSoftmaxAtMax(tensor(new Float32Array(0), [0, 4])).shape, [0]);
  });
});

test('logSoftmaxAtMax refuses integer logits and shapes other than [R, V] with V >= 1', async () => {
  await gpu();
  await scoped(async () => {
    assert.throws(() => logSoftmaxAtMax(tensor(new Int32Array(4), [2, 2], { dtype: 'i32' })), /logSoftmaxAtMax/);
    assert.throws(() => logSoftmaxAtMax(tensor(new Float32Array(4), [4])), /should be \[R, V\] with V >= 1, got \[4\]/);
    assert.throws(() => logSoftmaxAtMax(tensor(new Float32Array(0), [2, 0])), /should be \[R, V\] with V >= 1, got \[2, 0\]/);
  });
});
