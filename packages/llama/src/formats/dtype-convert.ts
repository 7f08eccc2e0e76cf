// Conversions between IEEE binary32, binary16 (f16) and bfloat16 bit patterns.
// f32 -> f16 rounds to nearest, ties to even; bf16 -> f32 and f16 -> f32 are exact.

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** True when the host stores multi-byte numbers little-endian (every browser and Node target in practice). */
export const hostIsLittleEndian: boolean = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * The f16 bit pattern nearest to the f32 with bit pattern `bits` (round to nearest, ties to even).
 * Overflow gives ±inf, NaN stays a (quiet) NaN, tiny values become f16 subnormals or ±0.
 */
export function f32BitsToF16Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13);
  const e = exp - 127 + 15; // f16 biased exponent
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal f16 (or zero): value in units of 2^-24 is (1.mant * 2^23) >> (14 - e).
    if (e < -10) return sign;
    const full = mant | 0x800000;
    const shift = 14 - e;
    let half = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (half & 1) === 1)) half += 1;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to inf).
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1)) half += 1;
  return sign | half;
}

/** The exact value of the f16 with bit pattern `h`. */
export function f16BitsToNumber(h: number): number {
  const sign = (h & 0x8000) !== 0 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

/** The f16 bit pattern nearest to `x` after `x` is first rounded to f32 (as a GPU write would). */
export function numberToF16Bits(x: number): number {
  f32Scratch[0] = x;
  return f32BitsToF16Bits(u32Scratch[0]!);
}

/** The exact value of the bfloat16 with bit pattern `b`. */
export function bf16BitsToNumber(b: number): number {
  u32Scratch[0] = (b & 0xffff) << 16;
  return f32Scratch[0]!;
}

let f16Table: Float32Array | undefined;

/** All 65536 f16 values as f32, built on first use. */
function f16ToF32Table(): Float32Array {
  if (f16Table === undefined) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToNumber(h);
  }
  return f16Table;
}

/** f16 bit patterns to f32 values (exact). */
export function f16ToF32(src: Uint16Array): Float32Array {
  const table = f16ToF32Table();
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = table[src[i]!]!;
  return out;
}

/** bfloat16 bit patterns to f32 values (exact: bf16 is the top half of an f32). */
export function bf16ToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) outBits[i] = src[i]! << 16;
  return out;
}

/** f32 values to f16 bit patterns (round to nearest, ties to even). */
export function f32ToF16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const b = bits[i]!;
    const abs = b & 0x7fffffff;
    // Magnitudes in [2^-14, 65520), which round to a normal f16 (weights, mostly): rebias the exponent and
    // round the 13 dropped mantissa bits to nearest, ties to even, inline; the rest as f32BitsToF16Bits does.
    out[i] = abs >= 0x38800000 && abs < 0x477ff000 ? ((b >>> 16) & 0x8000) | ((abs - 0x38000000 + 0xfff + ((abs >>> 13) & 1)) >>> 13) : f32BitsToF16Bits(b);
  }
  return out;
}

/** bfloat16 bit patterns to f16 bit patterns (exact widening to f32, then one rounding). */
export function bf16ToF16(src: Uint16Array): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32BitsToF16Bits(src[i]! << 16);
  return out;
}

/**
 * f32 values to bfloat16 bit patterns (round to nearest, ties to even; NaN stays NaN),
 * as PyTorch's `tensor.to(torch.bfloat16)` does.
 */
export function f32ToBf16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const b = bits[i]!;
    if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) {
      out[i] = (b >>> 16) | 0x40;
      continue;
    }
    const lsb = (b >>> 16) & 1;
    out[i] = ((b + 0x7fff + lsb) >>> 16) & 0xffff;
  }
  return out;
}
