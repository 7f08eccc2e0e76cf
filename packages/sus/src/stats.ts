// Descriptive statistics and paired tests used by the SUS report: mean, sample SD,
// type-7 quantiles, an exact/Monte-Carlo sign-flip permutation test, Wilcoxon's
// signed-rank test and Holm's step-down correction.

import { StatsError } from './errors.js';
import { createRng } from './rng.js';

/** Arithmetic mean; NaN for an empty list. */
export function mean(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

/** Sample standard deviation (denominator n - 1); NaN when n < 2. */
export function sampleSd(xs: readonly number[]): number {
  if (xs.length < 2) return NaN;
  const m = mean(xs);
  let s = 0;
  for (const x of xs) s += (x - m) * (x - m);
  return Math.sqrt(s / (xs.length - 1));
}

/**
 * Quantile by linear interpolation between order statistics (Hyndman & Fan type 7,
 * the default of R and NumPy): h = (n - 1) p, q = x[floor h] + (h - floor h)(x[floor h + 1] - x[floor h]).
 */
export function quantile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const h = (sorted.length - 1) * p;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, sorted.length - 1);
  const a = sorted[lo]!;
  const b = sorted[hi]!;
  return a + (h - lo) * (b - a);
}

/** Standard normal cumulative distribution (Numerical Recipes erfc, relative error below 1.2e-7). */
export function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.5 * x);
  const erfc =
    t *
    Math.exp(
      -x * x - 1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 +
        t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return z >= 0 ? 1 - erfc / 2 : erfc / 2;
}

/** Result of a paired two-sided test. */
export interface PairedTestResult {
  /** Test statistic: the sum of differences (sign-flip) or W+ (Wilcoxon). */
  statistic: number;
  /** Two-sided p-value. */
  p: number;
  /** Pairs used after dropping zero differences (Wilcoxon) or all pairs (sign-flip). */
  n: number;
  /** How the p-value was computed. */
  method: 'exact' | 'monte-carlo' | 'normal';
}

const TOL = 1e-9;

/**
 * Two-sided sign-flip permutation test of the mean of paired differences against 0.
 * Statistic: |sum of d|. Zero differences do not change the statistic and are left out of
 * the enumeration. With at most `exactMax` (20) non-zero differences every one of the 2^m
 * sign patterns is enumerated and p = (patterns with |sum| >= observed) / 2^m; beyond that,
 * `draws` random patterns from mulberry32(seed) give p = (1 + count) / (1 + draws)
 * (Phipson & Smyth 2010).
 * @example signFlipTest([0.5, 1, 0.25]).p // 0.25
 */
export function signFlipTest(
  diffs: readonly number[],
  opts: { seed?: number; draws?: number; exactMax?: number } = {},
): PairedTestResult {
  const exactMax = opts.exactMax ?? 20;
  const d = diffs.filter((x) => Math.abs(x) > TOL);
  const observed = Math.abs(d.reduce((a, b) => a + b, 0));
  const m = d.length;
  if (m === 0) return { statistic: 0, p: 1, n: diffs.length, method: 'exact' };
  if (m <= exactMax) {
    // Gray-code walk: each step flips exactly one sign, so the sum updates in O(1).
    const sign = new Int8Array(m).fill(1);
    let sum = d.reduce((a, b) => a + b, 0);
    let count = 0;
    const total = 2 ** m;
    for (let k = 0; k < total; k++) {
      if (Math.abs(sum) >= observed - TOL) count++;
      if (k + 1 === total) break;
      const bit = Math.clz32(0) - 1 - Math.clz32(((k + 1) & -(k + 1)) >>> 0);
      sign[bit] = -sign[bit]! as 1 | -1;
      sum += 2 * sign[bit]! * d[bit]!;
    }
    return { statistic: observed, p: count / total, n: diffs.length, method: 'exact' };
  }
  const draws = opts.draws ?? 20000;
  const rng = createRng(opts.seed ?? 1);
  let count = 0;
  for (let b = 0; b < draws; b++) {
    let s = 0;
    for (let i = 0; i < m; i++) s += rng() < 0.5 ? -d[i]! : d[i]!;
    if (Math.abs(s) >= observed - TOL) count++;
  }
  return { statistic: observed, p: (1 + count) / (1 + draws), n: diffs.length, method: 'monte-carlo' };
}

