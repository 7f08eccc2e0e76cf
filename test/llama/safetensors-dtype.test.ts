import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  SafetensorsFile,
  bf16BitsToNumber,
  bf16ToF16,
  bytesSource,
  f16BitsToNumber,
  f16ToF32,
  f32BitsToF16Bits,
  f32ToBf16,
  f32ToF16,
  serializeSafetensors,
} from '@huatuo/llama';

// Independent reference: every finite non-negative f16 value, ascending, built from the
// IEEE 754 binary16 definition (subnormals k * 2^-24, normals (1 + m/1024) * 2^(e-15)).
const f16Positive: { bits: number; value: number }[] = [];
for (let k = 0; k < 1024; k++) f16Positive.push({ bits: k, value: k / 2 ** 24 });
for (let e = 1; e <= 30; e++) {
  for (let m = 0; m < 1024; m++) f16Positive.push({ bits: (e << 10) | m, value: (1 + m / 1024) * 2 ** (e - 15) });
}

/** Nearest f16 to a double by search over the table, ties to the even bit pattern. */
function referenceF16(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  // 65504 is the largest finite f16; its ulp is 32, so 65504 + 16 and above round to infinity.
  if (a >= 65520) return sign | 0x7c00;
  let lo = 0;
  let hi = f16Positive.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (f16Positive[mid]!.value <= a) lo = mid;
    else hi = mid - 1;
  }
  const below = f16Positive[lo]!;
  const above = f16Positive[lo + 1];
  if (above === undefined || a === below.value) return sign | below.bits;
  const dBelow = a - below.value;
  const dAbove = above.value - a;
  if (dBelow < dAbove) return sign | below.bits;
  if (dAbove < dBelow) return sign | above.bits;
  return sign | ((below.bits & 1) === 0 ? below.bits : above.bits);
}

function f32FromBits(bits: number): number {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setUint32(0, bits >>> 0);
  return dv.getFloat32(0);
}

function isF16NaN(h: number): boolean {
  return (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
}

test('f16 bit patterns decode to their IEEE values: 1, 65504, 2^-24, 2^-14, -2, -0, +-inf, NaN', () => {
  assert.equal(f16BitsToNumber(0x3c00), 1);
  assert.equal(f16BitsToNumber(0x7bff), 65504);
  assert.equal(f16BitsToNumber(0x0001), 2 ** -24);
  assert.equal(f16BitsToNumber(0x0400), 2 ** -14);
  assert.equal(f16BitsToNumber(0x03ff), 1023 * 2 ** -24);
  assert.equal(f16BitsToNumber(0xc000), -2);
  assert.ok(Object.is(f16BitsToNumber(0x8000), -0));
  assert.equal(f16BitsToNumber(0x7c00), Infinity);
  assert.equal(f16BitsToNumber(0xfc00), -Infinity);
  assert.ok(Number.isNaN(f16BitsToNumber(0x7e00)));
  assert.ok(Number.isNaN(f16BitsToNumber(0x7c01)));
});

test('f32 values encode to the expected f16 bit patterns, including rounding at the edges', () => {
  assert.equal(f32BitsToF16Bits(0x3f800000), 0x3c00); // 1
  assert.equal(f32BitsToF16Bits(0x477fe000), 0x7bff); // 65504
  assert.equal(f32BitsToF16Bits(0x33800000), 0x0001); // 2^-24
  assert.equal(f32BitsToF16Bits(0x33000000), 0x0000); // 2^-25: tie between 0 and 2^-24 goes to even 0
  assert.equal(f32BitsToF16Bits(0x33000001), 0x0001); // just above 2^-25 rounds up
  assert.equal(f32BitsToF16Bits(0x477ff000), 0x7c00); // 65520 rounds to inf
  assert.equal(f32BitsToF16Bits(0x477fefff), 0x7bff); // just below 65520 stays finite
  assert.equal(f32BitsToF16Bits(0x7f800000), 0x7c00);
  assert.equal(f32BitsToF16Bits(0xff800000), 0xfc00);
  assert.equal(f32BitsToF16Bits(0x80000000), 0x8000);
  assert.ok(isF16NaN(f32BitsToF16Bits(0x7fc00000)));
  assert.ok(isF16NaN(f32BitsToF16Bits(0x7f800001))); // NaN whose payload lies only in dropped bits
});

test('every f16 bit pattern survives f16 -> f32 -> f16 unchanged (NaNs stay NaN)', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const back = f32ToF16(f16ToF32(all));
  for (let h = 0; h < 65536; h++) {
    if (isF16NaN(h)) assert.ok(isF16NaN(back[h]!), `0x${h.toString(16)}`);
    else assert.equal(back[h], h, `0x${h.toString(16)}`);
  }
});

