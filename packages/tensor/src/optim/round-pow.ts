// x ** p for x in [0, 1] rounded correctly to the nearest double. transformers' polynomial schedule
// raises its remaining fraction to `power` with Python's **, the C library's pow, which glibc rounds
// correctly at all but about one argument in a thousand; V8's ** misses the nearest double at about
// one in twelve. exp(p ln x) is computed in double-double arithmetic (about 100 bits), then rounded once;
// near 1, x ** p - 1 from ln(1 + (x - 1)) and e^z - 1, to their own precision.

import { add, divideInt, mul, quickTwoSum, scale, twoSum, type DoubleDouble } from './double-double.js';

const LN2: DoubleDouble = { hi: 0.6931471805599453, lo: 2.3190468138462996e-17 };
/** exp's argument is divided by 2^HALVINGS before its Taylor series, and the sum squared back. */
const HALVINGS = 6;
const TAYLOR_TERMS = 14;

/** e^z as 2^k · m, m in double-double about 1, for |z| < 745. */
function expParts(z: DoubleDouble): { k: number; m: DoubleDouble } {
  const k = Math.round(z.hi / LN2.hi);
  // r = (z - k ln 2) / 2^HALVINGS, |r| <= ln 2 / 2^(HALVINGS + 1)
  const r = scale(add(z, mul(LN2, { hi: -k, lo: 0 })), 2 ** -HALVINGS);
  let m: DoubleDouble = { hi: 1, lo: 0 };
  for (let n = TAYLOR_TERMS; n >= 1; n--) m = add({ hi: 1, lo: 0 }, divideInt(mul(m, r), n));
  for (let i = 0; i < HALVINGS; i++) m = mul(m, m);
  return { k, m };
}

/** e^z in double-double, for |z| < 700. */
function exp(z: DoubleDouble): DoubleDouble {
  const { k, m } = expParts(z);
  return scale(m, 2 ** k);
}

/**
 * ln x in double-double for a positive x: x = m 2^e with m in [1, 2), ln x = e ln 2 + ln m, and ln m
 * Math.log's refined by one step of ln(m e^-y) = d - d^2/2 + d^3/3 with d = m e^-y - 1.
 */
function log(x: number): DoubleDouble {
  let e = Math.floor(Math.log2(x));
  if (x / 2 ** e >= 2) e++; // Math.log2 rounded up to an integer just below a power of 2
  if (x / 2 ** e < 1) e--;
  const m = x / 2 ** e;
  const y = Math.log(m);
  const d = add(mul({ hi: m, lo: 0 }, exp({ hi: -y, lo: 0 })), { hi: -1, lo: 0 });
  const d2 = mul(d, d);
  const series = add(d, add(scale(d2, -0.5), scale(mul(d2, d), 1 / 3)));
  return add(mul(LN2, { hi: e, lo: 0 }), add({ hi: y, lo: 0 }, series));
}

/** e^z - 1 for |z| <= 2^-10 in double-double, to its relative precision: the Taylor series. */
function expm1Small(z: DoubleDouble): DoubleDouble {
  // z (1 + z/2 (1 + z/3 (1 + ...))): each factor 1 + z/n, nested from the last term.
  let sum: DoubleDouble = { hi: 1, lo: 0 };
  for (let n = TAYLOR_TERMS; n >= 2; n--) sum = add({ hi: 1, lo: 0 }, divideInt(mul(sum, z), n));
  return mul(sum, z);
}

/** ln(1 + u) for |u| <= 2^-10 in double-double, to its relative precision: Σ (-1)^(n+1) u^n / n. */
function log1pSmall(u: number): DoubleDouble {
  const z: DoubleDouble = { hi: u, lo: 0 };
  let sum: DoubleDouble = divideInt({ hi: TAYLOR_TERMS % 2 === 1 ? 1 : -1, lo: 0 }, TAYLOR_TERMS);
  for (let n = TAYLOR_TERMS - 1; n >= 1; n--) sum = add(divideInt({ hi: n % 2 === 1 ? 1 : -1, lo: 0 }, n), mul(sum, z));
  return mul(sum, z);
}

const BITS = new DataView(new ArrayBuffer(8));

/** The double next to a nonzero finite x, away from 0 when `outward`. */
function nextDouble(x: number, outward: boolean): number {
  BITS.setFloat64(0, x);
  BITS.setBigUint64(0, BITS.getBigUint64(0) + (outward ? 1n : -1n));
  return BITS.getFloat64(0);
}

/**
 * 1 + t rounded once to the nearest double: t's two parts are first summed rounding to odd (the last
 * bit set when inexact), which keeps a sum just off a midpoint of 1 + t's doubles from landing on it.
 */
function onePlus(t: DoubleDouble): number {
  const s = twoSum(1, t.hi);
  const u = twoSum(s.lo, t.lo);
  let tail = u.hi;
  if (u.lo !== 0) {
    BITS.setFloat64(0, tail);
    if ((BITS.getBigUint64(0) & 1n) === 0n) tail = nextDouble(tail, Math.sign(u.lo) === Math.sign(tail));
  }
  return s.hi + tail;
}

/**
 * x ** p rounded to the nearest double, for x in [0, 1] and a finite p >= 0 (as C's pow: 0 ** 0 = 1);
 * a result below 2^-1022, subnormal, is rounded twice and may be a last bit off, and one below about
 * e^-745 is 0. Near 1, where x ** p - 1 is small and results crowd the midpoints between doubles (the
 * square root of 1 - 2^-53), x ** p - 1 is computed to its own relative precision.
 * @example roundedPow(0.25, 0.5) === 0.5
 */
export function roundedPow(x: number, p: number): number {
  if (!(x >= 0 && x <= 1) || !(p >= 0) || !Number.isFinite(p)) throw new RangeError(`roundedPow: expected x in [0, 1] and a finite p >= 0, got ${x} ** ${p}`);
  if (p === 0 || x === 1) return 1;
  if (x === 0) return 0;
  const NEAR = 2 ** -10;
  if (1 - x <= NEAR) {
    const z = mul(log1pSmall(x - 1), { hi: p, lo: 0 }); // x - 1 is exact (Sterbenz)
    if (Math.abs(z.hi) <= NEAR) return onePlus(expm1Small(z));
  }
  // Rounded about 1, then scaled by 2^k exactly: scaling the low part first would drop its bits below 2^-1074.
  const { k, m } = expParts(mul(log(x), { hi: p, lo: 0 }));
  return (m.hi + m.lo) * 2 ** k;
}
