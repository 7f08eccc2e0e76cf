// The int8 and NF4 host formats against their specification: NF4 code values rebuilt from normal
// quantiles as QLoRA defines them, bitsandbytes' dynamic map, block layout and nibble order, and
// round-trip errors within each format's bound.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  DYNAMIC_CODE,
  NF4_ABSMAX_BLOCK,
  NF4_BLOCK,
  NF4_CODE,
  dequantizeInt8,
  dequantizeNf4,
  nf4Absmax,
  nf4CodeAt,
  f32ToF16Bits,
  quantizeHost,
  quantizeHostF16,
  quantizeInt8,
  quantizeNf4,
  quantizedFromFinite,
  refQuantizeInt8,
  refQuantizeNf4,
} from '@huatuo/tensor';
import { seededValues } from './helpers.js';

/** Inverse of the standard normal CDF (Acklam's rational approximation, relative error below 1.2e-9). */
function normPpf(p: number): number {
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const lo = 0.02425;
  if (p < lo) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  }
  if (p > 1 - lo) return -normPpf(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) / (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
}

const linspace = (a: number, b: number, n: number) => Array.from({ length: n }, (_, i) => a + ((b - a) * i) / (n - 1));
const maxHalfGap = (code: Float32Array) => {
  let g = 0;
  for (let i = 1; i < code.length; i++) g = Math.max(g, (code[i]! - code[i - 1]!) / 2);
  return g;
};

test('NF4 code values are QLoRA normal quantiles: 8 positive and 7 negative levels of N(0, 1) with offset 0.9677083, an exact zero, scaled to [-1, 1]', () => {
  const offset = 0.9677083;
  const pos = linspace(offset, 0.5, 9).slice(0, -1).map(normPpf);
  const neg = linspace(offset, 0.5, 8).slice(0, -1).map((p) => -normPpf(p));
  const values = [...pos, 0, ...neg].sort((x, y) => x - y);
  const top = Math.max(...values);
  assert.equal(NF4_CODE.length, 16);
  assert.equal(NF4_CODE[7], 0);
  assert.equal(NF4_CODE[0], -1);
  assert.equal(NF4_CODE[15], 1);
  values.forEach((v, i) => assert.ok(Math.abs(v / top - NF4_CODE[i]!) < 1e-6, `NF4 code ${i}: ${NF4_CODE[i]} vs quantile ${v / top}`));
});

test('the dynamic 8-bit map has 256 sorted values: 0, 1 and 127 midpoints per sign over 7 decades', () => {
  assert.equal(DYNAMIC_CODE.length, 256);
  for (let i = 1; i < 256; i++) assert.ok(DYNAMIC_CODE[i]! > DYNAMIC_CODE[i - 1]!, `not strictly sorted at ${i}`);
  assert.equal(DYNAMIC_CODE[255], 1);
  assert.ok(DYNAMIC_CODE.includes(0));
  const positives = [...DYNAMIC_CODE].filter((v) => v > 0 && v < 1);
  assert.equal(positives.length, 127);
  for (const v of positives) assert.ok(DYNAMIC_CODE.includes(-v), `missing -${v}`);
  assert.ok(Math.abs(Math.min(...positives) - 0.55e-6) < 1e-12, 'smallest level is 1e-6 times the midpoint of [0.1, 1]');
  // The top decade holds the 64 midpoints of linspace(0.1, 1, 65).
  const top = positives.filter((v) => v >= 0.1);
  assert.equal(top.length, 64);
  top.forEach((v, j) => assert.ok(Math.abs(v - (0.1 + (0.9 * (j + 0.5)) / 64)) < 1e-7, `top decade level ${j}: ${v}`));
});

const shapes = fc.record({ rows: fc.integer({ min: 1, max: 9 }), cols: fc.integer({ min: 1, max: 300 }), seed: fc.integer({ min: 1, max: 1e9 }), scale: fc.double({ min: 1e-3, max: 50, noNaN: true }) });

test('int8: codes in [-127, 127] reach ±127 on every nonzero row, and the round trip is within half a step (absmax / 254)', () => {
  fc.assert(
    fc.property(shapes, ({ rows, cols, seed, scale }) => {
      const w = seededValues(rows * cols, seed, scale);
      if (rows > 1) w.fill(0, 0, cols); // a zero row
      const q = quantizeInt8(w, rows, cols);
      const back = dequantizeInt8(q);
      for (let r = 0; r < rows; r++) {
        let m = 0;
        for (let c = 0; c < cols; c++) m = Math.max(m, Math.abs(q.codes[r * cols + c]!));
        assert.equal(m, q.absmax[r] === 0 ? 0 : 127, `row ${r}`);
        for (let c = 0; c < cols; c++) {
          const i = r * cols + c;
          assert.ok(Math.abs(w[i]! - back[i]!) <= (q.absmax[r]! / 254) * (1 + 1e-6), `row ${r} col ${c}: ${w[i]} -> ${back[i]}`);
        }
      }
    }),
    { numRuns: 40 },
  );
});

