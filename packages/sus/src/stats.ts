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
 * Quantile of ascending `sorted` values by linear interpolation between order statistics
 * (Hyndman & Fan type 7, the default of R and of numpy.quantile): h = (n - 1) p,
 * q = x[floor h] + (h - floor h)(x[floor h + 1] - x[floor h]). NaN for no values.
 */
export function quantile(sorted: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 1)) throw new StatsError(`quantile: the probability must lie in [0, 1]; got ${p}`);
  if (sorted.length === 0) return NaN;
  const h = (sorted.length - 1) * p;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, sorted.length - 1);
  const a = sorted[lo]!;
  const b = sorted[hi]!;
  return a + (h - lo) * (b - a);
}

// Cody's (1993) rational Chebyshev approximations of the normal distribution (ACM TOMS
// algorithm 715, ANORM), one set per range of |z|; relative error near 1e-16 in each tail.
const CODY_A = [2.2352520354606839287, 161.02823106855587881, 1067.6894854603709582, 18154.981253343561249, 0.065682337918207449113];
const CODY_B = [47.20258190468824187, 976.09855173777669322, 10260.932208618978205, 45507.789335026729956];
const CODY_C = [
  0.39894151208813466764, 8.8831497943883759412, 93.506656132177855979, 597.27027639480026226, 2494.5375852903726711,
  6848.1904505362823326, 11602.651437647350124, 9842.7148383839780218, 1.0765576773720192317e-8,
];
const CODY_D = [
  22.266688044328115691, 235.38790178262499861, 1519.377599407554805, 6485.558298266760755, 18615.571640885098091,
  34900.952721145977266, 38912.003286093271411, 19685.429676859990727,
];
const CODY_P = [0.21589853405795699, 0.1274011611602473639, 0.022235277870649807, 0.001421619193227893466, 2.9112874951168792e-5, 0.02307344176494017303];
const CODY_Q = [1.28426009614491121, 0.468238212480865118, 0.0659881378689285515, 0.00378239633202758244, 7.29751555083966205e-5];
const INV_SQRT_2PI = 0.398942280401432677939946059934;

/** exp(-y^2 / 2) with y^2 split as a part exact in floating point plus the rest, so large |y| keeps its precision. */
function halfGaussian(y: number): number {
  const head = Math.trunc(y * 16) / 16;
  return Math.exp(-head * head * 0.5) * Math.exp(-(y - head) * (y + head) * 0.5);
}

/**
 * Standard normal cumulative distribution P(Z <= z), accurate to about 1e-16 relative in both
 * tails (W. J. Cody 1993, the algorithm behind R's pnorm). For an upper tail use normalCdf(-z),
 * which keeps its precision where 1 - normalCdf(z) would round to 0.
 * @example 2 * normalCdf(-1.959963984540054) // 0.05
 */
