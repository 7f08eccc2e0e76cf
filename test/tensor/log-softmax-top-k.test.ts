// logSoftmaxTopK against the float64 reference: each row's target log-probability and its k most likely
// tokens (descending, ties lower id first), read back as k + 1 pairs a row.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { hasF16, logSoftmaxTopK, refLogSoftmaxTopK, tensor, unpackLogprobs, type RowLogprobs } from '@huatuo/tensor';
import { gpu, scoped, seededValues } from './helpers.js';

// Equal (both infinite or both NaN included), or within 2e-5 + 2e-6 |want|.
const close = (got: number, want: number) => got === want || (Number.isNaN(got) && Number.isNaN(want)) || Math.abs(got - want) <= 2e-5 + 2e-6 * Math.abs(want);

/** Checks the GPU's rows against the reference's: the same ids in the same order, log-probabilities close. */
function assertRowsMatch(got: RowLogprobs[], want: RowLogprobs[], where: string): void {
  assert.equal(got.length, want.length, where);
  got.forEach((g, r) => {
    const w = want[r]!;
    assert.equal(g.id, w.id, `row ${r} of ${where}`);
    assert.ok(close(g.logprob, w.logprob), `row ${r} of ${where}: target ${w.id} logprob ${g.logprob}, want ${w.logprob}`);
    // The ids themselves: the reference's order on the same f32 values is exact.
    assert.deepEqual(g.top.map((e) => e.id), w.top.map((e) => e.id), `row ${r} of ${where}`);
    g.top.forEach((e, j) => assert.ok(close(e.logprob, w.top[j]!.logprob), `row ${r} of ${where}: top ${j} (id ${e.id}) ${e.logprob}, want ${w.top[j]!.logprob}`));
  });
}

/** logSoftmaxTopK of `values` [R, V] on the GPU beside the reference on the values the GPU reads (f16 rounded). */
async function runBoth(values: Float32Array, R: number, V: number, targets: number[], k: number, dtype: 'f32' | 'f16'): Promise<{ got: RowLogprobs[]; want: RowLogprobs[] }> {
  const x = tensor(values, [R, V], { dtype });
  const host = (await x.toArray()) as Float32Array;
  const packed = logSoftmaxTopK(x, tensor(Int32Array.from(targets), [R], { dtype: 'i32' }), k);
  assert.deepEqual(packed.shape, [R, k + 1, 2]);
  return { got: unpackLogprobs((await packed.toArray()) as Uint32Array, k), want: refLogSoftmaxTopK({ shape: [R, V], data: host }, targets, k) };
}

const caseArb = fc
  .record({
    R: fc.integer({ min: 1, max: 3 }),
    // Around the 64 threads of a row and their multiples, primes, and LLaMA's vocabulary.
    V: fc.constantFrom(1, 2, 7, 20, 21, 63, 64, 65, 127, 129, 1000, 1283, 4099, 32000),
    scale: fc.constantFrom(1, 8, 40),
    // Rounded to steps of 1/4 or to integers, values repeat, within and across threads, and the order's ties decide.
    ties: fc.constantFrom('none', 'quarter', 'integer'),
    // A share of -inf entries (masked tokens), and whether the first row is -inf throughout.
    masked: fc.constantFrom(0, 0, 0.3, 0.9),
    maskedRow: fc.boolean(),
    seed: fc.integer({ min: 1, max: 1e6 }),
  })
  .chain((c) =>
    fc.record({
      c: fc.constant(c),
      // 0, 1 and 20 (OpenAI's largest top_logprobs), past 20 (more than one pass), and the whole vocabulary.
      k: fc.oneof(fc.constantFrom(0, 1, 20, 21, c.V <= 1283 ? c.V : 45), fc.integer({ min: 0, max: 45 })).map((k) => Math.min(k, c.V)),
      targets: fc.array(fc.integer({ min: 0, max: c.V - 1 }), { minLength: c.R, maxLength: c.R }),
    }),
  );

for (const dtype of ['f32', 'f16'] as const) {
  test(`logSoftmaxTopK (${dtype}) gives each row's target log-probability and its k most likely tokens in order, as the reference`, async (t) => {
    await gpu();
    if (dtype === 'f16' && !hasF16()) return t.skip('adapter lacks shader-f16');
    await fc.assert(
      fc.asyncProperty(caseArb, async ({ c, k, targets }) =>
        scoped(async () => {
          let values = seededValues(c.R * c.V, c.seed, c.scale);
          if (c.ties === 'quarter') values = values.map((v) => Math.round(v * 4) / 4);
          if (c.ties === 'integer') values = values.map((v) => Math.round(v));
          const mask = seededValues(c.R * c.V, c.seed + 1);
          values = values.map((v, i) => ((mask[i]! + 1) / 2 < c.masked || (c.maskedRow && i < c.V) ? -Infinity : v));
          const { got, want } = await runBoth(values, c.R, c.V, targets, k, dtype);
          assertRowsMatch(got, want, `[${c.R}, ${c.V}], k ${k}, scale ${c.scale}, ties ${c.ties}, masked ${c.masked}${c.maskedRow ? ' and row 0' : ''}, seed ${c.seed}`);
        }),
      ),
      { numRuns: 40 },
    );
  });
}