test('NF4 packs two codes per byte, the even-indexed value in the high nibble, blocks of 64 over the flattened weight', () => {
  const w = new Float32Array(130);
  w[0] = 1; // code 15
  w[1] = -1; // code 0
  w[2] = 0.5626; // code 13
  w[64] = -2; // second block: absmax 2, -2 -> code 0
  w[65] = 1.1; // 0.55 -> nearest 0.5626, code 13
  const q = quantizeNf4(w, 2, 65);
  assert.equal(q.packed.length, 65);
  assert.equal(q.packed[0], (15 << 4) | 0);
  assert.equal(q.packed[1]! >> 4, 13);
  assert.equal(q.packed[1]! & 15, 7, 'zero is code 7');
  assert.equal(nf4CodeAt(q.packed, 65), 13);
  assert.equal(q.absmaxCodes.length, 3, 'ceil(130 / 64) blocks');
  assert.equal(q.absmaxScales.length, 1);
  // The layout is that of the flattened weight whatever the row length.
  const flat = quantizeNf4(w, 1, 130);
  assert.deepEqual(flat.packed, q.packed);
  assert.deepEqual(flat.absmaxCodes, q.absmaxCodes);
});

test('NF4 double quantization: offset is the mean absmax, one f32 scale per 256 blocks, absmaxes within half a dynamic-map step', () => {
  const rows = 40;
  const cols = 1000; // 625 blocks, 3 absmax blocks
  const w = seededValues(rows * cols, 7);
  for (let i = 0; i < w.length; i += 97) w[i] = w[i]! * 20; // outliers spread the absmaxes
  const q = quantizeNf4(w, rows, cols);
  const blocks = Math.ceil((rows * cols) / NF4_BLOCK);
  assert.equal(q.absmaxCodes.length, blocks);
  assert.equal(q.absmaxScales.length, Math.ceil(blocks / NF4_ABSMAX_BLOCK));
  const exact = Array.from({ length: blocks }, (_, b) => Math.max(...Array.from(w.subarray(b * 64, (b + 1) * 64), Math.abs)));
  const mean = exact.reduce((a, b) => a + b, 0) / blocks;
  assert.ok(Math.abs(q.absmaxOffset - mean) <= 1e-6 * mean);
  const deq = nf4Absmax(q);
  const half = maxHalfGap(DYNAMIC_CODE);
  for (let b = 0; b < blocks; b++) {
    const scale = q.absmaxScales[Math.floor(b / NF4_ABSMAX_BLOCK)]!;
    assert.ok(Math.abs(deq[b]! - exact[b]!) <= half * scale + 1e-6 * exact[b]!, `block ${b}: ${deq[b]} vs ${exact[b]}`);
  }
});

test('NF4 round trip: |w - deq| <= (largest half gap of NF4) * absmax + |absmax error| for every value', () => {
  const halfNf4 = maxHalfGap(NF4_CODE);
  fc.assert(
    fc.property(shapes, ({ rows, cols, seed, scale }) => {
      const w = seededValues(rows * cols, seed, scale);
      const q = quantizeNf4(w, rows, cols);
      const back = dequantizeNf4(q);
      const deq = nf4Absmax(q);
      for (let i = 0; i < w.length; i++) {
        const b = Math.floor(i / 64);
        let exact = 0;
        for (let j = b * 64; j < Math.min(w.length, b * 64 + 64); j++) exact = Math.max(exact, Math.abs(w[j]!));
        const bound = halfNf4 * exact + Math.abs(deq[b]! - exact) + 1e-6 * exact;
        assert.ok(Math.abs(w[i]! - back[i]!) <= bound, `value ${i}: ${w[i]} -> ${back[i]} (bound ${bound})`);
        assert.ok(Math.abs(NF4_CODE[nf4CodeAt(q.packed, i)]! - w[i]! / exact) <= halfNf4 + 1e-6 || exact === 0, `value ${i} is not at its nearest code`);
      }
    }),
    { numRuns: 40 },
  );
});

test('quantizedFromFinite is false exactly when a NaN or infinity was quantized, in either format, from f32 or f16', () => {
  const special = fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY);
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 150 }), fc.integer({ min: 0, max: 1e6 }), fc.option(special), fc.nat(), (rows, cols, seed, bad, at) => {
      const values = seededValues(rows * cols, seed, 2);
      if (bad !== null) values[at % values.length] = bad;
      for (const format of ['int8', 'nf4'] as const) {
        const results = [
          quantizeHost(values, rows, cols, format),
          quantizeHostF16(f32ToF16Bits(values), rows, cols, format),
          format === 'int8' ? refQuantizeInt8(values, rows, cols) : refQuantizeNf4(values, rows, cols),
        ];
        for (const q of results) assert.equal(quantizedFromFinite(q), bad === null, `${format} [${rows}, ${cols}] seed ${seed}, ${String(bad)} at ${at % values.length}`);
      }
    }),
    { numRuns: 60 },
  );
  assert.ok(quantizedFromFinite(quantizeNf4(new Float32Array(0), 0, 64)), 'an empty weight is finite');
});
