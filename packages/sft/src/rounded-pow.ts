// x ** p for x in [0, 1] rounded correctly to the nearest double. transformers' polynomial schedule
// raises its remaining fraction to `power` with Python's **, the C library's pow, which glibc rounds
// correctly at all but about one argument in a thousand; V8's ** misses the nearest double at about
// one in twelve. exp(p ln x) is computed in double-double arithmetic (about 100 bits), then rounded once.

/** A value as an unevaluated sum hi + lo of two doubles. */
interface DoubleDouble {
  hi: number;
  lo: number;
}

const SPLITTER = 134217729; // 2^27 + 1: Dekker's split of a double into two 26-bit halves
const LN2: DoubleDouble = { hi: 0.6931471805599453, lo: 2.3190468138462996e-17 };
/** exp's argument is divided by 2^HALVINGS before its Taylor series, and the sum squared back. */
const HALVINGS = 6;
const TAYLOR_TERMS = 14;

function twoSum(a: number, b: number): DoubleDouble {
  const hi = a + b;
  const bb = hi - a;
  return { hi, lo: a - (hi - bb) + (b - bb) };
}

function quickTwoSum(a: number, b: number): DoubleDouble {
  const hi = a + b;
  return { hi, lo: b - (hi - a) };
}

function twoProd(a: number, b: number): DoubleDouble {
  const p = a * b;
  const ta = SPLITTER * a;
  const ah = ta - (ta - a);
  const al = a - ah;
  const tb = SPLITTER * b;
  const bh = tb - (tb - b);
  const bl = b - bh;
  return { hi: p, lo: ah * bh - p + ah * bl + al * bh + al * bl };
}

function add(a: DoubleDouble, b: DoubleDouble): DoubleDouble {
  const s = twoSum(a.hi, b.hi);
  const t = twoSum(a.lo, b.lo);
  const u = quickTwoSum(s.hi, s.lo + t.hi);
  return quickTwoSum(u.hi, u.lo + t.lo);
}

function mul(a: DoubleDouble, b: DoubleDouble): DoubleDouble {
  const p = twoProd(a.hi, b.hi);
  return quickTwoSum(p.hi, p.lo + (a.hi * b.lo + a.lo * b.hi));
}

function scale(a: DoubleDouble, s: number): DoubleDouble {
  return { hi: a.hi * s, lo: a.lo * s };
}

/** e^z in double-double, for |z| < 700. */
function exp(z: DoubleDouble): DoubleDouble {
  const k = Math.round(z.hi / LN2.hi);
  // r = (z - k ln 2) / 2^HALVINGS, |r| <= ln 2 / 2^(HALVINGS + 1)
  const r = scale(add(z, mul(LN2, { hi: -k, lo: 0 })), 2 ** -HALVINGS);
  let sum: DoubleDouble = { hi: 1, lo: 0 };
  for (let n = TAYLOR_TERMS; n >= 1; n--) {
    const term = mul(sum, r);
    const q = term.hi / n;
    const remainder = add(term, { hi: -twoProd(q, n).hi, lo: -twoProd(q, n).lo });
    sum = add({ hi: 1, lo: 0 }, quickTwoSum(q, (remainder.hi + remainder.lo) / n));
  }
  for (let i = 0; i < HALVINGS; i++) sum = mul(sum, sum);
  return scale(sum, 2 ** k);
}

/** ln x in double-double for a positive normal x: Math.log refined by one step of ln(x e^-y) = d - d^2/2 + d^3/3. */
function log(x: number): DoubleDouble {
  const y = Math.log(x);
  const d = add(mul({ hi: x, lo: 0 }, exp({ hi: -y, lo: 0 })), { hi: -1, lo: 0 });
  const d2 = mul(d, d);
  const series = add(d, add(scale(d2, -0.5), scale(mul(d2, d), 1 / 3)));
  return add({ hi: y, lo: 0 }, series);
}

/**
 * x ** p rounded to the nearest double, for x in [0, 1] and a finite p >= 0 (as C's pow: 0 ** 0 = 1).
 * @example roundedPow(0.25, 0.5) === 0.5
 */
export function roundedPow(x: number, p: number): number {
  if (!(x >= 0 && x <= 1) || !(p >= 0) || !Number.isFinite(p)) throw new RangeError(`roundedPow: expected x in [0, 1] and a finite p >= 0, got ${x} ** ${p}`);
  if (p === 0 || x === 1) return 1;
  if (x === 0) return 0;
  const value = exp(mul(log(x), { hi: p, lo: 0 }));
  return value.hi + value.lo;
}
