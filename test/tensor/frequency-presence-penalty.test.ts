// frequencyPresencePenalty, tokenCounts and countTokens against the float64 reference: each token's score
// falls by frequency * count, then by presence if it occurs; tokens a row has not generated are untouched.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { countTokens, f16BitsToF32, f32ToF16Bits, frequencyPresencePenalty, hasF16, refFrequencyPresencePenalty, tensor, tokenCounts } from '@huatuo/tensor';
import { gpu, scoped, seededValues } from './helpers.js';

const caseArb = fc.record({
  B: fc.integer({ min: 1, max: 3 }),
  V: fc.constantFrom(1, 31, 32, 33, 97, 1000),
  frequency: fc.constantFrom(0, 0.5, -1.25, 2, -2),
  presence: fc.constantFrom(0, 0.3, -0.7, 2, -2),
  seed: fc.integer({ min: 1, max: 1e6 }),
}).chain((c) => fc.record({ c: fc.constant(c), tokens: fc.array(fc.array(fc.integer({ min: 0, max: Math.min(c.V - 1, 9) }), { maxLength: 16 }), { minLength: c.B, maxLength: c.B }) }));

for (const dtype of ['f32', 'f16'] as const) {
  test(`frequencyPresencePenalty (${dtype}) lowers each generated token's score by frequency * count + presence, as the reference within ${dtype} rounding`, async (t) => {
    await gpu();
    if (dtype === 'f16' && !hasF16()) return t.skip('adapter lacks shader-f16');
    const round = dtype === 'f32' ? Math.fround : (v: number) => f16BitsToF32(f32ToF16Bits(Float32Array.of(v)))[0]!;
    // f32 rounds twice (after each penalty) and f16 once more at the store.
    const tol = dtype === 'f32' ? { abs: 1e-5, rel: 1e-6 } : { abs: 1e-3, rel: 2 ** -10 };
    await fc.assert(
      fc.asyncProperty(caseArb, async ({ c, tokens }) =>
        scoped(async () => {
          const x = tensor(seededValues(c.B * c.V, c.seed, 4), [c.B, c.V], { dtype });
          const host = (await x.toArray()) as Float32Array;
          const y = await frequencyPresencePenalty(x, tokenCounts(tokens, c.V), c.frequency, c.presence).toArray();
          const want = refFrequencyPresencePenalty({ shape: [c.B, c.V], data: host }, tokens, c.frequency, c.presence);
          const where = (i: number) => `element ${i} of [${c.B}, ${c.V}], frequency ${c.frequency}, presence ${c.presence}, tokens ${JSON.stringify(tokens)}, seed ${c.seed}: got ${y[i]}, want ${want[i]}, x ${host[i]}`;
          for (let i = 0; i < want.length; i++) {
            const generated = tokens[Math.floor(i / c.V)]!.includes(i % c.V);
            if (!generated) assert.equal(y[i], host[i], where(i));
            else assert.ok(Math.abs(y[i]! - want[i]!) <= tol.abs + tol.rel * Math.abs(want[i]!) && y[i] === round(y[i]!), where(i));
          }
        }),
      ),
      { numRuns: 25 },
    );
  });
}

test('countTokens adds each row\'s picked token to its counts, as tokenCounts of the ids appended', async () => {
  await gpu();
  await scoped(async () => {
    const V = 70;
    const rows = [[0, 5, 5], [69], []];
    const counts = tokenCounts(rows, V);
    countTokens(counts, tensor(new Int32Array([5, 0, 31]), [3]));
    assert.equal(counts.version, 1, 'an in-place write counts in the version');
    countTokens(counts, tensor(new Int32Array([5, 69, 31]), [3]));
    assert.equal(counts.version, 2);
    const want = await tokenCounts([[0, 5, 5, 5, 5], [69, 0, 69], [31, 31]], V).toArray();
    assert.deepEqual(Array.from(await counts.toArray()), Array.from(want));
  });
});

test('frequencyPresencePenalty and tokenCounts refuse counts of the wrong shape or dtype, non-finite penalties and ids outside the vocabulary', async () => {
  await gpu();
  await scoped(async () => {
    const x = tensor(new Float32Array(2 * 40), [2, 40]);
    assert.throws(() => frequencyPresencePenalty(x, tokenCounts([[1]], 40), 1, 0), /counts should be contiguous \[2, 40\]/);
    assert.throws(() => frequencyPresencePenalty(x, tensor(new Float32Array(80), [2, 40]), 1, 0), /counts should be i32/);
    assert.throws(() => frequencyPresencePenalty(x, tokenCounts([[1], [2]], 40), 0, Number.NaN), /presence should be a finite number/);
    assert.throws(() => countTokens(tokenCounts([[1]], 40), tensor(new Int32Array([1, 2]), [2])), /counts should be contiguous \[2, 40\]/);
    assert.throws(() => tokenCounts([[40]], 40), /outside \[0, 40\)/);
  });
});
