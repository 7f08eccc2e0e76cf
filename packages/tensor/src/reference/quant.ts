// CPU reference of the host quantizers, written from the format definitions with one nearestCode search per
// value: int8 with a per-row absmax, NF4 blocks of 64 with double-quantized absmaxes, bitsandbytes' blockwise
// 8-bit quantization. quant/formats.ts must give the same bytes for every input.
import { DYNAMIC_CODE, NF4_ABSMAX_BLOCK, NF4_BLOCK, NF4_CODE, nearestCode } from '../quant/codes.js';
import type { Int8Weight, Nf4Weight } from '../quant/formats.js';

/** Rounds half to even, as torch.round does. */
function roundEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Reference of quantizeInt8: q = round(w * 127 / absmax_row), half to even. */
export function refQuantizeInt8(w: ArrayLike<number>, rows: number, cols: number): Int8Weight {
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

/** Reference of quantizeBlockwise8: per block, absmax scale and the nearest DYNAMIC_CODE index of x / scale. */
export function refQuantizeBlockwise8(x: Float32Array, block: number): { codes: Uint8Array; scales: Float32Array } {
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

/** Reference of quantizeNf4: NF4 blocks of 64, absmaxes double-quantized in blocks of 256. */
export function refQuantizeNf4(w: ArrayLike<number>, rows: number, cols: number): Nf4Weight {
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
  const { codes, scales } = refQuantizeBlockwise8(centered, NF4_ABSMAX_BLOCK);
  return { format: 'nf4', rows, cols, packed, absmaxCodes: codes, absmaxScales: scales, absmaxOffset: offset };
}
