// Creation functions: tensor, zeros/ones/full, arange with torch.arange semantics, seeded randn and
// rand, and the host f16 conversions on known bit patterns.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, test } from 'node:test';
import {
  tensor, zeros, ones, full, zerosLike, arange, add, mul, randn, rand, Generator, f32ToF16Bits, f16BitsToF32, hasF16, refRoundToF16, ValueError,
} from '@huatuo/tensor';
import { assertClose, gpu } from './helpers.js';

before(async () => {
  await gpu();
});

test('tensor keeps host values, shape and dtype (f32, i32, u32, f16 bit patterns)', async () => {
  const x = tensor([1.5, -2, 3.25, 4, 5, 6], [2, 3]);
  assert.deepEqual(x.shape, [2, 3]);
  assert.equal(x.dtype, 'f32');
  assert.deepEqual([...(await x.toArray())], [1.5, -2, 3.25, 4, 5, 6]);
  const i = tensor(new Int32Array([-3, 7]));
  assert.equal(i.dtype, 'i32');
  assert.deepEqual([...(await i.toArray())], [-3, 7]);
  const u = tensor(new Uint32Array([4294967295, 1]));
  assert.deepEqual([...(await u.toArray())], [4294967295, 1]);
  assert.equal(await tensor(2.5).item(), 2.5);
  if (hasF16()) {
    const h = tensor(new Uint16Array([0x3c00, 0xc000, 0x7bff]));
    assert.equal(h.dtype, 'f16');
    assert.deepEqual([...(await h.toArray())], [1, -2, 65504]);
  }
});

test('tensor takes nested lists as torch.tensor does, and refuses ragged lists, non-numbers and unknown dtypes by name', async () => {
  const x = tensor([[1, 2, 3], [4, 5, 6]]);
  assert.deepEqual(x.shape, [2, 3]);
  assert.deepEqual([...(await x.toArray())], [1, 2, 3, 4, 5, 6]);
  const y = tensor([[[1], [2]], [[3], [4]]], undefined, { dtype: 'i32' });
  assert.deepEqual([y.shape, y.dtype], [[2, 2, 1], 'i32']);
  assert.deepEqual([...(await y.toArray())], [1, 2, 3, 4]);
  assert.deepEqual(tensor([[1, 2], [3, 4]], [4]).shape, [4], 'a given shape reads the values in row-major order');
  assert.deepEqual([...(await tensor([true, false] as unknown as number[]).toArray())], [1, 0]);
  assert.throws(() => tensor([[1, 2], [3]]), /tensor: data\[1\] has 1 entries, where data\[0\] has 2; nested lists must be rectangular/);
  assert.throws(() => tensor([[1, 2], 3] as unknown as number[][]), /tensor: data\[1\] is not a list/);
  assert.throws(() => tensor([1, 'a'] as unknown as number[]), /tensor: data\[1\] is string; expected numbers/);
  assert.throws(() => tensor('abc' as unknown as number[]), /tensor: data is string; expected a typed array/);
  assert.throws(() => tensor([1, 2], [2], { dtype: 'bool' as 'f32' }), /tensor: dtype "bool" is not one of f32, f16, i32, u32/);
  assert.throws(() => zeros([2], { dtype: 'float64' as 'f32' }), /zeros: dtype "float64" is not one of/);
  assert.throws(() => add(x, 'a' as unknown as number), /add: operand 1 is the string "a"; expected a Tensor or a number/);
  assert.throws(() => mul(null as unknown as number, x), /mul: operand 0 is null; expected a Tensor or a number/);
});

test('zeros, ones, full and zerosLike fill every element, in every dtype', async () => {
  assert.deepEqual([...(await zeros([2, 65]).toArray())], new Array(130).fill(0));
  assert.deepEqual([...(await ones([257]).toArray())], new Array(257).fill(1));
  assert.deepEqual([...(await full([3, 1], -2.5).toArray())], [-2.5, -2.5, -2.5]);
  assert.deepEqual([...(await full([2], 7, { dtype: 'i32' }).toArray())], [7, 7]);
  const z = zerosLike(full([4], 3, { dtype: 'u32' }));
  assert.equal(z.dtype, 'u32');
  assert.deepEqual([...(await z.toArray())], [0, 0, 0, 0]);
  if (hasF16()) assert.deepEqual([...(await full([2], 0.1, { dtype: 'f16' }).toArray())], [refRoundToF16(Math.fround(0.1)), refRoundToF16(Math.fround(0.1))]);
});

