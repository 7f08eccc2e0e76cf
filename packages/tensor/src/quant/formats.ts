// Weight quantization on the host, as bitsandbytes lays it out: int8 with one absmax per output row,
// and NF4 (QLoRA) with blocks of 64, an absmax per block, and the absmaxes double-quantized (mean
// subtracted, then 8-bit blockwise with the dynamic map, blocks of 256). Also the CPU reference.

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

/** Rounds half to even, as torch.round does. */
function roundEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** An int8 weight [rows, cols]: w ≈ codes[r, c] * absmax[r] / 127. */
export interface Int8Weight {
  readonly format: 'int8';
  readonly rows: number;
  readonly cols: number;
  /** Row-major codes in [-127, 127]. */
  readonly codes: Int8Array;
  /** max |w| of each row (f32). */
  readonly absmax: Float32Array;
}

/** Quantizes a row-major [rows, cols] weight: q = round(w * 127 / absmax_row), half to even. */
export function quantizeInt8(w: ArrayLike<number>, rows: number, cols: number): Int8Weight {
  const codes = new Int8Array(rows * cols);
  const absmax = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let c = 0; c < cols; c++) m = Math.max(m, Math.abs(w[r * cols + c]!));
    absmax[r] = m;
    if (m === 0) continue;
    const s = 127 / absmax[r]!;
    for (let c = 0; c < cols; c++) codes[r * cols + c] = roundEven(w[r * cols + c]! * s);
  }
  return { format: 'int8', rows, cols, codes, absmax };
}

/** Row-major f32 values of an int8 weight. */
export function dequantizeInt8(q: Int8Weight): Float32Array {
  const out = new Float32Array(q.rows * q.cols);
  for (let r = 0; r < q.rows; r++) {
    const s = q.absmax[r]! / 127;
    for (let c = 0; c < q.cols; c++) out[r * q.cols + c] = q.codes[r * q.cols + c]! * s;
  }
  return out;
}

/**
 * An NF4 weight [rows, cols] with double-quantized absmaxes. Blocks run over the row-major flattening,
 * so a block may straddle rows when cols is not a multiple of 64. Packing: two codes per byte, the
 * even-indexed value in the high nibble (bitsandbytes' order); bytes in element order.
 * Value i ≈ NF4_CODE[code_i] * absmax(i / 64), absmax(b) = DYNAMIC_CODE[absmaxCodes[b]] * absmaxScales[b / 256] + absmaxOffset.
 */
export interface Nf4Weight {
  readonly format: 'nf4';
  readonly rows: number;
  readonly cols: number;
  /** ceil(rows * cols / 2) bytes. */
  readonly packed: Uint8Array;
  /** One DYNAMIC_CODE index per block of 64 values. */
  readonly absmaxCodes: Uint8Array;
  /** max |absmax - offset| of each block of 256 absmaxes (f32). */
  readonly absmaxScales: Float32Array;
  /** Mean of all absmaxes (f32), subtracted before their quantization. */
  readonly absmaxOffset: number;
}

/** The 4-bit code of element i of a packed NF4 byte stream. */
export function nf4CodeAt(packed: Uint8Array, i: number): number {
  const byte = packed[i >> 1]!;
  return i % 2 === 0 ? byte >> 4 : byte & 15;
}

/** Quantizes a row-major [rows, cols] weight to NF4 (blocks of 64) with double quantization (blocks of 256). */
export function quantizeNf4(w: ArrayLike<number>, rows: number, cols: number): Nf4Weight {
  const n = rows * cols;
  const blocks = Math.ceil(n / NF4_BLOCK);
  const absmax = new Float32Array(blocks);
  const packed = new Uint8Array(Math.ceil(n / 2));
  for (let b = 0; b < blocks; b++) {
    const end = Math.min(n, (b + 1) * NF4_BLOCK);
    let m = 0;
    for (let i = b * NF4_BLOCK; i < end; i++) m = Math.max(m, Math.abs(w[i]!));
    absmax[b] = m;
    const inv = m === 0 ? 0 : Math.fround(1 / absmax[b]!);
    for (let i = b * NF4_BLOCK; i < end; i++) {
      const q = nearestCode(NF4_CODE, Math.fround(w[i]! * inv));
      packed[i >> 1]! |= i % 2 === 0 ? q << 4 : q;
    }
  }
  let total = 0;
  for (const a of absmax) total += a;
  const offset = Math.fround(total / blocks);
  const centered = absmax.map((a) => a - offset);
  const { codes, scales } = quantizeBlockwise8(centered, NF4_ABSMAX_BLOCK);
  return { format: 'nf4', rows, cols, packed, absmaxCodes: codes, absmaxScales: scales, absmaxOffset: offset };
}

/** bitsandbytes' quantize_blockwise: per block, absmax scale and the nearest DYNAMIC_CODE index of x / scale. */
export function quantizeBlockwise8(x: Float32Array, block: number): { codes: Uint8Array; scales: Float32Array } {
  const codes = new Uint8Array(x.length);
  const scales = new Float32Array(Math.ceil(x.length / block));
  for (let b = 0; b < scales.length; b++) {
    const end = Math.min(x.length, (b + 1) * block);
    let m = 0;
    for (let i = b * block; i < end; i++) m = Math.max(m, Math.abs(x[i]!));
    scales[b] = m;
    const inv = m === 0 ? 0 : Math.fround(1 / scales[b]!);
    for (let i = b * block; i < end; i++) codes[i] = nearestCode(DYNAMIC_CODE, Math.fround(x[i]! * inv));
  }
  return { codes, scales };
}

/** The dequantized absmax of every NF4 block (f32), as the kernels compute it. */
export function nf4Absmax(q: Nf4Weight): Float32Array {
  const out = new Float32Array(q.absmaxCodes.length);
  for (let b = 0; b < out.length; b++) {
    out[b] = Math.fround(DYNAMIC_CODE[q.absmaxCodes[b]!]! * q.absmaxScales[Math.floor(b / NF4_ABSMAX_BLOCK)]!) + q.absmaxOffset;
  }
  return out;
}

/** Row-major f32 values of an NF4 weight. */
export function dequantizeNf4(q: Nf4Weight): Float32Array {
  const absmax = nf4Absmax(q);
  const out = new Float32Array(q.rows * q.cols);
  for (let i = 0; i < out.length; i++) out[i] = NF4_CODE[nf4CodeAt(q.packed, i)]! * absmax[Math.floor(i / NF4_BLOCK)]!;
  return out;
}

/** A quantization format of a frozen weight. */
export type QuantFormat = 'int8' | 'nf4';

/** A host-quantized weight of either format. */
export type HostQuantized = Int8Weight | Nf4Weight;

/** Quantizes a row-major [rows, cols] weight in the given format. */
export function quantizeHost(w: ArrayLike<number>, rows: number, cols: number, format: QuantFormat): HostQuantized {
  return format === 'int8' ? quantizeInt8(w, rows, cols) : quantizeNf4(w, rows, cols);
}

/** Row-major f32 values of a host-quantized weight. */
export function dequantizeHost(q: HostQuantized): Float32Array {
  return q.format === 'int8' ? dequantizeInt8(q) : dequantizeNf4(q);
}
