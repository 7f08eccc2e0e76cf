// Weight quantization on the host, as bitsandbytes lays it out: int8 with one absmax per output row,
// and NF4 (QLoRA) with blocks of 64, an absmax per block, and the absmaxes double-quantized (mean
// subtracted, then 8-bit blockwise with the dynamic map, blocks of 256). The formats, their dequantizers,
// and the entry points; the quantizers are in quantize.ts, the code books in codes.ts.
import { quantizeInt8, quantizeInt8F16, quantizeNf4, quantizeNf4F16 } from './quantize.js';
import { DYNAMIC_CODE, NF4_BLOCK, NF4_ABSMAX_BLOCK, NF4_CODE } from './codes.js';

export { DYNAMIC_CODE, NF4_ABSMAX_BLOCK, NF4_BLOCK, NF4_CODE, nearestCode } from './codes.js';
export { quantizeBlockwise8, quantizeInt8, quantizeNf4 } from './quantize.js';

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

/**
 * Quantizes a row-major [rows, cols] weight given as f16 bit patterns (a checkpoint's F16 tensor as read):
 * the same bytes as quantizeHost of their f32 values, without an f32 copy of the whole weight.
 *
 * @example
 * const q = quantizeHostF16(await st.readAs('model.layers.0.mlp.up_proj.weight', 'f16'), 11008, 4096, 'nf4');
 */
export function quantizeHostF16(bits: Uint16Array, rows: number, cols: number, format: QuantFormat): HostQuantized {
  return format === 'int8' ? quantizeInt8F16(bits, rows, cols) : quantizeNf4F16(bits, rows, cols);
}

/**
 * Whether every value a host-quantized weight was quantized from was finite, read from the result: a NaN or
 * infinity makes its int8 row's absmax, or its NF4 block's absmax and so the mean of them all (absmaxOffset),
 * NaN or infinite, while finite values keep them finite. Lets a loader check a weight without another pass.
 *
 * @example
 * if (!quantizedFromFinite(q)) throw new Error('the weight holds NaN or infinity');
 */
export function quantizedFromFinite(q: HostQuantized): boolean {
  if (q.format === 'nf4') return q.absmaxCodes.length === 0 || Number.isFinite(q.absmaxOffset);
  for (let r = 0; r < q.absmax.length; r++) if (!Number.isFinite(q.absmax[r]!)) return false;
  return true;
}

/** Row-major f32 values of a host-quantized weight. */
export function dequantizeHost(q: HostQuantized): Float32Array {
  return q.format === 'int8' ? dequantizeInt8(q) : dequantizeNf4(q);
}