// Fleiss' kappa for a fixed number of raters per subject (Fleiss 1971, "Measuring nominal scale
// agreement among many raters"), overall and per category, with the large-sample standard
// errors under the null hypothesis of no agreement beyond chance (Fleiss, Nee & Landis 1979).

import { StatsError } from './errors.js';
import { normalCdf } from './stats.js';
import type { ReliabilityData } from './agreement.js';

/** Kappa of one category: agreement on it against all others. */
export interface CategoryKappa {
  category: number;
  /** p_j: the share of all ratings in this category. */
  proportion: number;
  kappa: number;
  /** SE under kappa_j = 0: sqrt(2 / (N n (n - 1))). */
  se0: number;
  z: number;
}

/** Fleiss' kappa of a subjects x categories table of counts. */
export interface FleissKappa {
  kappa: number;
  /** P-bar: the mean over subjects of the share of agreeing rater pairs. */
  observed: number;
  /** P-bar_e = sum_j p_j^2: the agreement expected by chance. */
  expected: number;
  /** Large-sample standard error under H0: kappa = 0 (Fleiss, Nee & Landis 1979). */
  se0: number;
  /** kappa / se0. */
  z: number;
  /** Two-sided p-value of z against the standard normal. */
  p: number;
  /** N: subjects counted. */
  subjects: number;
  /** n: raters per subject. */
  raters: number;
  categories: CategoryKappa[];
}

/**
 * Fleiss' kappa of `counts[i][j]`, the number of raters who put subject i in category j; every
 * subject must have the same number n >= 2 of ratings. With N subjects, p_j = sum_i n_ij / (N n),
 * P_i = (sum_j n_ij^2 - n) / (n (n - 1)), P-bar their mean and P-bar_e = sum_j p_j^2:
 * kappa = (P-bar - P-bar_e) / (1 - P-bar_e). The standard error is the one of Fleiss, Nee & Landis
 * (1979) under the null (the one R's irr::kappam.fleiss and most software report):
 * SE0 = sqrt(2 / (N n (n - 1))) * sqrt((sum p_j q_j)^2 - sum p_j q_j (q_j - p_j)) / sum p_j q_j,
 * q_j = 1 - p_j; per category kappa_j = 1 - sum_i n_ij (n - n_ij) / (N n (n - 1) p_j q_j) with
 * SE0_j = sqrt(2 / (N n (n - 1))). It tests agreement beyond chance; it is not a standard error
 * for a confidence interval around a non-zero kappa. NaN where a quantity is 0 / 0 (one category only).
 *
 * @example fleissKappa([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], ...]).kappa // 0.210 for Wikipedia's 10 x 14 raters example
 */
