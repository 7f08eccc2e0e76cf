// The host quantizers, giving byte for byte what reference/quant.ts gives: Float32Array loops that find codes
// by decision tables (codes.ts) instead of a search per value, two NF4 codes per byte write, and f16 bit
// patterns staged a chunk at a time into a reused f32 buffer. Other inputs, and any block or row holding a
// NaN or infinity (or scaled out of the tables' range), go through the reference.
import { f16BitsToF32 } from '../f16-bits.js';
import { refQuantizeInt8, refQuantizeNf4 } from '../reference/quant.js';
import { DYNAMIC_CODE, NF4_ABSMAX_BLOCK, NF4_BLOCK, NF4_CODE, TABLE_RANGE, NF4_BUCKETS_PER_UNIT, dynamicCodeOf, dynamicThresholds, nearestCode, nf4Table } from './codes.js';
import type { Int8Weight, Nf4Weight } from './formats.js';

/** Rounds half to even, as torch.round does. */
function roundEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** 1.5 * 2^52: y + ROUND - ROUND rounds y to an integer, half to even, for |y| < 2^51. */
const ROUND = 6755399441055744;

/**
 * Codes and absmaxes of rows [r0, r1) of an int8 weight, the row values read from src at (r * cols - offset).
 * A row is finite with a finite scale, so |w * s| stays below 2^51 (within 2 * 127 in fact) and the
 * magic-number rounding is round-half-even exactly.
 */
function int8Rows(src: Float32Array, offset: number, r0: number, r1: number, cols: number, codes: Int8Array, absmax: Float32Array): void {
  for (let r = r0; r < r1; r++) {
    const from = r * cols - offset;
    const to = from + cols;
    let m = 0;
    for (let i = from; i < to; i++) m = Math.max(m, Math.abs(src[i]!));
    absmax[r] = m;
    if (m === 0) continue;
    const s = 127 / absmax[r]!;
    const shift = offset;
    if (m < Infinity && s < Infinity) {
      for (let i = from; i < to; i++) codes[i + shift] = src[i]! * s + ROUND - ROUND;
    } else {
      for (let i = from; i < to; i++) codes[i + shift] = roundEven(src[i]! * s);
    }
  }
}

/**
 * Codes and absmaxes of the NF4 blocks covering elements [first, end) (first a multiple of 64), element i read
 * from src[i - offset]. In a block with finite absmax m and scale inv, |w * inv| is within 1 + 2^-21, inside the
 * decision table's [-2, 2].
 */
function nf4Blocks(src: Float32Array, offset: number, first: number, end: number, absmax: Float32Array, packed: Uint8Array): void {
  const { bucket, upper } = nf4Table();
  for (let start = first; start < end; start += NF4_BLOCK) {
    const stop = Math.min(end, start + NF4_BLOCK);
    let m = 0;
    for (let i = start - offset; i < stop - offset; i++) m = Math.max(m, Math.abs(src[i]!));
    const b = start / NF4_BLOCK;
    absmax[b] = m;
    const inv = m === 0 ? 0 : Math.fround(1 / absmax[b]!);
    if (!(m < Infinity && inv < Infinity)) {
      for (let i = start; i < stop; i++) {
        const q = nearestCode(NF4_CODE, Math.fround(src[i - offset]! * inv));
        packed[i >> 1]! |= i % 2 === 0 ? q << 4 : q;
      }
      continue;
    }
    let i = start;
    for (; i + 1 < stop; i += 2) {
      const x0 = Math.fround(src[i - offset]! * inv);
      const x1 = Math.fround(src[i + 1 - offset]! * inv);
      const b0 = bucket[((x0 + TABLE_RANGE) * NF4_BUCKETS_PER_UNIT) | 0]!;
      const b1 = bucket[((x1 + TABLE_RANGE) * NF4_BUCKETS_PER_UNIT) | 0]!;
      const q0 = x0 > upper[b0]! ? b0 + 1 : b0;
      const q1 = x1 > upper[b1]! ? b1 + 1 : b1;
      packed[i >> 1] = (q0 << 4) | q1;
    }
    if (i < stop) {
      const x0 = Math.fround(src[i - offset]! * inv);
      const b0 = bucket[((x0 + TABLE_RANGE) * NF4_BUCKETS_PER_UNIT) | 0]!;
      packed[i >> 1] = (x0 > upper[b0]! ? b0 + 1 : b0) << 4;
    }
  }
}

