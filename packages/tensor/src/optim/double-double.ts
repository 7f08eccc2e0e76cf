// Double-double arithmetic: a value carried as the unevaluated sum of two doubles (about 106 bits), for
// results that must come out rounded correctly once (roundedCos, roundedPow).

/** A value as an unevaluated sum hi + lo of two doubles, |lo| <= ulp(hi) / 2. */
export interface DoubleDouble {
  hi: number;
  lo: number;
}

const SPLITTER = 134217729; // 2^27 + 1: Dekker's split of a double into two 26-bit halves

/** a + b exactly. */
export function twoSum(a: number, b: number): DoubleDouble {
  const hi = a + b;
  const bb = hi - a;
  return { hi, lo: a - (hi - bb) + (b - bb) };
}

/** a + b exactly, for |a| >= |b|. */
export function quickTwoSum(a: number, b: number): DoubleDouble {
  const hi = a + b;
  return { hi, lo: b - (hi - a) };
}

/** a · b exactly. */
export function twoProd(a: number, b: number): DoubleDouble {
  const p = a * b;
  const ta = SPLITTER * a;
  const ah = ta - (ta - a);
  const al = a - ah;
  const tb = SPLITTER * b;
  const bh = tb - (tb - b);
  const bl = b - bh;
  return { hi: p, lo: ah * bh - p + ah * bl + al * bh + al * bl };
}

export function add(a: DoubleDouble, b: DoubleDouble): DoubleDouble {
  const s = twoSum(a.hi, b.hi);
  const t = twoSum(a.lo, b.lo);
  const u = quickTwoSum(s.hi, s.lo + t.hi);
  return quickTwoSum(u.hi, u.lo + t.lo);
}

export function mul(a: DoubleDouble, b: DoubleDouble): DoubleDouble {
  const p = twoProd(a.hi, b.hi);
  return quickTwoSum(p.hi, p.lo + (a.hi * b.lo + a.lo * b.hi));
}

export function neg(a: DoubleDouble): DoubleDouble {
  return { hi: -a.hi, lo: -a.lo };
}

/** a · s, each part multiplied by s (exactly when s is a power of two). */
export function scale(a: DoubleDouble, s: number): DoubleDouble {
  return { hi: a.hi * s, lo: a.lo * s };
}

/** a / n for an integer n. */
export function divideInt(a: DoubleDouble, n: number): DoubleDouble {
  const q = a.hi / n;
  const r = add(a, neg(twoProd(q, n)));
  return quickTwoSum(q, (r.hi + r.lo) / n);
}
