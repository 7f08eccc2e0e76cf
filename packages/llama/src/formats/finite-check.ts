// The check every float tensor read from a file passes: no NaN and no infinity, found by a scan of
// the exponent bits of the host copy (f32 values or f16 bit patterns), so that a corrupt or
// diverged file is refused by name before its values reach the GPU. Browser-safe.

import { f16BitsToNumber } from './dtype-convert.js';

/** Index of the first NaN or infinity in f32 values or f16 bit patterns, or -1 when all are finite. */
export function firstNonFinite(data: Float32Array | Uint16Array): number {
  if (data instanceof Uint16Array) {
    for (let i = 0; i < data.length; i++) if ((data[i]! & 0x7c00) === 0x7c00) return i;
    return -1;
  }
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  for (let i = 0; i < bits.length; i++) if ((bits[i]! & 0x7f800000) === 0x7f800000) return i;
  return -1;
}

function valueAt(data: Float32Array | Uint16Array, i: number): number {
  return data instanceof Uint16Array ? f16BitsToNumber(data[i]!) : data[i]!;
}

/**
 * Why `converted` (a tensor's host copy) cannot be used, or undefined when every value is finite.
 * `source` is the copy in the file's own dtype when it differs, to tell a value that was
 * already NaN or infinite in the file from one too large for f16.
 */
export function nonFiniteProblem(converted: Float32Array | Uint16Array, source?: () => Float32Array): string | undefined {
  const first = firstNonFinite(converted);
  if (first < 0) return undefined;
  let count = 0;
  for (let i = first; i < converted.length; i++) if (!Number.isFinite(valueAt(converted, i))) count++;
  const original = converted instanceof Uint16Array && source ? source()[first]! : valueAt(converted, first);
  if (Number.isFinite(original)) {
    return `element ${first} is ${original}, beyond f16's range (largest 65504), and ${count} of ${converted.length} values overflow; load it in f32 (dtype 'f32', or --base-dtype f32)`;
  }
  return `element ${first} is ${original} and ${count} of ${converted.length} values are NaN or infinite; the file is corrupt or was saved from a diverged run, so it cannot be used`;
}
