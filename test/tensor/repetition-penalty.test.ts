// repetitionPenalty, seenMask and markSeen against the float64 reference: seen tokens' scores shrink
// (positive divided, negative multiplied, duplicates once), the rest untouched, picks marked on the GPU.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { f16BitsToF32, f32ToF16Bits, hasF16, markSeen, refRepetitionPenalty, repetitionPenalty, seenMask, tensor } from '@huatuo/tensor';
import { gpu, scoped, seededValues } from './helpers.js';

const caseArb = fc.record({
  B: fc.integer({ min: 1, max: 3 }),
  V: fc.constantFrom(1, 31, 32, 33, 97, 1000),
  penalty: fc.constantFrom(1.3, 0.7, 2),
  seed: fc.integer({ min: 1, max: 1e6 }),
}).chain((c) => fc.record({ c: fc.constant(c), seen: fc.array(fc.array(fc.integer({ min: 0, max: c.V - 1 }), { maxLength: 12 }), { minLength: c.B, maxLength: c.B }) }));

for (const dtype of ['f32', 'f16'] as const) {
  test(`repetitionPenalty (${dtype}) shrinks exactly the seen tokens' scores, as the reference rounded to ${dtype}`, async (t) => {
    await gpu();
    if (dtype === 'f16' && !hasF16()) return t.skip('adapter lacks shader-f16');
    const round = dtype === 'f32' ? Math.fround : (v: number) => f16BitsToF32(f32ToF16Bits(Float32Array.of(v)))[0]!;
    await fc.assert(
      fc.asyncProperty(caseArb, async ({ c, seen }) =>
        scoped(async () => {
          const x = tensor(seededValues(c.B * c.V, c.seed, 4), [c.B, c.V], { dtype });
          const host = (await x.toArray()) as Float32Array;
          const y = await repetitionPenalty(x, seenMask(seen, c.V), c.penalty).toArray();
          // In f32 with the penalty rounded to f32, as torch multiplies an f32 tensor by a Python float.
          const want = refRepetitionPenalty({ shape: [c.B, c.V], data: host }, seen, Math.fround(c.penalty));
          for (let i = 0; i < want.length; i++) {
            assert.equal(y[i], round(Math.fround(want[i]!)), `element ${i} of [${c.B}, ${c.V}], penalty ${c.penalty}, seen ${JSON.stringify(seen)}: got ${y[i]}, x ${host[i]}`);
          }
        }),
      ),
      { numRuns: 25 },
    );
  });
}

test('markSeen sets each row\'s picked token in its mask, as seenMask of the ids appended', async () => {
  await gpu();
  await scoped(async () => {
    const V = 70;
    const rows = [[0, 5], [69], [31, 32, 33]];
    const seen = seenMask(rows, V);
    markSeen(seen, tensor(new Int32Array([64, 0, 31]), [3]), V);
    assert.equal(seen.version, 1, 'an in-place write counts in the version');
    markSeen(seen, tensor(new Int32Array([1, 35, 63]), [3]), V);
    assert.equal(seen.version, 2);
    const want = await seenMask([[0, 5, 64, 1], [69, 0, 35], [31, 32, 33, 63]], V).toArray();
    assert.deepEqual(Array.from(await seen.toArray()), Array.from(want));
  });
});

test('repetitionPenalty and seenMask refuse a mask of the wrong shape and ids outside the vocabulary', async () => {
  await gpu();
  await scoped(async () => {
    const x = tensor(new Float32Array(2 * 40), [2, 40]);
    assert.throws(() => repetitionPenalty(x, seenMask([[1]], 40), 1.3), /seen should be a contiguous \[2, 2\] mask/);
    assert.throws(() => repetitionPenalty(x, seenMask([[1], [2]], 40), 0), /penalty/);
    assert.throws(() => seenMask([[40]], 40), /outside \[0, 40\)/);
  });
});
