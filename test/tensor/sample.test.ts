// sampleLogits against the float64 reference: the same token for the same uniform away from the
// boundaries of the reference's distribution (random logits, ties, -inf, f16, each warper on and off),
// with its log-probability under the distribution drawn from, and exact frequencies over a grid of uniforms.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { hasF16, refSampleProbs, refSampledLogprob, refSampleRow, sampleLogits, sampleLogitsWithLogprobs, tensor, type SampleOptions } from '@huatuo/tensor';
import { setSampleWidth } from '@huatuo/tensor/internal';
import { gpu, scoped } from './helpers.js';

/** Why the reference's pick for u is fragile in f32, or null: u near a cumulative boundary, or the top-p cut near one. */
function ambiguity(row: ArrayLike<number>, o: SampleOptions, u: number, margin = 1e-5): string | null {
  const p = refSampleProbs(row, o);
  let total = 0;
  for (const q of p) total += q;
  let run = 0;
  for (const q of p) {
    run += q;
    if (q > 0 && Math.abs(run / total - u) < margin) return `u ${u} within ${margin} of a cumulative boundary ${run / total}`;
  }
  if (o.topP < 1) {
    // The unfiltered (top-k only) probabilities' ascending cumulative sums against 1 - topP.
    const full = refSampleProbs(row, { ...o, topP: 1 });
    const sorted = Array.from(full).sort((a, b) => a - b);
    let cum = 0;
    for (const q of sorted) {
      cum += q;
      if (Math.abs(cum - (1 - o.topP)) < margin) return `a cumulative ${cum} within ${margin} of 1 - topP`;
    }
  }
  return null;
}

const optionsArb = (V: number) =>
  fc.record({
    temperature: fc.constantFrom(0.3, 0.7, 1, 1.6),
    topK: fc.oneof(fc.constant(0), fc.constant(1), fc.integer({ min: 1, max: V + 3 }), fc.constant(V)),
    topP: fc.oneof(fc.constant(1), fc.double({ min: 0.05, max: 1, noNaN: true }), fc.constantFrom(0.5, 0.9)),
  });

const caseArb = fc
  .record({
    B: fc.integer({ min: 1, max: 3 }),
    V: fc.constantFrom(1, 2, 5, 64, 257, 1031),
    scale: fc.constantFrom(0.5, 3, 12),
    // Logits rounded to a coarse grid tie often; -inf masks tokens.
    grid: fc.constantFrom(0, 0.25, 1),
    masked: fc.constantFrom(0, 0.1, 0.5),
    seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
  })
  .chain((c) => fc.record({ c: fc.constant(c), o: optionsArb(c.V), u: fc.array(fc.double({ min: 0, max: 0.9999999, noNaN: true }), { minLength: c.B, maxLength: c.B }) }));

function logitsOf(c: { B: number; V: number; scale: number; grid: number; masked: number; seed: number }): Float32Array {
  let s = c.seed >>> 0;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
  const out = new Float32Array(c.B * c.V);
  for (let i = 0; i < out.length; i++) {
    const v = (next() * 2 - 1) * c.scale;
    out[i] = c.grid > 0 ? Math.round(v / c.grid) * c.grid : v;
    if (next() < c.masked) out[i] = -Infinity;
  }
  // Keep at least one finite logit per row.
  for (let b = 0; b < c.B; b++) if (out[b * c.V] === -Infinity) out[b * c.V] = 0;
  return out;
}

// The kernel's two widths (threads per row), whichever adapter runs the tests.
const VARIANTS = [
  { dtype: 'f32', width: 64 },
  { dtype: 'f16', width: 64 },
  { dtype: 'f32', width: 256 },
] as const;