/** torch.arange: ceil((end - start) / step) values start + i * step. */
function expectedArange(start: number, end: number, step: number): number[] {
  const n = Math.max(0, Math.ceil((end - start) / step));
  return Array.from({ length: n }, (_, i) => Math.fround(start + i * step));
}

test('arange follows torch.arange for integer, negative and fractional steps', async () => {
  const cases: [number, number, number][] = [
    [0, 5, 1],
    [2, 9, 3],
    [5, 0, -1.5],
    [0, 1, 0.1],
    [-1, 1, 0.25],
    [1, 2.5, 0.5],
    [3, 3, 1],
    [0, 257, 1],
  ];
  for (const [start, end, step] of cases) {
    const got = await arange(start, end, step).toArray();
    assertClose(got, expectedArange(start, end, step), { atol: 1e-6, rtol: 1e-6 }, `arange(${start}, ${end}, ${step})`);
  }
  assert.deepEqual([...(await arange(4).toArray())], [0, 1, 2, 3]);
  const ints = arange(10, 0, -3, { dtype: 'i32' });
  assert.equal(ints.dtype, 'i32');
  assert.deepEqual([...(await ints.toArray())], [10, 7, 4, 1]);
});

interface ArangeCase {
  start: number;
  end: number;
  step: number;
  dtype: 'f32' | 'f16' | 'i32';
  values: number[];
}
const torchValues = JSON.parse(readFileSync(new URL('../fixtures/tensor/torch-values.json', import.meta.url), 'utf8')) as { arange: ArangeCase[] };

test('arange gives exactly torch.arange values (float64 steps rounded once; integer dtypes truncate start and step)', async (t) => {
  for (const c of torchValues.arange) {
    if (c.dtype === 'f16' && !hasF16()) {
      t.diagnostic('f16 arange skipped: no shader-f16');
      continue;
    }
    const got = await arange(c.start, c.end, c.step, { dtype: c.dtype }).toArray();
    assert.deepEqual(Array.from(got), c.values, `arange(${c.start}, ${c.end}, ${c.step}, ${c.dtype})`);
  }
  assert.throws(() => arange(0, NaN), (e: Error) => e instanceof ValueError && /arange: end must be a finite number, got NaN/.test(e.message));
  assert.throws(() => arange(0, Infinity), (e: Error) => e instanceof ValueError && /end must be a finite number/.test(e.message));
  assert.throws(() => arange(0, 3, 0.5, { dtype: 'i32' }), (e: Error) => e instanceof ValueError && /0.5 truncates to 0 for i32/.test(e.message));
});

test('randn and rand give the same numbers for the same seed, equal to the Generator host values', async () => {
  const a = await randn([3, 17], { seed: 1234 }).toArray();
  const b = await randn([3, 17], { seed: 1234 }).toArray();
  assert.deepEqual(a, b);
  assert.deepEqual(a, new Generator(1234).fillNormal(new Float32Array(51)));
  const c = await randn([3, 17], { seed: 1235 }).toArray();
  assert.notDeepEqual(a, c);
  const u = await rand([65], { seed: 9 }).toArray();
  assert.deepEqual(u, new Generator(9).fillUniform(new Float32Array(65)));
});

test('f16 randn is the f32 draws rounded to nearest even, and fits any f16 tensor the binding limit holds (not its f32 copy)', async (t) => {
  if (!hasF16()) return t.skip('needs shader-f16');
  const small = await randn([5, 13], { seed: 21, dtype: 'f16' }).toArray();
  assert.deepEqual(small, f16BitsToF32(f32ToF16Bits(new Generator(21).fillNormal(new Float32Array(65)))));
  // 40 million values: 80 MB in f16, 160 MB in f32 (over a 128 MiB binding limit).
  const big = randn([40, 1 << 20], { seed: 3, dtype: 'f16' });
  assert.equal(big.dtype, 'f16');
  const head = (await big.toArray()).subarray(0, 1000);
  big.dispose();
  assert.deepEqual(head, f16BitsToF32(f32ToF16Bits(new Generator(3).fillNormal(new Float32Array(1000)))));
});

function stats(x: ArrayLike<number> & Iterable<number>): { mean: number; std: number; min: number; max: number } {
  let s = 0;
  for (const v of x) s += v;
  const mean = s / x.length;
  let q = 0;
  for (const v of x) q += (v - mean) ** 2;
  return { mean, std: Math.sqrt(q / (x.length - 1)), min: Math.min(...Array.from(x)), max: Math.max(...Array.from(x)) };
}

