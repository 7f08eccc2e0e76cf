// accumulateLogprobs against its f32 reference: over steps of random active rows, each active row's sum moves to
// `before` and adds its log-probability, an inactive row's adds 0 whatever its log-probability (NaN, -inf), bit
// for bit; one dispatch a step, replayed by a recorded step with `active` as its input; bad arguments refused.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { accumulateLogprobs, recordStep, refAccumulateLogprobs, runtimeStats, tensor, tidy, zeros, type MarkInput, type Tensor } from '@huatuo/tensor';
import { gpu, scoped } from './helpers.js';

/** f32 values that a sum of log-probabilities meets: ordinary ones, 0 of both signs, -inf, NaN. */
const valueArb = fc.oneof(
  { weight: 8, arbitrary: fc.float({ min: -30, max: 0, noNaN: true }) },
  { weight: 1, arbitrary: fc.constantFrom(0, -0, -Infinity, NaN, -1e-30, -3.4e38) },
);
const activeArb = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(0, 1) }, { weight: 1, arbitrary: fc.constantFrom(-0, NaN, 0.5) });

const caseArb = fc
  .record({ B: fc.constantFrom(1, 2, 7, 63, 64, 65, 131), steps: fc.integer({ min: 1, max: 4 }) })
  .chain(({ B, steps }) =>
    fc.record({
      B: fc.constant(B),
      total: fc.array(valueArb, { minLength: B, maxLength: B }),
      before: fc.array(valueArb, { minLength: B, maxLength: B }),
      steps: fc.array(fc.record({ logprobs: fc.array(valueArb, { minLength: B, maxLength: B }), active: fc.array(activeArb, { minLength: B, maxLength: B }) }), { minLength: steps, maxLength: steps }),
    }),
  );

/** Index of the first element whose f32 differs (NaN equal to NaN, -0 not to 0), or -1. */
function firstDifference(got: Float32Array, want: Float32Array): number {
  for (let i = 0; i < want.length; i++) if (!Object.is(got[i], want[i])) return i;
  return -1;
}

test('accumulateLogprobs adds each active row\'s log-probability to its sum after keeping the sum in before, and leaves inactive rows\' sums plus 0, bit for bit as the f32 reference', async () => {
  await gpu();
  await fc.assert(
    fc.asyncProperty(caseArb, async (c) =>
      scoped(async () => {
        const want = { total: Float32Array.from(c.total), before: Float32Array.from(c.before) };
        const total = tensor(Float32Array.from(c.total), [c.B]);
        const before = tensor(Float32Array.from(c.before), [c.B]);
        for (const [k, step] of c.steps.entries()) {
          const dispatches = runtimeStats().dispatches;
          accumulateLogprobs(total, before, tensor(Float32Array.from(step.logprobs), [c.B]), tensor(Float32Array.from(step.active), [c.B]));
          assert.equal(runtimeStats().dispatches - dispatches, 1, 'one dispatch a step');
          refAccumulateLogprobs(want.total, want.before, step.logprobs, step.active);
          for (const [name, t] of [['total', total], ['before', before]] as const) {
            const got = (await t.toArray()) as Float32Array;
            const i = firstDifference(got, want[name]);
            assert.equal(i, -1, `B ${c.B}, step ${k}: ${name}[${i}] is ${got[i]}, the reference ${want[name][i]} (logprob ${step.logprobs[i]}, active ${step.active[i]})`);
          }
        }
      }),
    ),
    { numRuns: 40 },
  );
});

test('a recorded step holding accumulateLogprobs replays it with new active rows and log-probabilities, as running it does', async () => {
  await gpu();
  await scoped(async () => {
    const B = 3;
    const total = tensor(Float32Array.of(-1, -2, -3), [B]);
    const before = tensor(new Float32Array(B), [B]);
    // The step's temporaries (the uploaded active rows) freed at its end, as a decoding step's are.
    const step = (input: MarkInput, logprobs: Tensor, active: Float32Array) =>
      tidy(() => {
        accumulateLogprobs(total, before, input('logprobs', logprobs), input('active', tensor(active, [B])));
        return zeros([1]);
      });
    const first = tensor(Float32Array.of(-0.5, -0.25, -4), [B]);
    const { recording } = recordStep(1, (input) => step(input, first, Float32Array.of(1, 1, 0)));
    assert.equal(recording.refused, null);
    const second = tensor(Float32Array.of(-8, -16, -32), [B]);
    const inputs = { logprobs: second, active: Float32Array.of(0, 1, 1) };
    assert.ok(recording.covers(1, inputs));
    recording.replay(1, inputs);
    assert.deepEqual([...((await total.toArray()) as Float32Array)], [-1.5, -2.25 - 16, -3 - 32]);
    assert.deepEqual([...((await before.toArray()) as Float32Array)], [-1, -2.25, -3]);
    recording.dispose();
  });
});

test('accumulateLogprobs refuses other dtypes, shapes and views, and total or before sharing storage with another argument', async () => {
  await gpu();
  await scoped(async () => {
    const f32 = (n: number) => tensor(new Float32Array(n), [n]);
    const [total, before, logprobs, active] = [f32(4), f32(4), f32(4), f32(4)];
    assert.throws(() => accumulateLogprobs(total, before, logprobs, tensor(new Int32Array(4), [4], { dtype: 'i32' })), /active should be f32, got i32/);
    assert.throws(() => accumulateLogprobs(total, before, f32(3), active), /total is \[4\], logprobs is \[3\]/);
    assert.throws(() => accumulateLogprobs(f32(8).view([4], [2], 0), before, logprobs, active), /total is written in place/);
    assert.throws(() => accumulateLogprobs(total, total, logprobs, active), /share storage/);
    assert.throws(() => accumulateLogprobs(total, before, before, active), /share storage/);
  });
});