for (const { dtype, width } of VARIANTS) {
  test(`sampleLogits (${dtype}, ${width} threads a row) picks the reference's token for the same uniform away from its boundaries, with its log-probability`, async (t) => {
    await gpu();
    if (dtype === 'f16' && !hasF16()) return t.skip('adapter lacks shader-f16');
    setSampleWidth(width);
    t.after(() => setSampleWidth(null));
    let compared = 0;
    let skipped = 0;
    await fc.assert(
      fc.asyncProperty(caseArb, async ({ c, o, u }) =>
        scoped(async () => {
          const x = tensor(logitsOf(c), [c.B, c.V], { dtype });
          const host = (await x.toArray()) as Float32Array;
          const picked = sampleLogitsWithLogprobs(x, tensor(Float32Array.from(u), [c.B]), o);
          const ids = (await picked.ids.toArray()) as Int32Array;
          const logprobs = (await picked.logprobs.toArray()) as Float32Array;
          for (let b = 0; b < c.B; b++) {
            const row = host.subarray(b * c.V, (b + 1) * c.V);
            const uf = Math.fround(u[b]!);
            if (ambiguity(row, o, uf) !== null) {
              skipped++;
              continue;
            }
            compared++;
            const want = refSampleRow(row, o, uf);
            assert.equal(ids[b], want, `row ${b} of ${JSON.stringify(c)}, ${JSON.stringify(o)}, u ${uf}: got ${ids[b]} (logit ${row[ids[b]!]}), reference ${want} (logit ${row[want]})`);
            // f32 against float64: s - max s reaches 80 (logits of scale 12 at temperature 0.3).
            const lp = refSampledLogprob(row, o, want);
            assert.ok(Math.abs(logprobs[b]! - lp) <= 1e-4 + 2e-6 * Math.abs(lp), `row ${b} of ${JSON.stringify(c)}, ${JSON.stringify(o)}: log-probability ${logprobs[b]}, reference ${lp}`);
          }
        }),
      ),
      { numRuns: 30 },
    );
    assert.ok(compared >= 30 && compared > 2 * skipped, `only ${compared} rows compared, ${skipped} near a boundary`);
  });
}

for (const width of [64, 256] as const) test(`sampleLogits (${width} threads a row) keeps every tie at the k-th logit and drops the rest: exact frequencies over a grid of uniforms`, async (t) => {
  await gpu();
  setSampleWidth(width);
  t.after(() => setSampleWidth(null));
  // Ties at the 3rd largest (1.0 at 1, 4 and 6): top-k 3 keeps 2.0 and all three 1.0s, top-p 0.8 then cuts inside them.
  const short = [0.5, 1, -Infinity, 2, 1, -1, 1, 0.25];
  // The same with 700 tokens of tiny p behind: more tokens of p > 0 than the kernel gathers into workgroup memory.
  const long = [...short, ...new Array<number>(700).fill(-20)];
  const cases: SampleOptions[] = [
    { temperature: 1, topK: 3, topP: 1 },
    { temperature: 0.7, topK: 3, topP: 0.8 },
    { temperature: 1.3, topK: 0, topP: 0.6 },
    { temperature: 1, topK: 1, topP: 1 },
    { temperature: 1, topK: 0, topP: 0.999 },
  ];
  const N = 256;
  const u = Float32Array.from({ length: N }, (_, j) => (j + 0.5) / N);
  for (const row of [short, long]) {
    for (const o of cases) {
      await scoped(async () => {
        const x = tensor(new Float32Array(N * row.length).map((_, i) => row[i % row.length]!), [N, row.length]);
        const ids = (await sampleLogits(x, tensor(u, [N]), o).toArray()) as Int32Array;
        const p = refSampleProbs(row, o);
        const total = p.reduce((a, b) => a + b, 0);
        const counts = new Map<number, number>();
        for (const t of ids) counts.set(t, (counts.get(t) ?? 0) + 1);
        for (let i = 0; i < row.length; i++) {
          const expected = (N * p[i]!) / total;
          const count = counts.get(i) ?? 0;
          assert.ok(Math.abs(count - expected) <= 1.01, `V ${row.length}, ${JSON.stringify(o)}: token ${i} drawn ${count} times of ${N}, expected ${expected.toFixed(2)} (p ${p[i]})`);
        }
      });
    }
  }
});

test('sampleLogits refuses bad shapes, dtypes and options, naming them', async () => {
  await gpu();
  await scoped(async () => {
    const x = tensor(new Float32Array(6), [2, 3]);
    const u = tensor(new Float32Array(2), [2]);
    assert.throws(() => sampleLogits(x, tensor(new Float32Array(3), [3]), { temperature: 1, topK: 0, topP: 1 }), /uniforms should be \[2\]/);
    assert.throws(() => sampleLogits(x, u, { temperature: 0, topK: 0, topP: 1 }), /temperature/);
    assert.throws(() => sampleLogits(x, u, { temperature: 1, topK: 1.5, topP: 1 }), /topK/);
    assert.throws(() => sampleLogits(x, u, { temperature: 1, topK: 0, topP: 0 }), /topP/);
    assert.throws(() => sampleLogits(tensor(new Float32Array(6), [6]), tensor(new Float32Array(1), [1]), { temperature: 1, topK: 0, topP: 1 }), /\[B, V\]/);
  });
});
