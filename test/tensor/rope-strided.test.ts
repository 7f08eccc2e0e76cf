// rope reads a view of heads through its strides and lays its input's gradient out as the input: the values are
// bit for bit those of rope on a contiguous copy, in one dispatch each way, with no copy before or after.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { backward, contiguous, hasF16, profile, rope, slice, startScope, tensor, transpose, type Tensor } from '@huatuo/tensor';
import { gpu, seededValues } from './helpers.js';

const THETA = 10000;

/** Dispatches of a profiled stretch of work, all labels together. */
function dispatches(report: { kernels: { count: number }[] }): number {
  return report.kernels.reduce((n, k) => n + k.count, 0);
}

/** Elements that differ by bits, as "index: got vs want" for the first few. */
function bitDifferences(got: ArrayLike<number>, want: ArrayLike<number>): string[] {
  const out: string[] = [];
  for (let i = 0; i < want.length && out.length < 3; i++) if (!Object.is(got[i], want[i])) out.push(`${i}: ${got[i]} vs ${want[i]}`);
  return out;
}

// [B, T, H, D/2, extra heads sliced away (0: the whole tensor), per-batch positions]
const caseArb = fc.tuple(
  fc.constantFrom(1, 2),
  fc.constantFrom(1, 3, 17),
  fc.constantFrom(1, 3, 5),
  fc.constantFrom(1, 3, 17),
  fc.constantFrom(0, 2),
  fc.boolean(),
  fc.integer({ min: 1, max: 1e6 }),
);

test('rope of a transposed view of heads equals rope of its contiguous copy bit for bit, forward and backward, one dispatch each, f32 and f16', async () => {
  await gpu();
  const dtypes = hasF16() ? (['f32', 'f16'] as const) : (['f32'] as const);
  await fc.assert(
    fc.asyncProperty(caseArb, fc.constantFrom(...dtypes), async ([B, T, H, h, extra, perBatch, seed], dtype) => {
      const D = 2 * h;
      const full = [B, T, H + extra, D]; // the projection's output [B, T, H D] as heads
      const n = full.reduce((a, b) => a * b, 1);
      const pv = Int32Array.from(seededValues(perBatch ? B * T : T, seed + 1), (v) => Math.floor((v + 1) * 150));
      const what = `x [${full}] heads ${extra}..${H + extra} ${dtype}, positions ${perBatch ? `[${B}, ${T}]` : `[${T}]`}, seed ${seed}`;
      const s = startScope();
      try {
        const positions = tensor(pv, perBatch ? [B, T] : [T], { dtype: 'i32' });
        const g = tensor(seededValues(B * H * T * D, seed + 2), [B, H, T, D], { dtype });
        // The heads of a leaf, [B, H, T, D] read in place, and the same values copied first.
        const run = async (copied: boolean) => {
          const base = tensor(seededValues(n, seed, 2), full, { dtype }).requireGrad();
          const heads: Tensor = transpose(extra === 0 ? base : slice(base, 2, extra, H + extra), 1, 2);
          const x = copied ? contiguous(heads) : heads;
          const forward = await profile(() => rope(x, positions, THETA));
          const y = forward.result;
          const back = await profile(() => backward(y, g));
          return { y: await y.toArray(), dx: await base.grad!.toArray(), forward: dispatches(forward.report), back: dispatches(back.report) };
        };
        const strided = await run(false);
        const copied = await run(true);
        assert.deepEqual(bitDifferences(strided.y, copied.y), [], `${what}: rope's output`);
        assert.deepEqual(bitDifferences(strided.dx, copied.dx), [], `${what}: the input's gradient`);
        assert.equal(strided.forward, 1, `${what}: rope of the view in one dispatch (no copy of x)`);
        // The gradient of the whole leaf is adopted as it comes; of a slice it is scattered into zeros (two more).
        assert.equal(strided.back, extra === 0 ? 1 : 3, `${what}: the backward's dispatches (no copy of dx into the input's layout)`);
      } finally {
        s.end();
      }
    }),
    { numRuns: 24 },
  );
});

test('rope of a view whose head dim is not one apart copies it first and gives the contiguous copy\'s values', async () => {
  await gpu();
  const s = startScope();
  try {
    const [T, D] = [5, 6];
    const stored = tensor(seededValues(6 * T * D, 7, 2), [2, 3, D, T]); // read as [2, 3, T, D] through a transpose
    const x = transpose(stored, 2, 3);
    const positions = tensor(Int32Array.from([0, 3, 9, 27, 81]), [T], { dtype: 'i32' });
    const got = await rope(x, positions, THETA).toArray();
    const want = await rope(contiguous(x), positions, THETA).toArray();
    assert.deepEqual(bitDifferences(got, want), []);
  } finally {
    s.end();
  }
});
