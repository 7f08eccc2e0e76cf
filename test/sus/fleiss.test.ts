// Fleiss' kappa against Fleiss (1971)'s psychiatric diagnoses (as R's irr::kappam.fleiss reports
// them) and the worked example of Wikipedia's "Fleiss' kappa" page, plus its invariances.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { StatsError, fleissKappa, fleissKappaOfRatings, normalCdf } from '@huatuo/sus';

// Fleiss (1971), Table 1 as R's irr package ships it (`diagnoses`): 30 patients, 6 psychiatrists
// each, categories 1 depression, 2 personality disorder, 3 schizophrenia, 4 neurosis, 5 other.
const diagnoses = [
  [4, 4, 4, 4, 4, 4], [2, 2, 2, 5, 5, 5], [2, 3, 3, 3, 3, 5], [5, 5, 5, 5, 5, 5], [2, 2, 2, 4, 4, 4],
  [1, 1, 3, 3, 3, 3], [3, 3, 3, 3, 5, 5], [1, 1, 3, 3, 3, 4], [1, 1, 4, 4, 4, 4], [5, 5, 5, 5, 5, 5],
  [1, 4, 4, 4, 4, 4], [1, 2, 4, 4, 4, 4], [2, 2, 2, 3, 3, 3], [1, 4, 4, 4, 4, 4], [2, 2, 4, 4, 4, 5],
  [3, 3, 3, 3, 3, 5], [1, 1, 1, 4, 5, 5], [1, 1, 1, 1, 1, 2], [2, 2, 4, 4, 4, 4], [1, 3, 3, 5, 5, 5],
  [5, 5, 5, 5, 5, 5], [2, 4, 4, 4, 4, 4], [2, 2, 4, 5, 5, 5], [1, 1, 4, 4, 4, 4], [1, 4, 4, 4, 4, 5],
  [2, 2, 2, 2, 2, 4], [1, 1, 1, 1, 5, 5], [2, 2, 4, 4, 4, 4], [1, 3, 3, 3, 3, 3], [5, 5, 5, 5, 5, 5],
];
const diagnosisCounts = diagnoses.map((row) => [1, 2, 3, 4, 5].map((c) => row.filter((v) => v === c).length));

// Wikipedia, "Fleiss' kappa", worked example: 10 subjects, 14 raters, 5 categories.
const wikipedia = [
  [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
  [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
];

const close = (got: number, want: number, digits: number, what: string): void =>
  assert.ok(Math.abs(got - want) <= 0.5 * 10 ** -digits, `${what}: got ${got}, published ${want}`);

test('kappa reproduces Fleiss 1971 (kappa .430; irr: 0.4302445, z 17.65183) and its per-category kappas and z values', () => {
  const k = fleissKappa(diagnosisCounts, [1, 2, 3, 4, 5]);
  assert.deepEqual(diagnosisCounts.reduce((s, row) => s.map((x, j) => x + row[j]!), [0, 0, 0, 0, 0]), [26, 26, 30, 55, 43]);
  close(k.kappa, 0.4302445, 7, 'kappa');
  close(k.z, 17.65183, 5, 'z');
  assert.equal(k.subjects, 30);
  assert.equal(k.raters, 6);
  close(k.se0, 0.4302445 / 17.65183, 6, 'SE0');
  // The z test's p is 2 Phi(-z), about 1e-69 here; 2 (1 - Phi(z)) would round it to 0.
  assert.ok(k.p > 1e-70 && k.p < 1e-68 && k.p === 2 * normalCdf(-Math.abs(k.z)), `p = ${k.p}`);
  const published = [[0.245, 5.192], [0.245, 5.192], [0.52, 11.031], [0.471, 9.994], [0.566, 12.009]];
  k.categories.forEach((c, j) => {
    assert.equal(c.category, j + 1);
    close(c.kappa, published[j]![0]!, 3, `category ${j + 1} kappa`);
    close(c.z, published[j]![1]!, 3, `category ${j + 1} z`);
  });
  const fromRatings = fleissKappaOfRatings(Array.from({ length: 6 }, (_, r) => diagnoses.map((row) => row[r]!)), [1, 2, 3, 4, 5]);
  assert.ok(fromRatings !== null && Math.abs(fromRatings.kappa - k.kappa) < 1e-15 && fromRatings.left === 0);
});

test('kappa reproduces Wikipedia\'s worked example: P-bar 0.378, P-bar_e 0.213, kappa 0.210', () => {
  const k = fleissKappa(wikipedia);
  close(k.observed, 0.378, 3, 'P-bar');
  close(k.expected, 0.213, 3, 'P-bar_e');
  close(k.kappa, 0.21, 3, 'kappa');
});

test('kappa does not depend on the order of subjects or of categories, and is 1 when raters always agree', () => {
  fc.assert(
    fc.property(fc.array(fc.array(fc.nat(4), { minLength: 3, maxLength: 3 }), { minLength: 2, maxLength: 12 }), (raw) => {
      const counts = raw.map((row) => [...row, 6 - Math.min(6, row.reduce((a, b) => a + b, 0))]).filter((row) => row.reduce((a, b) => a + b, 0) === 6);
      fc.pre(counts.length >= 2);
      const k = fleissKappa(counts).kappa;
      const subjects = fleissKappa([...counts].reverse()).kappa;
      const categories = fleissKappa(counts.map((row) => [...row].reverse())).kappa;
      for (const other of [subjects, categories]) assert.ok((Number.isNaN(k) && Number.isNaN(other)) || Math.abs(k - other) < 1e-12, `${k} vs ${other}`);
    }),
  );
  assert.equal(fleissKappa([[3, 0], [0, 3], [3, 0]]).kappa, 1);
});

test('unequal numbers of raters are refused naming the subject; from ratings, items with fewer raters are left out and counted', () => {
  assert.throws(() => fleissKappa([[2, 1], [1, 1]]), (e: unknown) => e instanceof StatsError && /subject 1 has 2 ratings, subject 0 has 3/.test(e.message));
  const k = fleissKappaOfRatings([[1, 2, 3, 1], [1, 2, null, 1], [1, 3, 3, null]], [1, 2, 3]);
  assert.ok(k !== null);
  assert.equal(k.subjects, 2);
  assert.equal(k.left, 2);
  assert.equal(k.kappa, fleissKappa([[3, 0, 0], [0, 2, 1]]).kappa);
  assert.equal(fleissKappaOfRatings([[1, 2, 3]], [1, 2, 3]), null);
});
