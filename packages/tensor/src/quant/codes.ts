// The code books of the quantization formats (QLoRA's NF4 levels, bitsandbytes' dynamic 8-bit map), the
// nearest-code rule that defines which code a value gets, and decision tables that apply the same rule
// without a search: thresholds found from nearestCode itself, so both agree on every f32 in [-2, 2].

/**
 * The 16 NF4 code values of QLoRA (Dettmers et al. 2023, appendix E), as bitsandbytes' get_4bit_type('nf4')
 * lists them: quantiles of N(0, 1) normalized to [-1, 1], with an exact zero at index 7.
 */
export const NF4_CODE: Float32Array = Float32Array.from([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
  -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]);

/** Values per NF4 block (one absmax each). */
export const NF4_BLOCK = 64;
/** NF4 absmaxes per block of the double quantization (one f32 scale each). */
export const NF4_ABSMAX_BLOCK = 256;

/**
 * bitsandbytes' signed dynamic 8-bit map (create_dynamic_map(signed=True, max_exponent_bits=7)), sorted:
 * for each decade 10^(i-6), i = 0..6, the 2^i midpoints of linspace(0.1, 1, 2^i + 1), both signs; plus 0
 * and 1. 256 values in [-1, 1]. Computed in float64 and rounded once to f32.
 */
export const DYNAMIC_CODE: Float32Array = (() => {
  const data: number[] = [];
  for (let i = 0; i < 7; i++) {
    const items = 2 ** i + 1;
    const scale = 10 ** (-6 + i);
    for (let j = 0; j + 1 < items; j++) {
      const lo = 0.1 + (0.9 * j) / (items - 1);
      const hi = 0.1 + (0.9 * (j + 1)) / (items - 1);
      const mean = (lo + hi) / 2;
      data.push(scale * mean, -scale * mean);
    }
  }
  data.push(0, 1);
  return Float32Array.from(data.sort((a, b) => a - b));
})();

/** Index of the value of a sorted code nearest to x (ties to the lower index). */
export function nearestCode(code: Float32Array, x: number): number {
  let lo = 0;
  let hi = code.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (code[mid]! <= x) lo = mid;
    else hi = mid;
  }
  return Math.abs(x - code[lo]!) <= Math.abs(code[hi]! - x) ? lo : hi;
}

/** The largest and smallest f32 a decision table covers: quantizers scale values into [-1, 1] before coding. */
export const TABLE_RANGE = 2;

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** A key of an f32 that orders as its value does (-0 just below +0): a number in [0, 2^32). */
function orderedKey(x: number): number {
  scratchF32[0] = x;
  const bits = scratchU32[0]!;
  return bits >= 0x80000000 ? 0xffffffff - bits : bits + 0x80000000;
}

function fromOrderedKey(key: number): number {
  scratchU32[0] = key >= 0x80000000 ? key - 0x80000000 : 0xffffffff - key;
  return scratchF32[0]!;
}

/**
 * upper[c] is the largest f32 that nearestCode(code, ·) sends to c or below, found by bisection over the f32s
 * between code[c] and code[c + 1]; upper[last] is +Infinity. On [-2, 2], where nearestCode is monotone in x
 * (checked exhaustively over every f32 there), nearestCode(code, x) = #{c : x > upper[c]}.
 */
export function codeThresholds(code: Float32Array): Float64Array {
  const upper = new Float64Array(code.length);
  upper[code.length - 1] = Infinity;
  for (let c = 0; c + 1 < code.length; c++) {
    let lo = orderedKey(code[c]!);
    let hi = orderedKey(code[c + 1]!);
    if (nearestCode(code, code[c]!) !== c || nearestCode(code, code[c + 1]!) !== c + 1) {
      throw new Error(`internal: code value ${c} or ${c + 1} is not its own nearest code`);
    }
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (nearestCode(code, fromOrderedKey(mid)) <= c) lo = mid;
      else hi = mid;
    }
    upper[c] = fromOrderedKey(lo);
  }
  return upper;
}

/** Buckets per unit of the NF4 table: each bucket of width 1/256 holds at most one threshold. */
export const NF4_BUCKETS_PER_UNIT = 256;

/**
 * The NF4 decision table: for x in [-2, 2], nearestCode(NF4_CODE, x) = b + (x > upper[b] ? 1 : 0) with
 * b = bucket[((x + 2) * 256) | 0]. bucket[i] counts the thresholds whose bucket is below i; as the bucket of
 * x is monotone in x, every such threshold is below x, every threshold of a later bucket above it, and the
 * one compare settles the threshold sharing x's bucket (the build checks no bucket holds two).
 */
export interface Nf4Table {
  readonly bucket: Uint8Array;
  readonly upper: Float64Array;
}

let builtNf4: Nf4Table | undefined;

/** The NF4 decision table, built on first use. */
export function nf4Table(): Nf4Table {
  if (builtNf4 !== undefined) return builtNf4;
  const upper = codeThresholds(NF4_CODE);
  const size = 2 * TABLE_RANGE * NF4_BUCKETS_PER_UNIT + 1;
  const bucketOf = (x: number) => ((x + TABLE_RANGE) * NF4_BUCKETS_PER_UNIT) | 0;
  const bucket = new Uint8Array(size);
  const held = new Uint8Array(size);
  for (let c = 0; c + 1 < NF4_CODE.length; c++) {
    const k = bucketOf(upper[c]!);
    if (held[k]! > 0) throw new Error(`internal: NF4 thresholds ${c - 1} and ${c} share bucket ${k}`);
    held[k] = 1;
    for (let i = k + 1; i < size; i++) bucket[i]!++;
  }
  builtNf4 = { bucket, upper };
  return builtNf4;
}

let dynamicUpper: Float64Array | undefined;

/** Thresholds of DYNAMIC_CODE (codeThresholds), built on first use; 256 entries, the last +Infinity. */
export function dynamicThresholds(): Float64Array {
  dynamicUpper ??= codeThresholds(DYNAMIC_CODE);
  return dynamicUpper;
}

/**
 * nearestCode(DYNAMIC_CODE, x) for x in [-2, 2]: the count of thresholds below x, by an 8-step binary
 * search over the 256 sorted thresholds (upper[255] = +Infinity is never below x).
 */
export function dynamicCodeOf(upper: Float64Array, x: number): number {
  let c = 0;
  if (x > upper[c + 127]!) c += 128;
  if (x > upper[c + 63]!) c += 64;
  if (x > upper[c + 31]!) c += 32;
  if (x > upper[c + 15]!) c += 16;
  if (x > upper[c + 7]!) c += 8;
  if (x > upper[c + 3]!) c += 4;
  if (x > upper[c + 1]!) c += 2;
  if (x > upper[c]!) c += 1;
  return c;
}