test('f32 -> f16 rounds every f32 to the nearest f16, ties to even, as an independent table search does', () => {
  const anyF32 = fc.oneof(
    fc.integer({ min: 0, max: 0xffffffff }).map(f32FromBits),
    fc.float(),
    fc.float({ min: -70000, max: 70000 }),
    fc.float({ min: Math.fround(-1e-4), max: Math.fround(1e-4) }),
    // Exact midpoints between neighbouring f16 values exercise the tie rule.
    fc.integer({ min: 0, max: f16Positive.length - 2 }).map((i) => (f16Positive[i]!.value + f16Positive[i + 1]!.value) / 2),
  );
  fc.assert(
    fc.property(anyF32, (x) => {
      const got = f32ToF16(new Float32Array([x]))[0]!;
      const want = referenceF16(Math.fround(x));
      if (isF16NaN(want)) assert.ok(isF16NaN(got), `x=${x}`);
      else assert.equal(got, want, `x=${x}: got 0x${got.toString(16)}, want 0x${want.toString(16)}`);
    }),
    { numRuns: 20000 },
  );
});

test('bf16 bit patterns widen exactly to the f32 with the same top 16 bits', () => {
  assert.equal(bf16BitsToNumber(0x3f80), 1);
  assert.equal(bf16BitsToNumber(0xc000), -2);
  assert.equal(bf16BitsToNumber(0x7f80), Infinity);
  assert.equal(bf16BitsToNumber(0x0001), 2 ** -133);
  assert.equal(bf16BitsToNumber(0x7f7f), (2 - 2 ** -7) * 2 ** 127);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffff }), (b) => {
      const want = f32FromBits(b << 16);
      const got = bf16BitsToNumber(b);
      assert.ok(Object.is(got, want) || (Number.isNaN(got) && Number.isNaN(want)));
    }),
  );
});

test('f32 -> bf16 rounds to the nearer of the two truncation neighbours, ties to even', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffffff }), (bits) => {
      const x = f32FromBits(bits);
      const got = f32ToBf16(new Float32Array([x]))[0]!;
      if (Number.isNaN(x)) {
        assert.ok((got & 0x7f80) === 0x7f80 && (got & 0x7f) !== 0);
        return;
      }
      const down = (bits >>> 16) & 0xffff;
      const up = down + 1; // next bf16 away from zero (may be inf)
      // Past the largest finite bf16, IEEE rounding measures the distance to 2^128 (the value the
      // exponent would reach), so values from max + half an ulp on round to infinity.
      const upValue = (up & 0x7fff) === 0x7f80 ? Math.sign(x) * 2 ** 128 : f32FromBits((up & 0xffff) << 16);
      const dDown = Math.abs(x - f32FromBits(down << 16));
      const dUp = Math.abs(upValue - x);
      const want = dDown < dUp ? down : dUp < dDown ? up : down % 2 === 0 ? down : up;
      assert.equal(got, want & 0xffff, `bits 0x${bits.toString(16)}`);
    }),
    { numRuns: 20000 },
  );
});

test('bf16 -> f16 equals widening to f32 then rounding to f16', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffff }), (b) => {
      const got = bf16ToF16(new Uint16Array([b]))[0]!;
      const want = referenceF16(f32FromBits(b << 16));
      if (isF16NaN(want)) assert.ok(isF16NaN(got));
      else assert.equal(got, want);
    }),
  );
});

test('readAs converts F32, F16 and BF16 tensors to f32 and f16, and rejects integer tensors', async () => {
  const values = [1, -2, 0.333251953125, 65504, 2 ** -24];
  const f32 = new Float32Array(values);
  const f16 = new Uint16Array(values.map((v) => referenceF16(v)));
  const bf16 = new Uint16Array([0x3f80, 0xc000, 0x3eab, 0x477f, 0x3380]); // 1, -2, ~0.334, 65280, 2^-24
  const bytes = serializeSafetensors([
    { name: 'a', dtype: 'F32', shape: [5], data: f32 },
    { name: 'b', dtype: 'F16', shape: [5], data: f16 },
    { name: 'c', dtype: 'BF16', shape: [5], data: bf16 },
    { name: 'd', dtype: 'I32', shape: [1], data: new Int32Array([7]) },
  ]);
  const st = await SafetensorsFile.open(bytesSource('mixed.safetensors', bytes));
  assert.deepEqual([...(await st.readAs('a', 'f32'))], values);
  assert.deepEqual([...(await st.readAs('b', 'f32'))], values);
  assert.deepEqual([...(await st.readAs('a', 'f16'))], [...f16]);
  assert.deepEqual([...(await st.readAs('b', 'f16'))], [...f16]);
  assert.deepEqual([...(await st.readAs('c', 'f32'))], [...bf16].map((b) => f32FromBits(b << 16)));
  assert.deepEqual([...(await st.readAs('c', 'f16'))], [...bf16].map((b) => referenceF16(f32FromBits(b << 16))));
  await assert.rejects(st.readAs('d', 'f32'), /mixed\.safetensors: tensor "d": dtype I32 cannot be read as f32/);
});
