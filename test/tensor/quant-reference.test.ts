// The table-driven host quantizers against the search-per-value reference, byte for byte, on the values where
// a wrong threshold would show: every midpoint between adjacent code values and its nearest f32s, the code
// values themselves, zeros, subnormals, NaN and infinities, blocks straddling rows, ragged lengths, every f16.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  DYNAMIC_CODE,
  NF4_CODE,
  f16BitsToF32,
  quantizeBlockwise8,
  quantizeHostF16,
  quantizeInt8,
  quantizeNf4,
  refQuantizeBlockwise8,
  refQuantizeInt8,
  refQuantizeNf4,
} from '@huatuo/tensor';
import { seededValues } from './helpers.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The f32 `steps` representable values away from x (an f32), across zero as the bit order does. */
function stepF32(x: number, steps: number): number {
  f32[0] = x;
  let key = u32[0]! >= 0x80000000 ? 0xffffffff - u32[0]! : u32[0]! + 0x80000000;
  key = Math.min(0xffffffff, Math.max(0, key + steps));
  u32[0] = key >= 0x80000000 ? key - 0x80000000 : 0xffffffff - key;
  return f32[0]!;
}

/** The f32s within 6 steps of each code value and of each midpoint between neighbours (and its f32 rounding). */
function adversarial(code: Float32Array): number[] {
  const out: number[] = [];
  const around = (x: number) => {
    for (let s = -6; s <= 6; s++) out.push(stepF32(x, s));
  };
  for (let c = 0; c < code.length; c++) {
    around(code[c]!);
    if (c + 1 < code.length) around(Math.fround((code[c]! + code[c + 1]!) / 2));
  }
  around(0);
  around(-0);
  out.push(1.4e-45, -1.4e-45, 1.1754942e-38, -1.1754942e-38, 2 ** -126, -(2 ** -126));
  return out;
}

/** Blocks of `block` values whose first is `lead` (so the block's absmax is 1 and values are scaled by exactly 1). */
function inBlocks(values: number[], block: number, lead = 1): Float32Array {
  const per = block - 1;
  const out = new Float32Array(Math.ceil(values.length / per) * block);
  for (let b = 0; b * per < values.length; b++) {
    out[b * block] = lead;
    out.set(values.slice(b * per, (b + 1) * per), b * block + 1);
  }
  return out;
}

/** Asserts two quantized results are the same, field by field (floats compared by Object.is); names the first difference. */
function assertSame(actual: object, expected: object, input: ArrayLike<number>, what: string): void {
  for (const [key, want] of Object.entries(expected)) {
    const got = (actual as Record<string, unknown>)[key];
    if (typeof want !== 'object' || want === null) {
      assert.ok(Object.is(got, want), `${what}: ${key} is ${String(got)}, the reference gives ${String(want)}`);
      continue;
    }
    const a = got as ArrayLike<number>;
    const e = want as ArrayLike<number>;
    assert.equal(a.length, e.length, `${what}: ${key} has ${a.length} entries, the reference ${e.length}`);
    for (let i = 0; i < e.length; i++) {
      if (!Object.is(a[i], e[i])) {
        const value = key === 'packed' ? ` (inputs ${input[2 * i]}, ${input[2 * i + 1]})` : key === 'codes' && input.length === e.length ? ` (input ${input[i]})` : '';
        assert.fail(`${what}: ${key}[${i}] is ${a[i]}, the reference gives ${e[i]}${value}`);
      }
    }
  }
}

test('NF4 codes match the reference at every midpoint between NF4 levels and the f32s around it, at several block scales', () => {
  const values = adversarial(NF4_CODE);
  for (const scale of [1, 0.02, 3.5e-3, 1e-30, 2 ** -120, 7e37]) {
    const w = inBlocks(values.map((v) => Math.fround(v * scale)), 64, scale);
    assertSame(quantizeNf4(w, 1, w.length), refQuantizeNf4(w, 1, w.length), w, `nf4 at scale ${scale}`);
  }
});

test('the dynamic-map codes of blockwise 8-bit quantization match the reference at every midpoint between its 256 levels', () => {
  const values = adversarial(DYNAMIC_CODE);
  for (const block of [256, 64]) {
    const x = inBlocks(values, block);
    assertSame(quantizeBlockwise8(x, block), refQuantizeBlockwise8(x, block), x, `blockwise8 in blocks of ${block}`);
  }
});

