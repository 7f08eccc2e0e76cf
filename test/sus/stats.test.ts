import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { StatsError, holm, normalCdf, quantile, signFlipTest, wilcoxonSignedRank } from '@huatuo/sus';

/** Brute force over all 2^n sign patterns of the given ranks: two-sided exact p of W+. */
function bruteWilcoxon(d: number[]): number {
  const abs = d.map(Math.abs);
  const ranks = abs.map((x) => abs.filter((y) => y < x).length + 1);
  const w = d.reduce((s, x, i) => s + (x > 0 ? ranks[i]! : 0), 0);
  let le = 0;
  let ge = 0;
  const total = 2 ** d.length;
  for (let mask = 0; mask < total; mask++) {
    let s = 0;
    for (let i = 0; i < d.length; i++) if (mask & (1 << i)) s += ranks[i]!;
    if (s <= w) le++;
    if (s >= w) ge++;
  }
  return Math.min(1, (2 * Math.min(le, ge)) / total);
}

test('Wilcoxon exact p equals brute-force enumeration for distinct non-zero differences', () => {
  fc.assert(
    fc.property(fc.uniqueArray(fc.integer({ min: 1, max: 200 }), { minLength: 1, maxLength: 12 }), fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }), (mags, signs) => {
      const d = mags.map((m, i) => (signs[i] ? m : -m) / 10);
      const r = wilcoxonSignedRank(d);
      assert.equal(r.method, 'exact');
      assert.ok(Math.abs(r.p - bruteWilcoxon(d)) < 1e-12, `${r.p} vs ${bruteWilcoxon(d)}`);
    }),
  );
});

test('Wilcoxon with ties uses the normal approximation with tie-corrected variance and continuity correction', () => {
  const d = [0.5, 0.5, -0.5, 1, 1, 1, 2, -2, 0, 1.5];
  // Non-zero: 9 values; |d| ranks: 0.5 x3 -> 2, 1 x3 -> 5, 1.5 -> 7, 2 x2 -> 8.5
  const wPlus = 2 + 2 + 5 + 5 + 5 + 8.5 + 7;
  const n = 9;
  const variance = (n * (n + 1) * (2 * n + 1)) / 24 - ((27 - 3) + (27 - 3) + (8 - 2)) / 48;
  const z = (wPlus - n * (n + 1) / 4 - 0.5) / Math.sqrt(variance);
  const r = wilcoxonSignedRank(d);
  assert.equal(r.method, 'normal');
  assert.equal(r.statistic, wPlus);
  assert.ok(Math.abs(r.p - 2 * (1 - normalCdf(z))) < 1e-12);
  // W+ = 34.5, mean 22.5, variance 71.25 - 1.125 = 70.125, z = 11.5 / 8.3741 = 1.3733;
  // normal tables: Phi(1.37) = .91466, Phi(1.38) = .91621, so p = 2 (1 - .91517) = 0.1697.
  assert.ok(Math.abs(r.p - 0.1697) < 5e-4, `p = ${r.p}`);
});

test('the normal CDF matches table values', () => {
  for (const [z, p] of [[0, 0.5], [1.959964, 0.975], [-1.644854, 0.05], [2.575829, 0.995]] as const) assert.ok(Math.abs(normalCdf(z) - p) < 1e-6, `${z}`);
});

test('exact sign-flip p equals a naive count over all sign patterns', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: -6, max: 6 }), { minLength: 1, maxLength: 10 }), (xs) => {
      const d = xs.map((x) => x / 3);
      const obs = Math.abs(d.reduce((a, b) => a + b, 0));
      let count = 0;
      const nz = d.filter((x) => x !== 0);
      for (let mask = 0; mask < 2 ** nz.length; mask++) {
        const s = nz.reduce((acc, x, i) => acc + (mask & (1 << i) ? -x : x), 0);
        if (Math.abs(s) >= obs - 1e-9) count++;
      }
      const r = signFlipTest(d);
      assert.equal(r.method, 'exact');
      assert.ok(Math.abs(r.p - count / 2 ** nz.length) < 1e-12);
    }),
  );
});

