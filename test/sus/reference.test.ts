// Every statistic of @huatuo/sus against SciPy 1.10, statsmodels 0.13, NumPy 1.24, NLTK 3.8 and mpmath over random
// and adversarial inputs (test/fixtures/sus/stats.json, made by scripts/fixtures/make-sus-stats-fixture.py;
// the script's header says which call gives each reference value).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fleissKappa, fleissKappaOfRatings, holm, krippendorffAlpha, mean, normalCdf, quantile, sampleSd, signFlipTest, wilcoxonSignedRank, type AlphaLevel } from '@huatuo/sus';

interface WilcoxonCase { name: string; diffs: number[]; n: number; p: number | null; wPlus: number; method: 'exact' | 'approx' | 'none' | 'all-zero' }
interface Fixture {
  versions: Record<string, string>;
  wilcoxon: WilcoxonCase[];
  signFlip: Array<{ name: string; diffs: number[]; p: number }>;
  fleissTables: Array<{ name: string; counts: number[][]; kappa: number | null }>;
  fleissRatings: Array<{ name: string; data: Array<Array<number | null>>; kappa: number | null; subjects: number | null; left: number | null }>;
  krippendorff: Array<{ name: string; data: Array<Array<number | null>> } & Record<AlphaLevel, number | null>>;
  holm: Array<{ p: number[]; holm: number[] }>;
  quantile: Array<{ sorted: number[]; probs: number[]; quantiles: number[] }>;
  moments: Array<{ xs: number[]; mean: number; sd: number | null }>;
  normal: Array<{ z: number; cdf: number; twoSided: number }>;
}

const fixture = JSON.parse(readFileSync(new URL('../fixtures/sus/stats.json', import.meta.url), 'utf8')) as Fixture;

/** |got - want| <= abs + rel |want|; null in the fixture stands for NaN. */
function near(got: number, want: number | null, rel: number, what: string, abs = 0): void {
  if (want === null) {
    assert.ok(Number.isNaN(got), `${what}: got ${got}, reference NaN`);
    return;
  }
  assert.ok(Math.abs(got - want) <= abs + rel * Math.abs(want), `${what}: got ${got}, reference ${want} (difference ${got - want})`);
}

test('Wilcoxon p and W+ equal SciPy wilcoxon(zero_method="wilcox", correction=True) with exact p up to 50 untied non-zero differences', () => {
  assert.ok(fixture.wilcoxon.length > 100);
  for (const c of fixture.wilcoxon) {
    const r = wilcoxonSignedRank(c.diffs);
    const what = `${c.name} (SciPy ${fixture.versions['scipy']}, ${c.method})`;
    near(r.p, c.p, 1e-12, `${what}: p`, 1e-300);
    assert.equal(r.statistic, c.wPlus, `${what}: W+`);
    assert.equal(r.n, c.n, `${what}: non-zero differences`);
    const method = { exact: 'exact', approx: 'normal', none: 'exact', 'all-zero': 'exact' }[c.method];
    assert.equal(r.method, method, `${what}: method`);
  }
});

test('sign-flip exact p equals SciPy permutation_test over all sign patterns', () => {
  for (const c of fixture.signFlip) near(signFlipTest(c.diffs).p, c.p, 1e-12, c.name);
});

// statsmodels computes kappa through P-bar and P-bar_e in doubles, which cancels where P-bar_e is near
// 1 and kappa near 0: 1.3e-14 (3e-12 relative) off the exact value in one table here, which the
// package gets to the last bit (r-reference.test.ts checks it against exact rationals).
const STATSMODELS_ABS = 1e-13;

test('Fleiss kappa equals statsmodels fleiss_kappa(method="fleiss"), NaN where every rating is one category', () => {
  for (const c of fixture.fleissTables) near(fleissKappa(c.counts).kappa, c.kappa, 1e-12, c.name, STATSMODELS_ABS);
  const constant = fleissKappa([[4, 0, 0], [4, 0, 0]]);
  assert.ok(Number.isNaN(constant.kappa) && Number.isNaN(constant.z) && Number.isNaN(constant.p));
});

test('Fleiss kappa of ratings with missing values equals statsmodels over the items with the most ratings', () => {
  for (const c of fixture.fleissRatings) {
    const k = fleissKappaOfRatings(c.data, [1, 2, 3]);
    if (c.kappa === null && c.subjects === null) {
      assert.equal(k, null, c.name);
      continue;
    }
    assert.ok(k !== null, c.name);
    near(k.kappa, c.kappa, 1e-12, c.name, STATSMODELS_ABS);
    assert.equal(k.subjects, c.subjects, `${c.name}: subjects`);
    assert.equal(k.left, c.left, `${c.name}: left out`);
  }
});

test('Krippendorff alpha equals NLTK AnnotationTask.alpha with the nominal, ordinal, interval and ratio differences; NaN where no disagreement is possible', () => {
  for (const c of fixture.krippendorff) {
    for (const level of ['nominal', 'ordinal', 'interval', 'ratio'] as const) near(krippendorffAlpha(c.data, level), c[level], 1e-12, `${c.name}, ${level}`, 1e-14);
  }
});

test('Holm adjustment equals statsmodels multipletests(method="holm")', () => {
  for (const c of fixture.holm) holm(c.p).forEach((x, i) => near(x, c.holm[i]!, 1e-15, `holm(${c.p.join(', ')})[${i}]`));
});

test('type-7 quantiles equal numpy.quantile; mean and SD equal numpy.mean and numpy.std(ddof=1)', () => {
  for (const c of fixture.quantile) c.probs.forEach((p, i) => near(quantile(c.sorted, p), c.quantiles[i]!, 1e-14, `quantile of ${c.sorted.length} values at ${p}`, 1e-15));
  for (const c of fixture.moments) {
    near(mean(c.xs), c.mean, 1e-14, `mean of ${c.xs.length}`);
    near(sampleSd(c.xs), c.sd, 1e-13, `sd of ${c.xs.length}`, 1e-15);
  }
});

test('normal CDF and two-sided tail equal mpmath.ncdf to 1e-14 relative, far into both tails', () => {
  for (const c of fixture.normal) {
    near(normalCdf(c.z), c.cdf, 1e-14, `cdf(${c.z})`, 1e-300);
    near(2 * normalCdf(-Math.abs(c.z)), c.twoSided, 1e-14, `2 cdf(-|${c.z}|)`, 1e-300);
  }
});