export function normalCdf(z: number): number {
  if (Number.isNaN(z)) return NaN;
  const y = Math.abs(z);
  if (y <= 0.67448975) {
    let num = 0;
    let den = 0;
    if (y > Number.EPSILON / 2) {
      const zz = z * z;
      num = CODY_A[4]! * zz;
      den = zz;
      for (let i = 0; i < 3; i++) {
        num = (num + CODY_A[i]!) * zz;
        den = (den + CODY_B[i]!) * zz;
      }
    }
    return 0.5 + (z * (num + CODY_A[3]!)) / (den + CODY_B[3]!);
  }
  let tail: number;
  if (y <= Math.sqrt(32)) {
    let num = CODY_C[8]! * y;
    let den = y;
    for (let i = 0; i < 7; i++) {
      num = (num + CODY_C[i]!) * y;
      den = (den + CODY_D[i]!) * y;
    }
    tail = halfGaussian(y) * ((num + CODY_C[7]!) / (den + CODY_D[7]!));
  } else if (y < 38) {
    const inv = 1 / (y * y);
    let num = CODY_P[5]! * inv;
    let den = inv;
    for (let i = 0; i < 4; i++) {
      num = (num + CODY_P[i]!) * inv;
      den = (den + CODY_Q[i]!) * inv;
    }
    tail = halfGaussian(y) * ((INV_SQRT_2PI - (inv * (num + CODY_P[4]!)) / (den + CODY_Q[4]!)) / y);
  } else {
    tail = 0;
  }
  return z > 0 ? 1 - tail : tail;
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
 * (Phipson & Smyth 2010). The exact p equals SciPy's `permutation_test((d,), np.sum,
 * permutation_type='samples', n_resamples=np.inf)`. With no differences p is NaN (no test);
 * with only zero differences p is 1.
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
  if (m === 0) return { statistic: 0, p: diffs.length === 0 ? NaN : 1, n: diffs.length, method: 'exact' };
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
 * Wilcoxon signed-rank test, two-sided, as SciPy's `wilcoxon(d, zero_method='wilcox',
 * correction=True, method=M)` with M = 'exact' when there are at most 50 differences, none zero
 * and no two |d| tied, and M = 'approx' otherwise. Zero differences are dropped. The exact p is
 * min(1, 2 min(P(W+ <= w), P(W+ >= w))) under the null distribution of W+; the normal
 * approximation uses the tie-corrected variance n(n+1)(2n+1)/24 - sum(t^3 - t)/48 and a
 * continuity correction of 0.5 toward the mean. Differences within 1e-9 of each other are one
 * value and within 1e-9 of 0 are zero, so per-question means such as 2/3 - 1/3 and 1/3 tie.
 * The statistic is W+, the rank sum of the positive differences (SciPy's two-sided statistic is
 * min(W+, W-)). With no differences p is NaN (no test); with only zero differences p is 1.
 * @example wilcoxonSignedRank([1, 2, -3, 4, 5]).p // 0.3125 (exact)
 */
export function wilcoxonSignedRank(diffs: readonly number[]): PairedTestResult {
  const d = diffs.filter((x) => Math.abs(x) > TOL);
  const n = d.length;
  if (n === 0) return { statistic: 0, p: diffs.length === 0 ? NaN : 1, n: 0, method: 'exact' };
  const { ranks, tieSizes } = averageRanks(d.map(Math.abs));
  let w = 0;
  for (let i = 0; i < n; i++) if (d[i]! > 0) w += ranks[i]!;
  const hasTies = tieSizes.some((t) => t > 1);
  const hadZeros = n !== diffs.length;
  if (n <= 50 && !hasTies && !hadZeros) {
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
  return { statistic: w, p: Math.min(1, 2 * normalCdf(-Math.abs(z))), n, method: 'normal' };
}

/**
 * Holm's (1979) step-down adjustment of a family of p-values, as statsmodels'
 * `multipletests(p, method='holm')`: sorted ascending, adj(i) = max over j <= i of
 * min(1, (m - j + 1) p(j)); returned in input order. A NaN p (a comparison with no pairs, so no
 * test) stays NaN and is not counted in m, as in R's `p.adjust`.
 * @example holm([0.01, 0.04, 0.03]) // [0.03, 0.06, 0.06]
 */
export function holm(ps: readonly number[]): number[] {
  for (const p of ps) if (!(p >= 0 && p <= 1) && !Number.isNaN(p)) throw new StatsError(`holm: p-values must lie in [0, 1] (or be NaN for no test); got ${p}`);
  const order = ps.map((_, i) => i).filter((i) => !Number.isNaN(ps[i]!)).sort((a, b) => ps[a]! - ps[b]!);
  const m = order.length;
  const out = new Array<number>(ps.length).fill(NaN);
  let running = 0;
  order.forEach((i, k) => {
    running = Math.max(running, Math.min(1, (m - k) * ps[i]!));
    out[i] = running;
  });
  return out;
}
