// Fleiss' kappa (with SE0, z, p and per-category kappas), Krippendorff's alpha, the annotator screen,
// Wilcoxon's test and Holm's adjustment against R 4.2 and irr 0.84.1 (test/fixtures/sus/r-reference.json, made by
// scripts/fixtures/make-sus-r-fixture.R; the script's header says which call gives each value).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { annotatorAgreement, fleissKappa, fleissKappaOfRatings, holm, krippendorffAlpha, wilcoxonSignedRank, type AlphaLevel, type FleissKappa } from '@huatuo/sus';

type Num = number | null;
interface FleissReference {
  name: string;
  categories: number[];
  counts: number[][];
  subjects: number;
  raters: number;
  kappa: Num;
  se0: Num;
  z: Num;
  p: Num;
  pIrr: Num;
  perCategory: Array<{ category: number; kappa: Num; se0: Num; z: Num; p: Num; pIrr: Num }>;
  exact: { kappa: Num; se0: Num; z: Num; perCategory: Array<{ kappa: Num; z: Num }> };
}
interface Fixture {
  versions: Record<string, string>;
  fleiss: Array<FleissReference & { ratings: number[][] }>;
  fleissMissing: Array<FleissReference & { data: Array<Array<number | null>>; left: number }>;
  krippendorff: Array<{ name: string; data: Array<Array<number | null>>; complete: boolean } & Record<AlphaLevel, number>>;
  annotators: Array<{ name: string; data: Array<Array<number | null>>; threshold: number; annotators: Array<{ withRest: number; withoutThisOne: number; units: number; flagged: boolean }> }>;
  wilcoxon: Array<{ name: string; diffs: number[]; n: number; exact: boolean; v: number; p: number }>;
  holm: Array<{ p: Num[]; holm: Num[] }>;
}

const fixture = JSON.parse(readFileSync(new URL('../fixtures/sus/r-reference.json', import.meta.url), 'utf8')) as Fixture;
const LEVELS = ['nominal', 'ordinal', 'interval', 'ratio'] as const;

/** |got - want| <= abs + rel |want|; null in the fixture stands for NaN. */
function near(got: number, want: Num, rel: number, what: string, abs = 0): void {
  if (want === null) {
    assert.ok(Number.isNaN(got), `${what}: got ${got}, reference NaN`);
    return;
  }
  assert.ok(Math.abs(got - want) <= abs + rel * Math.abs(want), `${what}: got ${got}, reference ${want} (difference ${got - want})`);
}

// irr computes in doubles through P-bar and P-bar_e (per category through (p_jj - p_j) / (1 - p_j)),
// which cancels where ratings fall mostly in one category and kappa is near 0: there irr itself is
// up to 1.2e-12 relative, 8e-15 absolute, off the exact values that the package meets to a few ulps
// (the test above). So kappas pass within 1e-12 relative or 1e-14 absolute, z within 5e-13 absolute.
const REL = 1e-12;
const ABS = 1e-14;
const Z_ABS = 5e-13;

function checkFleiss(got: FleissKappa, want: FleissReference, what: string): void {
  assert.equal(got.subjects, want.subjects, `${what}: subjects`);
  assert.equal(got.raters, want.raters, `${what}: raters`);
  near(got.kappa, want.kappa, REL, `${what}: kappa`, ABS);
  near(got.se0, want.se0, REL, `${what}: SE0`);
  near(got.z, want.z, REL, `${what}: z`, Z_ABS);
  near(got.p, want.p, REL, `${what}: p`, 1e-300);
  // irr's own p is 2 (1 - pnorm(|z|)), exact only to 1e-16 absolute (0 beyond |z| = 8.3).
  near(got.p, want.pIrr, REL, `${what}: p against irr's 2 (1 - pnorm(|z|))`, 1e-15);
  assert.deepEqual(got.categories.map((c) => c.category), want.categories, `${what}: categories`);
  got.categories.forEach((c, j) => {
    const ref = want.perCategory[j]!;
    const label = `${what}, category ${c.category}`;
    near(c.kappa, ref.kappa, REL, `${label}: kappa`, ABS);
    near(c.z, ref.z, REL, `${label}: z`, Z_ABS);
    // A category nobody used is no level of irr's table (null); its SE0 is still the one every category shares.
    near(c.se0, ref.se0 ?? want.perCategory.find((x) => x.se0 !== null)?.se0 ?? null, REL, `${label}: SE0`);
  });
}

/** Against the exact rational values rounded once: a few ulps, also where P-bar_e is near 1 and kappa near 0. */
function checkFleissExact(got: FleissKappa, want: FleissReference, what: string): void {
  const fewUlps = 1e-15;
  near(got.kappa, want.exact.kappa, fewUlps, `${what}: kappa, exact`);
  near(got.se0, want.exact.se0, fewUlps, `${what}: SE0, exact`);
  near(got.z, want.exact.z, fewUlps, `${what}: z, exact`);
  got.categories.forEach((c, j) => {
    near(c.kappa, want.exact.perCategory[j]!.kappa, fewUlps, `${what}, category ${c.category}: kappa, exact`);
    near(c.z, want.exact.perCategory[j]!.z, fewUlps, `${what}, category ${c.category}: z, exact`);
  });
}