test('int8 codes match the reference at every half-integer of the scaled row and the f32s around it', () => {
  const halves: number[] = [];
  for (let k = -127; k < 127; k++) for (let s = -3; s <= 3; s++) halves.push(stepF32(Math.fround(k + 0.5), s));
  // A row with absmax 127 scales by exactly 1; rows with absmax 1 and 0.37 scale by 127 and 127 / 0.37.
  for (const top of [127, 1, 0.37]) {
    const row = [top, ...halves.map((h) => Math.fround((h * top) / 127))];
    const w = Float32Array.from([...row, ...row.map((v) => -v)]);
    assertSame(quantizeInt8(w, 2, row.length), refQuantizeInt8(w, 2, row.length), w, `int8 rows with absmax ${top}`);
  }
});

test('zeros, negative zero, subnormals, NaN and infinities give the reference bytes in int8, NF4 and blockwise 8-bit', () => {
  const special = [0, -0, 1.4e-45, -1.4e-45, 3e-39, -1e-40, 1.17549435e-38, NaN, Infinity, -Infinity, 3.4028235e38, -3.4028235e38, 1, -1];
  const blocks: number[][] = [Array(64).fill(0), Array(64).fill(-0), Array.from({ length: 64 }, (_, i) => (i % 3) * 1.4e-45), Array.from({ length: 64 }, (_, i) => (i % 5) * -1e-39)];
  for (const s of special) blocks.push(Array.from({ length: 64 }, (_, i) => (i === 17 ? s : ((i % 7) - 3) * 0.1)));
  blocks.push(Array.from({ length: 64 }, (_, i) => [0, -0, 1e-45, 2.5e-40][i % 4]!));
  const w = Float32Array.from(blocks.flat());
  assertSame(quantizeNf4(w, blocks.length, 64), refQuantizeNf4(w, blocks.length, 64), w, 'nf4 special values');
  assertSame(quantizeInt8(w, blocks.length, 64), refQuantizeInt8(w, blocks.length, 64), w, 'int8 special values');
  assertSame(quantizeBlockwise8(w, 64), refQuantizeBlockwise8(w, 64), w, 'blockwise8 special values');
});

test('every finite f16 bit pattern, and NaN and infinities in their own blocks, quantize from f16 as their f32 values do', () => {
  const finite = Uint16Array.from({ length: 65536 }, (_, h) => h).filter((h) => (h & 0x7c00) !== 0x7c00);
  const special = Uint16Array.from({ length: 192 }, (_, i) => (i === 5 ? 0x7c00 : i === 70 ? 0xfc00 : i === 150 ? 0x7e01 : 0x3000 + i));
  for (const bits of [finite, special, finite.subarray(0, 4096).reverse()]) {
    const cols = 64;
    const rows = Math.floor(bits.length / cols);
    const values = f16BitsToF32(bits);
    assertSame(quantizeHostF16(bits, rows, cols, 'nf4'), refQuantizeNf4(values, rows, cols), values, 'nf4 from f16');
    assertSame(quantizeHostF16(bits, rows, cols, 'int8'), refQuantizeInt8(values, rows, cols), values, 'int8 from f16');
  }
});

test('any shape, scale and input type (blocks straddling rows, odd lengths, f64 and plain arrays, f16) gives the reference bytes', () => {
  const shapes = fc.record({
    rows: fc.integer({ min: 1, max: 40 }),
    cols: fc.integer({ min: 1, max: 700 }),
    seed: fc.integer({ min: 1, max: 1e9 }),
    scale: fc.constantFrom(1, 0.02, 1e-3, 65504, 1e-6, 3e38),
  });
  fc.assert(
    fc.property(shapes, ({ rows, cols, seed, scale }) => {
      const w = seededValues(rows * cols, seed, scale);
      const what = `[${rows}, ${cols}] seed ${seed} scale ${scale}`;
      assertSame(quantizeNf4(w, rows, cols), refQuantizeNf4(w, rows, cols), w, `nf4 ${what}`);
      assertSame(quantizeInt8(w, rows, cols), refQuantizeInt8(w, rows, cols), w, `int8 ${what}`);
      const f64 = Float64Array.from(w, (v, i) => v * (1 + (i % 3) * 1e-9));
      assertSame(quantizeNf4(f64, rows, cols), refQuantizeNf4(f64, rows, cols), f64, `nf4 f64 ${what}`);
      assertSame(quantizeInt8([...f64], rows, cols), refQuantizeInt8([...f64], rows, cols), f64, `int8 number[] ${what}`);
      const bits = Uint16Array.from(w, (_, i) => (seed + i * 40503) & 0x7bff);
      const values = f16BitsToF32(bits);
      assertSame(quantizeHostF16(bits, rows, cols, 'nf4'), refQuantizeNf4(values, rows, cols), values, `nf4 f16 ${what}`);
      assertSame(quantizeHostF16(bits, rows, cols, 'int8'), refQuantizeInt8(values, rows, cols), values, `int8 f16 ${what}`);
    }),
    { numRuns: 60 },
  );
});
