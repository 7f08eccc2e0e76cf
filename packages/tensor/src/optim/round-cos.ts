// The cosine of a double rounded correctly to the nearest double. transformers' cosine schedules call
// Python's math.cos, the C library's: glibc's rounds so at all but about one argument in a thousand,
// V8's Math.cos (fdlibm's) misses at about one in thirty, and with it 13 of the 630 rates of HuaTuo's
// run under a cosine schedule would differ from PyTorch's in the last bit. The argument is reduced by
// π/2 and the Taylor series summed in double-double arithmetic (about 106 bits), then rounded once.

import { add, divideInt, mul, neg, twoProd, type DoubleDouble } from './double-double.js';

/** π/2 as three doubles (about 160 bits). */
const HALF_PI = [1.5707963267948966, 6.123233995736766e-17, -1.4973849048591698e-33] as const;

/** 1 / n! for n = 0..TERMS: enough that |r|^n / n! < 2^-110 for |r| <= π/4. */
const TERMS = 30;
const INVERSE_FACTORIAL: DoubleDouble[] = [{ hi: 1, lo: 0 }];
for (let n = 1; n <= TERMS; n++) INVERSE_FACTORIAL.push(divideInt(INVERSE_FACTORIAL[n - 1]!, n));

/** Σ (-1)^j r2^j / (2j + offset)! by Horner's rule, for offset 0 (cos) or 1 (sin / r). */
function alternatingSeries(r2: DoubleDouble, offset: 0 | 1): DoubleDouble {
  const top = TERMS - ((TERMS - offset) % 2);
  let sum = INVERSE_FACTORIAL[top]!;
  for (let n = top - 2; n >= offset; n -= 2) {
    sum = add(INVERSE_FACTORIAL[n]!, neg(mul(sum, r2)));
  }
  return sum;
}

/**
 * cos(x) rounded to the nearest double, for finite |x| < 2^30 (the reduction keeps its accuracy there).
 * @example roundedCos(Math.PI) === -1
 */
export function roundedCos(x: number): number {
  if (!Number.isFinite(x) || Math.abs(x) >= 2 ** 30) throw new RangeError(`roundedCos: expected a finite |x| < 2^30, got ${x}`);
  const k = Math.round(x / HALF_PI[0]);
  let r = add({ hi: x, lo: 0 }, neg(twoProd(k, HALF_PI[0])));
  r = add(r, neg(twoProd(k, HALF_PI[1])));
  r = add(r, { hi: -k * HALF_PI[2], lo: 0 });
  const r2 = mul(r, r);
  const quadrant = ((k % 4) + 4) % 4;
  const value = quadrant % 2 === 0 ? alternatingSeries(r2, 0) : mul(r, alternatingSeries(r2, 1));
  const rounded = value.hi + value.lo;
  return quadrant === 1 || quadrant === 2 ? -rounded : rounded;
}