/** Average ranks (1-based) of values, ties sharing the mean of their positions; also the tie group sizes. */
export function averageRanks(xs: readonly number[]): { ranks: number[]; tieSizes: number[] } {
  const idx = xs.map((_, i) => i).sort((a, b) => xs[a]! - xs[b]!);
  const ranks = new Array<number>(xs.length).fill(0);
  const tieSizes: number[] = [];
  let i = 0;
  while (i < idx.length) {
    let j = i;
    while (j + 1 < idx.length && Math.abs(xs[idx[j + 1]!]! - xs[idx[i]!]!) <= TOL) j++;
    const r = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) ranks[idx[k]!] = r;
    tieSizes.push(j - i + 1);
    i = j + 1;
  }
  return { ranks, tieSizes };
}

/**
 * Wilcoxon signed-rank test, two-sided, with the conventions of R's `wilcox.test(x, y,
 * paired = TRUE)`: zero differences are dropped; with fewer than 50 remaining pairs and no
 * ties or zeros the exact null distribution of W+ is used (p = min(1, 2 min(P(W <= w),
 * P(W >= w)))); otherwise the normal approximation with the tie-corrected variance
 * n(n+1)(2n+1)/24 - sum(t^3 - t)/48 and a continuity correction of 0.5 toward the mean.
 * (SciPy gives the same numbers with `correction=True`.)
 * @example wilcoxonSignedRank([1, 2, -3, 4, 5]).p // 0.3125 (exact)
 */
export function wilcoxonSignedRank(diffs: readonly number[]): PairedTestResult {
  const d = diffs.filter((x) => Math.abs(x) > TOL);
  const n = d.length;
  if (n === 0) return { statistic: 0, p: 1, n: 0, method: 'exact' };
  const { ranks, tieSizes } = averageRanks(d.map(Math.abs));
  let w = 0;
  for (let i = 0; i < n; i++) if (d[i]! > 0) w += ranks[i]!;
  const hasTies = tieSizes.some((t) => t > 1);
  const hadZeros = n !== diffs.length;
  if (n < 50 && !hasTies && !hadZeros) {
    // counts[s] = number of subsets of {1..n} with rank sum s.
    const maxSum = (n * (n + 1)) / 2;
    const counts = new Float64Array(maxSum + 1);
    counts[0] = 1;
    for (let r = 1; r <= n; r++) for (let s = maxSum; s >= r; s--) counts[s]! += counts[s - r]!;
    const total = 2 ** n;
    let below = 0;
    let above = 0;
    for (let s = 0; s <= maxSum; s++) {
      if (s <= w + TOL) below += counts[s]!;
      if (s >= w - TOL) above += counts[s]!;
    }
    return { statistic: w, p: Math.min(1, (2 * Math.min(below, above)) / total), n, method: 'exact' };
  }
  const mu = (n * (n + 1)) / 4;
  let variance = (n * (n + 1) * (2 * n + 1)) / 24;
  for (const t of tieSizes) variance -= (t * t * t - t) / 48;
  if (variance <= 0) return { statistic: w, p: 1, n, method: 'normal' };
  const diff = w - mu;
  const z = (diff - Math.sign(diff) * 0.5) / Math.sqrt(variance);
  return { statistic: w, p: Math.min(1, 2 * (1 - normalCdf(Math.abs(z)))), n, method: 'normal' };
}

/**
 * Holm's (1979) step-down adjustment of a family of p-values: sorted ascending,
 * adj(i) = max over j <= i of min(1, (m - j + 1) p(j)); returned in input order.
 * @example holm([0.01, 0.04, 0.03]) // [0.03, 0.06, 0.06]
 */
export function holm(ps: readonly number[]): number[] {
  for (const p of ps) if (!(p >= 0 && p <= 1)) throw new StatsError(`holm: p-values must lie in [0, 1]; got ${p}`);
  const m = ps.length;
  const order = ps.map((_, i) => i).sort((a, b) => ps[a]! - ps[b]!);
  const out = new Array<number>(m).fill(1);
  let running = 0;
  order.forEach((i, k) => {
    running = Math.max(running, Math.min(1, (m - k) * ps[i]!));
    out[i] = running;
  });
  return out;
}