test('Fleiss kappa, SE0, z and the per-category kappas and z are within a few ulps (1e-15 relative) of their exact rational values', () => {
  for (const c of [...fixture.fleiss, ...fixture.fleissMissing]) checkFleissExact(fleissKappa(c.counts, c.categories), c, c.name);
});

test('Fleiss kappa, SE0, z and p and the per-category kappas, SE0 and z equal irr::kappam.fleiss(detail = TRUE) to 1e-12', () => {
  assert.ok(fixture.fleiss.length >= 40);
  for (const c of fixture.fleiss) {
    const what = `${c.name} (${fixture.versions['irr']})`;
    checkFleiss(fleissKappa(c.counts, c.categories), c, what);
    const byRater = c.ratings[0]!.map((_, r) => c.ratings.map((row) => row[r]!));
    const fromRatings = fleissKappaOfRatings(byRater, c.categories);
    assert.ok(fromRatings !== null && fromRatings.left === 0, what);
    checkFleiss(fromRatings, c, `${what}, from ratings`);
  }
});

test('Fleiss kappa of ratings with missing values equals irr over the subjects every rater rated (irr drops the others), with the others counted as left out', () => {
  for (const c of fixture.fleissMissing) {
    const k = fleissKappaOfRatings(c.data, c.categories);
    assert.ok(k !== null, c.name);
    checkFleiss(k, c, c.name);
    assert.equal(k.left, c.left, `${c.name}: left out`);
  }
});

test('Krippendorff alpha equals irr::kripp.alpha where irr weights pairs by 1 / (m_u - 1): with missing values, or two raters', () => {
  for (const c of fixture.krippendorff.filter((c) => !c.complete || c.data.length === 2)) {
    for (const level of LEVELS) near(krippendorffAlpha(c.data, level), c[level], REL, `${c.name}, ${level}`, ABS);
  }
});

test('on complete data of m > 2 raters irr::kripp.alpha weights each pair by 1, not 1 / (m - 1): (1 - irr) / (1 - alpha) = (n - 1 / (m - 1)) / (n - 1) for n pairable values', () => {
  const complete = fixture.krippendorff.filter((c) => c.complete && c.data.length > 2);
  assert.ok(complete.length >= 2);
  for (const c of complete) {
    const m = c.data.length;
    const n = m * c.data[0]!.length;
    for (const level of LEVELS) {
      const alpha = krippendorffAlpha(c.data, level);
      near((1 - c[level]) / (1 - alpha), (n - 1 / (m - 1)) / (n - 1), REL, `${c.name}, ${level}: irr ${c[level]}, alpha ${alpha}`);
      assert.ok(Math.abs(alpha - c[level]) > 1e-6, `${c.name}, ${level}: irr's weighting should show`);
    }
  }
});

test('the annotator screen equals irr::kripp.alpha with each annotator against the mean of the others, and R\'s median - max(0.2, 3 mad) for the flags', () => {
  for (const c of fixture.annotators) {
    const names = c.data.map((_, i) => `ann${i + 1}`);
    const got = annotatorAgreement(names, c.data, 'ordinal');
    assert.ok(c.annotators.every((a) => Math.abs(a.withRest - c.threshold) > 1e-9), `${c.name}: no annotator on the threshold`);
    got.forEach((a, i) => {
      const want = c.annotators[i]!;
      // irr keeps the others' means as levels printed to 15 digits, so its interval differences are 1e-15 relative off.
      near(a.withRest, want.withRest, REL, `${c.name}, ${a.annotator}: with the rest`, 1e-13);
      near(a.withoutThisOne, want.withoutThisOne, REL, `${c.name}, ${a.annotator}: without this one`, ABS);
      assert.equal(a.units, want.units, `${c.name}, ${a.annotator}: units`);
      assert.equal(a.flagged, want.flagged, `${c.name}, ${a.annotator}: flagged (threshold ${c.threshold})`);
    });
  }
  assert.ok(fixture.annotators.some((c) => c.annotators.some((a) => a.flagged)) && fixture.annotators.some((c) => c.annotators.every((a) => !a.flagged)));
});

test('Wilcoxon W+ and p equal R wilcox.test(d, correct = TRUE) with exact p up to 50 untied non-zero differences', () => {
  for (const c of fixture.wilcoxon) {
    const r = wilcoxonSignedRank(c.diffs);
    assert.equal(r.n, c.n, `${c.name}: non-zero differences`);
    assert.equal(r.method, c.exact ? 'exact' : 'normal', `${c.name}: method`);
    assert.equal(r.statistic, c.v, `${c.name}: W+ (R's V)`);
    near(r.p, c.p, REL, `${c.name}: p`, 1e-300);
  }
});

test('Holm adjustment equals R p.adjust(method = "holm"), NA (no test) kept and not counted', () => {
  for (const c of fixture.holm) {
    const got = holm(c.p.map((p) => p ?? NaN));
    got.forEach((x, i) => near(x, c.holm[i]!, 1e-15, `holm(${c.p.join(', ')})[${i}]`));
  }
});