export function fleissKappa(counts: ReadonlyArray<ReadonlyArray<number>>, labels?: readonly number[]): FleissKappa {
  const N = counts.length;
  if (N === 0) throw new StatsError('fleissKappa: no subjects; give one row of category counts per subject');
  const k = counts[0]!.length;
  const n = counts[0]!.reduce((a, b) => a + b, 0);
  counts.forEach((row, i) => {
    if (row.length !== k) throw new StatsError(`fleissKappa: subject ${i} has ${row.length} categories, subject 0 has ${k}; every row needs one count per category`);
    if (row.some((c) => !Number.isInteger(c) || c < 0)) throw new StatsError(`fleissKappa: subject ${i} has a count that is not a non-negative integer (${row.join(', ')})`);
    const sum = row.reduce((a, b) => a + b, 0);
    if (sum !== n) throw new StatsError(`fleissKappa: subject ${i} has ${sum} ratings, subject 0 has ${n}; Fleiss' kappa needs the same number of raters per subject (use Krippendorff's alpha for missing ratings)`);
  });
  if (n < 2) throw new StatsError(`fleissKappa: ${n} rating per subject; agreement needs at least 2 raters per subject`);
  // Every quantity is a ratio of integer sums (M = N n ratings, T_j = sum_i n_ij, A = sum_ij n_ij^2,
  // S = sum_j T_j^2, C = sum_j T_j^3), taken exactly in BigInt and divided once, so the result is
  // within a few ulps; going through P-bar and P-bar_e in floating point cancels where P-bar_e is
  // near 1 (ratings mostly in one category) and loses digits in proportion to 1 / (1 - P-bar_e).
  //   kappa = ((A - M) M - (n - 1) S) / ((n - 1) (M^2 - S))
  //   SE0^2 = 2 (S M^2 + S^2 - 2 C M) / (M (n - 1) (M^2 - S)^2)
  //   kappa_j = ((n - 1) T_j (M - T_j) - D_j M) / ((n - 1) T_j (M - T_j)), D_j = sum_i n_ij (n - n_ij)
  const M = BigInt(N * n);
  const n1 = BigInt(n - 1);
  const totals = Array.from({ length: k }, (_, j) => BigInt(counts.reduce((s, row) => s + row[j]!, 0)));
  const A = counts.reduce((s, row) => s + row.reduce((a, c) => a + BigInt(c * c), 0n), 0n);
  const S = totals.reduce((s, t) => s + t * t, 0n);
  const C = totals.reduce((s, t) => s + t * t * t, 0n);
  const observed = ratio(A - M, M * n1);
  const expected = ratio(S, M * M);
  const kappa = ratio((A - M) * M - n1 * S, n1 * (M * M - S));
  const se0 = Math.sqrt(ratio(2n * (S * M * M + S * S - 2n * C * M), M * n1 * (M * M - S) ** 2n));
  const z = kappa / se0;
  const seJ = Math.sqrt(2 / (N * n * (n - 1)));
  const categories = totals.map((t, j) => {
    const disagree = counts.reduce((s, row) => s + BigInt(row[j]! * (n - row[j]!)), 0n);
    const kj = ratio(n1 * t * (M - t) - disagree * M, n1 * t * (M - t));
    return { category: labels?.[j] ?? j, proportion: ratio(t, M), kappa: kj, se0: seJ, z: kj / seJ };
  });
  return { kappa, observed, expected, se0, z, p: 2 * normalCdf(-Math.abs(z)), subjects: N, raters: n, categories };
}

/** num / den rounded to a double (within 1.5 ulps); NaN for 0 / 0. */
function ratio(num: bigint, den: bigint): number {
  return Number(num) / Number(den);
}

/**
 * Fleiss' kappa of reliability data (`data[rater][unit]`, null where missing) over `categories`.
 * Fleiss' kappa needs the same number of ratings per unit: units rated by fewer raters than
 * the most any unit has are left out (`left` counts them), and the raters need not be the same
 * people from unit to unit. Null when no unit has two ratings.
 */
export function fleissKappaOfRatings(data: ReliabilityData, categories: readonly number[]): (FleissKappa & { left: number }) | null {
  const units = data.reduce((m, row) => Math.max(m, row.length), 0);
  const index = new Map(categories.map((c, j) => [c, j]));
  const rows: number[][] = [];
  for (let u = 0; u < units; u++) {
    const row = new Array<number>(categories.length).fill(0);
    for (const r of data) {
      const v = r[u];
      if (v === null || v === undefined || Number.isNaN(v)) continue;
      const j = index.get(v);
      if (j === undefined) throw new StatsError(`fleissKappa: rating ${v} of unit ${u} is not one of the categories ${categories.join(', ')}`);
      row[j]!++;
    }
    rows.push(row);
  }
  const size = (row: number[]): number => row.reduce((a, b) => a + b, 0);
  const n = rows.reduce((m, row) => Math.max(m, size(row)), 0);
  const full = rows.filter((row) => size(row) === n);
  if (n < 2) return null;
  return { ...fleissKappa(full, categories), left: units - full.length - rows.filter((row) => size(row) === 0).length };
}