test('sign-flip beyond 20 pairs is Monte Carlo, seeded and reproducible, and near the exact value', () => {
  const d = Array.from({ length: 24 }, (_, i) => ((i * 7) % 5) - 1.5);
  const a = signFlipTest(d, { seed: 3 });
  const b = signFlipTest(d, { seed: 3 });
  const exact = signFlipTest(d, { exactMax: 24 });
  assert.equal(a.method, 'monte-carlo');
  assert.equal(a.p, b.p);
  assert.ok(Math.abs(a.p - exact.p) < 0.02, `${a.p} vs ${exact.p}`);
});

test('Holm adjusts sorted p-values by (m - k + 1), keeps them monotone and caps at 1', () => {
  assert.deepEqual(holm([0.01, 0.04, 0.03]).map((x) => +x.toFixed(10)), [0.03, 0.06, 0.06]);
  assert.deepEqual(holm([0.5, 0.2]), [0.5, 0.4]);
  assert.deepEqual(holm([0.9, 0.8]), [1, 1]);
});

test('type-7 quantiles interpolate between order statistics', () => {
  assert.equal(quantile([1, 2, 3, 4], 0.5), 2.5);
  assert.equal(quantile([1, 2, 3, 4, 5], 0.25), 2);
  assert.ok(Math.abs(quantile([10, 20, 30], 0.975) - 29.5) < 1e-12);
});

test('with no pairs the paired tests give NaN (no test); with only zero differences they give p = 1', () => {
  for (const r of [wilcoxonSignedRank([]), signFlipTest([])]) assert.ok(Number.isNaN(r.p) && r.n === 0, `${r.method} p = ${r.p}`);
  for (const r of [wilcoxonSignedRank([0, 0, 1e-12]), signFlipTest([0, 0, -1e-12])]) assert.equal(r.p, 1);
});

test('Holm leaves NaN p-values (no test) as NaN and out of the count m, as R\'s p.adjust; refuses p outside [0, 1]', () => {
  const adjusted = holm([0.01, NaN, 0.04, 0.03, NaN]);
  assert.ok(Number.isNaN(adjusted[1]!) && Number.isNaN(adjusted[4]!));
  assert.deepEqual([adjusted[0], adjusted[2], adjusted[3]].map((x) => +x!.toFixed(10)), [0.03, 0.06, 0.06]);
  assert.throws(() => holm([0.2, 1.5]), (e: unknown) => e instanceof StatsError && /must lie in \[0, 1\].*got 1\.5/.test(e.message));
});

test('quantile refuses a probability outside [0, 1] instead of reading past the data', () => {
  for (const p of [-0.1, 1.2, NaN]) assert.throws(() => quantile([1, 2, 3], p), (e: unknown) => e instanceof StatsError && /quantile: the probability must lie in \[0, 1\]/.test(e.message));
});

test('two-sided normal p-values keep their precision far in the tail (2 Phi(-z), not 2 (1 - Phi(z)))', () => {
  const d = Array.from({ length: 60 }, (_, i) => (i + 1) / 3);
  const r = wilcoxonSignedRank(d);
  assert.equal(r.method, 'normal');
  // W+ = 1830, mean 915, variance 60 * 61 * 121 / 24 = 18452.5: z = 914.5 / sqrt(18452.5) = 6.7322;
  // mpmath at 30 digits: 2 ncdf(-z) = 1.67132856965265237681887682664e-11.
  assert.ok(Math.abs(r.p / 1.6713285696526524e-11 - 1) < 1e-12, `p = ${r.p}`);
  assert.ok(normalCdf(-9) > 0 && Math.abs(normalCdf(-9) / 1.1285884059538408e-19 - 1) < 1e-14);
});