test('10k randn samples have mean near 0 and std near 1; rand samples lie in [0, 1) with mean 1/2', async () => {
  // Standard errors on 10k samples: mean 0.01 (normal), std about 0.007; bounds are 5 standard errors.
  const n = stats(await randn([10000], { seed: 77 }).toArray());
  assert.ok(Math.abs(n.mean) < 0.05, `randn mean ${n.mean}`);
  assert.ok(Math.abs(n.std - 1) < 0.035, `randn std ${n.std}`);
  const u = stats(await rand([10000], { seed: 78 }).toArray());
  assert.ok(u.min >= 0 && u.max < 1, `rand range [${u.min}, ${u.max}]`);
  assert.ok(Math.abs(u.mean - 0.5) < 0.015, `rand mean ${u.mean}`);
  assert.ok(Math.abs(u.std - Math.sqrt(1 / 12)) < 0.01, `rand std ${u.std}`);
});

test('rand draws k / 2^24 in f32 and k / 2^11 in f16 as torch.rand, so no sample rounds up to 1', async (t) => {
  const u = await rand([4096], { seed: 21 }).toArray();
  assert.ok(u.every((v) => Number.isInteger(v * 2 ** 24) && v >= 0 && v < 1), 'f32 samples are multiples of 2^-24 below 1');
  if (!hasF16()) return t.skip('no shader-f16');
  // a 32-bit draw rounded to f16 gives 1.0 about once in 4096 samples
  const h = (await rand([40000], { seed: 5, dtype: 'f16' }).toArray()) as Float32Array;
  const top = h.reduce((m, v) => Math.max(m, v), 0);
  assert.ok(top < 1, `f16 rand reached ${top}`);
  assert.ok(h.every((v) => Number.isInteger(v * 2 ** 11)), 'f16 samples are multiples of 2^-11');
});

test('f32ToF16Bits and f16BitsToF32 are exact on known bit patterns and round half to even', () => {
  const cases: [number, number][] = [
    [1.0, 0x3c00],
    [-2.0, 0xc000],
    [65504, 0x7bff],
    [2 ** -24, 0x0001],
    [2 ** -14, 0x0400],
    [0.5, 0x3800],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
    [0, 0x0000],
    [-0, 0x8000],
    // Halfway cases: ties go to the even significand.
    [1 + 2 ** -11, 0x3c00],
    [1 + 3 * 2 ** -11, 0x3c02],
    [2 ** -25, 0x0000],
    [3 * 2 ** -25, 0x0002],
    [65519, 0x7bff],
    [65520, 0x7c00],
    [1e6, 0x7c00],
  ];
  const bits = f32ToF16Bits(Float32Array.from(cases.map((c) => c[0])));
  cases.forEach(([v, b], i) => assert.equal(bits[i], b, `f32ToF16Bits(${v}) = 0x${bits[i]!.toString(16)}, expected 0x${b.toString(16)}`));
  const back = f16BitsToF32(Uint16Array.from([0x3c00, 0x7bff, 0x0001, 0x03ff, 0x7c00, 0xfc00, 0x8000]));
  assert.deepEqual([...back], [1, 65504, 2 ** -24, 1023 * 2 ** -24, Infinity, -Infinity, -0]);
  const nan = f32ToF16Bits(Float32Array.from([NaN]))[0]!;
  assert.equal(nan & 0x7c00, 0x7c00, 'NaN keeps an all-ones exponent');
  assert.notEqual(nan & 0x3ff, 0, 'NaN keeps a non-zero significand');
  assert.ok(Number.isNaN(f16BitsToF32(Uint16Array.from([0x7e00]))[0]));
});

test('f32ToF16Bits agrees with the reference rounding on every f16 neighbourhood sampled', () => {
  const values = new Float32Array(4000);
  for (let i = 0; i < values.length; i++) values[i] = (i % 2 ? -1 : 1) * 2 ** ((i % 44) - 26) * (1 + ((i * 7919) % 1024) / 1024 + ((i % 3) - 1) * 2 ** -11);
  const back = f16BitsToF32(f32ToF16Bits(values));
  values.forEach((v, i) => assert.equal(back[i], refRoundToF16(v), `round trip of ${v}`));
});