/** bitsandbytes' quantize_blockwise: per block, absmax scale and the nearest DYNAMIC_CODE index of x / scale. */
export function quantizeBlockwise8(x: Float32Array, block: number): { codes: Uint8Array; scales: Float32Array } {
  const upper = dynamicThresholds();
  const codes = new Uint8Array(x.length);
  const scales = new Float32Array(Math.ceil(x.length / block));
  for (let b = 0; b < scales.length; b++) {
    const end = Math.min(x.length, (b + 1) * block);
    let m = 0;
    for (let i = b * block; i < end; i++) m = Math.max(m, Math.abs(x[i]!));
    scales[b] = m;
    const inv = m === 0 ? 0 : Math.fround(1 / scales[b]!);
    const fast = m < Infinity && inv < Infinity;
    for (let i = b * block; i < end; i++) {
      const v = Math.fround(x[i]! * inv);
      codes[i] = fast ? dynamicCodeOf(upper, v) : nearestCode(DYNAMIC_CODE, v);
    }
  }
  return { codes, scales };
}

/** The double quantization of NF4's block absmaxes: mean subtracted, then blockwise 8-bit in blocks of 256. */
function finishNf4(rows: number, cols: number, absmax: Float32Array, packed: Uint8Array): Nf4Weight {
  const blocks = absmax.length;
  let total = 0;
  for (let b = 0; b < blocks; b++) total += absmax[b]!;
  const offset = Math.fround(total / blocks);
  const centered = new Float32Array(blocks);
  for (let b = 0; b < blocks; b++) centered[b] = absmax[b]! - offset;
  const { codes, scales } = quantizeBlockwise8(centered, NF4_ABSMAX_BLOCK);
  return { format: 'nf4', rows, cols, packed, absmaxCodes: codes, absmaxScales: scales, absmaxOffset: offset };
}

/** Quantizes a row-major [rows, cols] weight: q = round(w * 127 / absmax_row), half to even. */
export function quantizeInt8(w: ArrayLike<number>, rows: number, cols: number): Int8Weight {
  if (!(w instanceof Float32Array) || w.length < rows * cols) return refQuantizeInt8(w, rows, cols);
  const codes = new Int8Array(rows * cols);
  const absmax = new Float32Array(rows);
  int8Rows(w, 0, 0, rows, cols, codes, absmax);
  return { format: 'int8', rows, cols, codes, absmax };
}

/** Quantizes a row-major [rows, cols] weight to NF4 (blocks of 64) with double quantization (blocks of 256). */
export function quantizeNf4(w: ArrayLike<number>, rows: number, cols: number): Nf4Weight {
  const n = rows * cols;
  if (!(w instanceof Float32Array) || w.length < n) return refQuantizeNf4(w, rows, cols);
  const absmax = new Float32Array(Math.ceil(n / NF4_BLOCK));
  const packed = new Uint8Array(Math.ceil(n / 2));
  nf4Blocks(w, 0, 0, n, absmax, packed);
  return finishNf4(rows, cols, absmax, packed);
}

let f16Values: Float32Array | undefined;

/** The f32 value of every f16 bit pattern (exact), built on first use. */
function f16Table(): Float32Array {
  f16Values ??= f16BitsToF32(Uint16Array.from({ length: 65536 }, (_, h) => h));
  return f16Values;
}

/** Elements staged from f16 at a time: a multiple of NF4_BLOCK, small enough to stay in cache. */
const STAGE = 16384;

/** quantizeInt8 of the f32 values of f16 bit patterns, converted a few rows at a time. */
export function quantizeInt8F16(bits: Uint16Array, rows: number, cols: number): Int8Weight {
  const n = rows * cols;
  if (bits.length < n) return refQuantizeInt8(f16BitsToF32(bits), rows, cols);
  const table = f16Table();
  const codes = new Int8Array(n);
  const absmax = new Float32Array(rows);
  const step = Math.max(1, Math.floor(STAGE / Math.max(1, cols)));
  const stage = new Float32Array(Math.min(n, step * cols));
  for (let r0 = 0; r0 < rows; r0 += step) {
    const r1 = Math.min(rows, r0 + step);
    const from = r0 * cols;
    const to = r1 * cols;
    for (let i = from; i < to; i++) stage[i - from] = table[bits[i]!]!;
    int8Rows(stage, from, r0, r1, cols, codes, absmax);
  }
  return { format: 'int8', rows, cols, codes, absmax };
}

/** quantizeNf4 of the f32 values of f16 bit patterns, converted a chunk at a time. */
export function quantizeNf4F16(bits: Uint16Array, rows: number, cols: number): Nf4Weight {
  const n = rows * cols;
  if (bits.length < n) return refQuantizeNf4(f16BitsToF32(bits), rows, cols);
  const table = f16Table();
  const absmax = new Float32Array(Math.ceil(n / NF4_BLOCK));
  const packed = new Uint8Array(Math.ceil(n / 2));
  const stage = new Float32Array(Math.min(n, STAGE));
  for (let from = 0; from < n; from += STAGE) {
    const to = Math.min(n, from + STAGE);
    for (let i = from; i < to; i++) stage[i - from] = table[bits[i]!]!;
    nf4Blocks(stage, from, from, to, absmax, packed);
  }
  return finishNf4(rows, cols, absmax, packed);
}