test("logSoftmaxTopK over Qwen2's vocabulary (151936) with k 5 and 20 matches the reference", async () => {
  await gpu();
  const [R, V] = [2, 151936];
  await scoped(async () => {
    const values = seededValues(R * V, 7, 12).map((v) => Math.round(v * 8) / 8);
    for (const k of [5, 20]) {
      const { got, want } = await runBoth(values, R, V, [0, V - 1], k, 'f32');
      assertRowsMatch(got, want, `[${R}, ${V}], k ${k}`);
    }
  });
});

test('logSoftmaxTopK of a row of equal values picks the lowest ids first, across the threads of a row', async () => {
  await gpu();
  await scoped(async () => {
    const V = 1000;
    const { got } = await runBoth(new Float32Array(V).fill(0.5), 1, V, [3], 45, 'f32');
    assert.deepEqual(got[0]!.top.map((e) => e.id), Array.from({ length: 45 }, (_, i) => i));
    got[0]!.top.forEach((e) => assert.ok(close(e.logprob, -Math.log(V)), `${e.logprob}`));
  });
});

test('logSoftmaxTopK: a row holding NaN or +inf gives NaN log-probabilities, never picks NaN, and marks missing picks with id -1', async () => {
  await gpu();
  await scoped(async () => {
    const rows = [
      [1, NaN, 3, 2, NaN],
      [0, Infinity, 1, -Infinity, 2],
      [0, 1, 2, 3, 4],
    ];
    const x = tensor(rows.flat(), [3, 5]);
    const got = unpackLogprobs((await logSoftmaxTopK(x, tensor(Int32Array.from([0, 4, 2]), [3], { dtype: 'i32' }), 5).toArray()) as Uint32Array, 5);
    assert.deepEqual(got[0]!.top.map((e) => e.id), [2, 3, 0, -1, -1]);
    assert.deepEqual(got[1]!.top.map((e) => e.id), [1, 4, 2, 0, 3]);
    for (const r of [0, 1]) {
      assert.ok(Number.isNaN(got[r]!.logprob), `row ${r} target ${got[r]!.logprob}`);
      got[r]!.top.forEach((e) => assert.ok(Number.isNaN(e.logprob), `row ${r} id ${e.id}: ${e.logprob}`));
    }
    const want = refLogSoftmaxTopK({ shape: [1, 5], data: rows[2]! }, [2], 5)[0]!;
    assertRowsMatch([got[2]!], [want], 'the finite row beside them');
  });
});

test('logSoftmaxTopK gives a target outside the vocabulary NaN and keeps its id', async () => {
  await gpu();
  await scoped(async () => {
    const x = tensor(seededValues(2 * 7, 5), [2, 7]);
    const got = unpackLogprobs((await logSoftmaxTopK(x, tensor(Int32Array.from([-1, 7]), [2], { dtype: 'i32' }), 1).toArray()) as Uint32Array, 1);
    assert.deepEqual(got.map((r) => r.id), [-1, 7]);
    assert.ok(got.every((r) => Number.isNaN(r.logprob)), `${got.map((r) => r.logprob)}`);
  });
});

test('logSoftmaxTopK refuses targets of the wrong dtype or length and k beyond the vocabulary', async () => {
  await gpu();
  await scoped(async () => {
    const x = tensor(new Float32Array(2 * 5), [2, 5]);
    assert.throws(() => logSoftmaxTopK(x, tensor(new Float32Array(2), [2]), 1), /targets should be i32/);
    assert.throws(() => logSoftmaxTopK(x, tensor(new Int32Array(3), [3], { dtype: 'i32' }), 1), /targets should be \[2\]/);
    assert.throws(() => logSoftmaxTopK(x, tensor(new Int32Array(2), [2], { dtype: 'i32' }), 6), /k should be an integer in \[0, 5\]/);
    assert.throws(() => logSoftmaxTopK(x, tensor(new Int32Array(2), [2], { dtype: 'i32' }), -1), /k should be an integer in \[0, 5\]/);
  });
});
