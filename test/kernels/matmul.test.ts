// Every matmul kernel variant (each tile configuration the per-adapter search may choose, the subgroup
// kernel, the GPU-shaped v4, the decode matrix-vector kernels; f32 and f16; subgroup matrices where the
// adapter has them) against the CPU reference, on edge sizes, with transposed operands read in place and
// broadcast batch dims, with a bias and an addend (torch.addmm's input, times alpha) in the epilogue.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  add,
  f16BitsToF32,
  f32ToF16Bits,
  hasF16,
  matmul,
  mul,
  decodeCandidates,
  matmulCandidates,
  matmulPlan,
  matmulSplitBytes,
  refAddmm,
  refMatmul,
  refTensor,
  setMatmulVariant,
  tensor,
  toArray,
  transpose,
  variantName,
  type FloatDType,
  type MatmulVariant,
  type Tensor,
} from '@huatuo/tensor';
import { runMatmul, splitFor, splitPartialBound } from '@huatuo/tensor/internal';
import { assertClose, gpu, seededValues } from '../tensor/helpers.js';

const info = await gpu();
const v3Candidate = matmulCandidates(info).find((v) => v.kernel === 'v3');
const gpuShaped: MatmulVariant[] = [
  { kernel: 'v4', tile: 128 },
  { kernel: 'v4', tile: 64 },
];
/** The wide decode kernel with several subgroups a workgroup (a candidate on GPUs only). */
const gpuDecode: MatmulVariant[] = v3Candidate?.kernel === 'v3' ? [{ kernel: 'matvec', sg: v3Candidate.sg, wide: true, groups: 4 }] : [];
/** Every candidate, v4 and the many-subgroup decode kernel (candidates on GPUs only), the decode kernels, and v3 reading b packed into column panels at any size. */
const variants: MatmulVariant[] = [
  ...matmulCandidates(info),
  ...gpuShaped.filter((v) => !matmulCandidates(info).some((c) => variantName(c) === variantName(v))),
  ...decodeCandidates(info),
  ...gpuDecode.filter((v) => !decodeCandidates(info).some((c) => variantName(c) === variantName(v))),
  ...(v3Candidate ? [{ ...v3Candidate, pack: true }] : []),
];
/** What a plan ran, as `check` reports it: the variant, `+pack` when b was packed first. */
const ranName = (v: MatmulVariant, packed: boolean) => `${variantName(v)}${packed ? '+pack' : ''}`;
const dtypesOf = (v: MatmulVariant): FloatDType[] => (v.kernel === 'sgmat' ? ['f16'] : hasF16() ? ['f32', 'f16'] : ['f32']);

const numelOf = (shape: number[]) => shape.reduce((p, d) => p * d, 1);

/** Values exactly representable in the dtype, so the reference sees what the kernel reads. */
function values(n: number, seed: number, dtype: FloatDType): Float32Array {
  const v = seededValues(n, seed);
  return dtype === 'f16' ? f16BitsToF32(f32ToF16Bits(v)) : v;
}

/** Row-major [..., R, C] data of `shape`, as a tensor stored transposed (last two dims swapped) or not. */
function make(data: Float32Array, shape: number[], transposed: boolean, dtype: FloatDType): Tensor {
  if (!transposed) return tensor(data, shape, { dtype });
  const [R, C] = shape.slice(-2) as [number, number];
  const batch = data.length / (R * C);
  const t = new Float32Array(data.length);
  for (let b = 0; b < batch; b++) for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) t[b * R * C + c * R + r] = data[b * R * C + r * C + c]!;
  return transpose(tensor(t, [...shape.slice(0, -2), C, R], { dtype }));
}

interface Case {
  M: number;
  K: number;
  N: number;
  batchA: number[];
  batchB: number[];
  ta: boolean;
  tb: boolean;
  seed: number;
  /** A bias [N] added in the kernel's epilogue (linear's addmm). */
  bias?: boolean;
  /** An addend of the product's shape (read past an offset) plus alpha times the product, in the epilogue (linearAdd's). */
  alpha?: number;
}

async function check(v: MatmulVariant, dtype: FloatDType, c: Case): Promise<string> {
  const aShape = [...c.batchA, c.M, c.K];
  const bShape = [...c.batchB, c.K, c.N];
  const ad = values(aShape.reduce((p, d) => p * d, 1), c.seed, dtype);
  const bd = values(bShape.reduce((p, d) => p * d, 1), c.seed + 1, dtype);
  const a = make(ad, aShape, c.ta, dtype);
  const b = make(bd, bShape, c.tb, dtype);
  const biasData = c.bias ? values(c.N, c.seed + 2, dtype) : null;
  const bias = biasData ? tensor(biasData, [c.N], { dtype }) : null;
  const plan = matmulPlan(a, b);
  // The broadcast batch dims (right-aligned, each the larger of the two).
  const rank = Math.max(c.batchA.length, c.batchB.length);
  const dimAt = (s: number[], i: number) => s[s.length - rank + i] ?? 1;
  const outShape = [...Array.from({ length: rank }, (_, i) => Math.max(dimAt(c.batchA, i), dimAt(c.batchB, i))), c.M, c.N];
  // The addend starts 3 elements into its buffer, so that a kernel reading it from element 0 fails.
  const addendData = c.alpha === undefined ? null : values(numelOf(outShape) + 3, c.seed + 3, dtype);
  const addendBase = addendData ? tensor(addendData, [addendData.length], { dtype }) : null;
  const addend = addendBase ? addendBase.slice(0, 3, addendData!.length).reshape(outShape) : null;
  const out = addend ? runMatmul('matmul', a, b, bias ?? undefined, { tensor: addend, alpha: c.alpha! }) : bias ? runMatmul('matmul', a, b, bias) : matmul(a, b);
  const got = await toArray(out);
  const [ra, rb, rbias] = [refTensor(ad, aShape), refTensor(bd, bShape), biasData ? refTensor(biasData, [c.N]) : undefined];
  const want = addendData ? refAddmm(refTensor(addendData.subarray(3), outShape), ra, rb, c.alpha!, rbias) : refMatmul(ra, rb, rbias);
  assert.deepEqual(out.shape, want.shape);
  const tol = dtype === 'f16' ? { atol: 2e-3 * Math.sqrt(c.K) + 1e-2, rtol: 1e-2 } : { atol: 1e-5 * Math.sqrt(c.K) + 1e-5, rtol: 1e-4 };
  const what = `${variantName(v)} ${dtype} ran ${variantName(plan.kernel)}: a ${JSON.stringify(aShape)}${c.ta ? 'T' : ''} b ${JSON.stringify(bShape)}${c.tb ? 'T' : ''}${bias ? ' + bias' : ''}${addend ? ` into an addend times ${c.alpha}` : ''} seed ${c.seed}`;
  assertClose(got, want.data, tol, what);
  // The last row and column, named separately: edge tiles are where kernels go wrong.
  const last = want.data.length - 1;
  assertClose([got[last]!, got[c.N - 1]!], [want.data[last]!, want.data[c.N - 1]!], tol, `${what} (last row/column)`);
  for (const t of [a, b, out, ...(bias ? [bias] : []), ...(addend ? [addend, addendBase!] : [])]) t.dispose();
  return ranName(plan.kernel, plan.packB);
}

const dim = fc.constantFrom(1, 3, 4, 17, 31, 32, 33, 64, 65);
const dim4 = fc.constantFrom(4, 8, 28, 32, 36, 64, 68);
const caseArb = (v: MatmulVariant) =>
  fc.record({
    M: v.kernel === 'matvec' ? fc.constant(1) : dim,
    K: v.kernel === 'v3' || v.kernel === 'matvec' ? dim4 : dim,
    N: v.kernel === 'v3' || v.kernel === 'matvec' ? dim4 : dim,
    batchA: fc.constantFrom<number[]>([], [2], [2, 1]),
    batchB: fc.constantFrom<number[]>([], [2]),
    ta: v.kernel === 'matvec' ? fc.constant(false) : fc.boolean(),
    tb: fc.boolean(),
    seed: fc.integer({ min: 1, max: 1 << 30 }),
    bias: fc.boolean(),
    alpha: fc.constantFrom(undefined, 1, -0.75, 2.5),
  });

for (const v of variants) {
  for (const dtype of dtypesOf(v)) {
    test(`matmul ${variantName(v)} ${dtype} matches the reference on edge sizes, transposed operands and batch dims`, async () => {
      setMatmulVariant(v);
      try {
        const ran = new Set<string>();
        await fc.assert(
          fc.asyncProperty(caseArb(v), async (c) => {
            ran.add(await check(v, dtype, c));
          }),
          { numRuns: 10, seed: 20261125 },
        );
        // The variant itself ran on some of the cases (not only its fallback).
        const own = ranName(v, v.kernel === 'v3' && v.pack === true);
        assert.ok(ran.has(own), `${variantName(v)} never ran as ${own}; ran ${[...ran].join(', ')}`);
      } finally {
        setMatmulVariant(null);
      }
    });
  }
}

/**
 * A product whose f32 sums are exactly 2049 in every column (x = [2048, 1, 0, ...] times rows [1, 1, 0, ...])
 * with a bias of 1: rounded once, 2049 + 1 = 2050 is an f16 value; rounded twice, 2049 rounds to 2048 (ties
 * to even) and 2048 + 1 rounds to 2048 again.
 */
async function roundsOnce(v: MatmulVariant, M: number, K: number, N: number): Promise<string> {
  const xd = new Float32Array(M * K);
  for (let m = 0; m < M; m++) [xd[m * K], xd[m * K + 1]] = [2048, 1];
  const wd = new Float32Array(N * K);
  for (let n = 0; n < N; n++) [wd[n * K], wd[n * K + 1]] = [1, 1];
  const x = tensor(xd, [M, K], { dtype: 'f16' });
  const w = tensor(wd, [N, K], { dtype: 'f16' });
  const bias = tensor(new Float32Array(N).fill(1), [N], { dtype: 'f16' });
  const plan = matmulPlan(x, transpose(w));
  const got = await toArray(runMatmul('matmul', x, transpose(w), bias));
  const what = `${variantName(v)} ran ${variantName(plan.kernel)} on [${M}, ${K}] x [${N}, ${K}]T`;
  assert.ok(got.every((y) => y === 2050), `${what}: ${[...new Set(got)].join(', ')} where the bias rounded with the sum is 2050 everywhere`);
  // The two roundings of matmul then add differ, so the comparison above tells one rounding from two.
  const twice = await toArray(add(matmul(x, transpose(w)), bias));
  assert.equal(twice[0], 2048, `${what}: matmul then add`);
  for (const t of [x, w, bias]) t.dispose();
  return `${variantName(plan.kernel)}${plan.splitK > 1 ? ` in ${plan.splitK} slices of k` : ''}`;
}

/**
 * The product of roundsOnce (f32 sums 2049) times alpha = 0.5 into an addend of 1025: rounded once,
 * 1025 + 1024.5 = 2049.5 rounds to 2050; the separate ops round the sum to 2048, halve it to 1024 and round
 * 1025 + 1024 = 2049 to 2048.
 */
async function addsOnce(v: MatmulVariant, M: number, K: number, N: number): Promise<string> {
  const xd = new Float32Array(M * K);
  for (let m = 0; m < M; m++) [xd[m * K], xd[m * K + 1]] = [2048, 1];
  const wd = new Float32Array(N * K);
  for (let n = 0; n < N; n++) [wd[n * K], wd[n * K + 1]] = [1, 1];
  const x = tensor(xd, [M, K], { dtype: 'f16' });
  const w = tensor(wd, [N, K], { dtype: 'f16' });
  const addend = tensor(new Float32Array(M * N).fill(1025), [M, N], { dtype: 'f16' });
  const plan = matmulPlan(x, transpose(w));
  const got = await toArray(runMatmul('matmul', x, transpose(w), undefined, { tensor: addend, alpha: 0.5 }));
  const what = `${variantName(v)} ran ${variantName(plan.kernel)} on 1025 + 0.5 [${M}, ${K}] x [${N}, ${K}]T`;
  assert.ok(got.every((y) => y === 2050), `${what}: ${[...new Set(got)].join(', ')} where the addend rounded with the sum is 2050 everywhere`);
  const separate = await toArray(add(addend, mul(matmul(x, transpose(w)), 0.5)));
  assert.equal(separate[0], 2048, `${what}: matmul, mul then add`);
  for (const t of [x, w, addend]) t.dispose();
  return `${variantName(plan.kernel)}${plan.splitK > 1 ? ` in ${plan.splitK} slices of k` : ''}`;
}

for (const v of variants) {
  if (!dtypesOf(v).includes('f16')) continue;
  test(`matmul ${variantName(v)} f16 adds alpha times the sum to an addend before its one rounding, as torch.addmm does`, async () => {
    setMatmulVariant(v);
    try {
      const sizes = v.kernel === 'matvec' ? [[1, 8, 44], [1, 136, 37]] : v.kernel === 'v3' ? [[37, 8, 52], [3, 16, 4]] : [[37, 6, 35], [65, 16, 130]];
      const ran = new Set<string>();
      for (const [M, K, N] of sizes) ran.add(await addsOnce(v, M!, K!, N!));
      assert.ok(ran.has(variantName(v)), `${variantName(v)} never ran; ran ${[...ran].join(', ')}`);
    } finally {
      setMatmulVariant(null);
    }
  });
}

for (const v of variants) {
  if (!dtypesOf(v).includes('f16')) continue;
  test(`matmul ${variantName(v)} f16 adds the bias to the f32 sum before its one rounding, as addmm does`, async () => {
    setMatmulVariant(v);
    try {
      const sizes = v.kernel === 'matvec' ? [[1, 8, 44], [1, 136, 37]] : v.kernel === 'v3' ? [[37, 8, 52], [3, 16, 4]] : [[37, 6, 35], [65, 16, 130]];
      const ran = new Set<string>();
      for (const [M, K, N] of sizes) ran.add(await roundsOnce(v, M!, K!, N!));
      assert.ok(ran.has(variantName(v)), `${variantName(v)} never ran; ran ${[...ran].join(', ')}`);
    } finally {
      setMatmulVariant(null);
    }
  });
}

test('matmul v3 reads 257 rows with b stored transposed, and falls back for N not a multiple of 4', async (t) => {
  const v3 = variants.find((v) => v.kernel === 'v3');
  if (!v3) return t.skip('adapter has no fixed subgroup size for v3');
  setMatmulVariant(v3);
  try {
    assert.equal(await check(v3, 'f32', { M: 257, K: 36, N: 68, batchA: [], batchB: [], ta: false, tb: true, seed: 7 }), variantName(v3));
    assert.equal(await check(v3, 'f32', { M: 65, K: 36, N: 66, batchA: [], batchB: [], ta: false, tb: false, seed: 8 }), 'v2(tile=32)');
  } finally {
    setMatmulVariant(null);
  }
});

test('matmul v4 stages every operand layout, as vec4s where aligned and element by element elsewhere', async () => {
  for (const v of gpuShaped) {
    setMatmulVariant(v);
    try {
      for (const dtype of dtypesOf(v)) {
        for (const ta of [false, true]) {
          for (const tb of [false, true]) {
            // Aligned runs (vec4 loads) past a tile edge, then odd sizes (element loads), then a batch.
            await check(v, dtype, { M: 132, K: 40, N: 136, batchA: [], batchB: [], ta, tb, seed: 21 });
            await check(v, dtype, { M: 131, K: 39, N: 133, batchA: [], batchB: [], ta, tb, seed: 22 });
            await check(v, dtype, { M: 20, K: 36, N: 12, batchA: [3], batchB: [3], ta, tb, seed: 23 });
          }
        }
      }
    } finally {
      setMatmulVariant(null);
    }
  }
});

test('a product that fills few workgroups is split along k into f32 partial sums, summed in order, where the choice asks for it', async () => {
  // One of each tiling kernel (the tile sizes share their code), every subgroup-matrix config.
  const tiling: MatmulVariant[] = [{ kernel: 'v1' }, { kernel: 'v2', tile: 32 }, { kernel: 'v4', tile: 64 }, ...variants.filter((v) => v.kernel === 'sgmat' && !v.direct)];
  // [case, slices of k expected]: the LoRA shapes (rank 8 on one side), a batch, a slice length that is not
  // a multiple of 4 (element loads), and a K no power of two divides (not split).
  const cases: Array<[Case, number]> = [
    [{ M: 33, K: 1024, N: 8, batchA: [], batchB: [], ta: false, tb: true, seed: 31, bias: true, alpha: 2.5 }, 4],
    [{ M: 8, K: 768, N: 40, batchA: [], batchB: [], ta: true, tb: false, seed: 32 }, 2],
    [{ M: 17, K: 512, N: 12, batchA: [2], batchB: [2], ta: false, tb: false, seed: 33, bias: true }, 2],
    [{ M: 8, K: 512, N: 12, batchA: [2], batchB: [2], ta: true, tb: false, seed: 36, alpha: 1 }, 2],
    [{ M: 9, K: 1030, N: 8, batchA: [], batchB: [], ta: false, tb: true, seed: 34 }, 2],
    [{ M: 9, K: 1001, N: 8, batchA: [], batchB: [], ta: false, tb: true, seed: 35 }, 1],
  ];
  for (const v of tiling) {
    setMatmulVariant(v, { splitK: 1024 });
    try {
      for (const dtype of dtypesOf(v)) {
        for (const [c, slices] of cases) {
          const a = make(values(numelOf([...c.batchA, c.M, c.K]), 1, dtype), [...c.batchA, c.M, c.K], c.ta, dtype);
          const b = make(values(numelOf([...c.batchB, c.K, c.N]), 2, dtype), [...c.batchB, c.K, c.N], c.tb, dtype);
          assert.equal(matmulPlan(a, b).splitK, slices, `${variantName(v)} ${dtype} M ${c.M} K ${c.K} N ${c.N}: slices of k`);
          // The memory plan's bound covers the partial products this split allocates.
          const partials = slices > 1 ? slices * numelOf(c.batchA) * c.M * c.N * 4 : 0;
          assert.ok(partials <= splitPartialBound(c.M, c.K, c.N, numelOf(c.batchA), info.maxStorageBufferBindingSize), `M ${c.M} K ${c.K} N ${c.N}: ${partials} bytes of partials beyond the bound`);
          // What the device's choice splits (the forced variant and its fallback), as the memory plan asks for it.
          if (v.kernel === 'sgmat') assert.ok(matmulSplitBytes(c.M, c.K, c.N, numelOf(c.batchA)) >= partials);
          else assert.equal(matmulSplitBytes(c.M, c.K, c.N, numelOf(c.batchA)), partials);
          for (const t of [a, b]) t.dispose();
          assert.equal(await check(v, dtype, c), variantName(v));
        }
      }
      // The bias is added once, to the sum of the slices.
      if (dtypesOf(v).includes('f16')) assert.equal(await roundsOnce(v, 9, 1024, 8), `${variantName(v)} in 4 slices of k`);
      // So is the addend.
      if (dtypesOf(v).includes('f16')) assert.equal(await addsOnce(v, 9, 1024, 8), `${variantName(v)} in 4 slices of k`);
    } finally {
      setMatmulVariant(null);
    }
  }
});

test('the partial products of any split along k stay within the bound the memory plan counts', () => {
  const tiling: MatmulVariant[] = [{ kernel: 'v1' }, { kernel: 'v2', tile: 32 }, { kernel: 'v2', tile: 64 }, { kernel: 'v4', tile: 128 }, ...matmulCandidates(info).filter((v) => v.kernel === 'sgmat')];
  const dim = fc.oneof(fc.integer({ min: 1, max: 300 }), fc.constantFrom(8, 64, 128, 2048, 4096, 11008, 32000));
  fc.assert(
    fc.property(dim, dim, dim, fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 4096 }), fc.constantFrom(128 << 20, 1 << 30), (M, K, N, batch, target, maxBinding) => {
      const bound = splitPartialBound(M, K, N, batch, maxBinding);
      for (const v of tiling) {
        const slices = splitFor({ M, K, N, batchShape: batch === 1 ? [] : [batch] }, v, target, maxBinding);
        const partials = slices > 1 ? slices * batch * M * N * 4 : 0;
        if (partials > bound) return false;
      }
      return true;
    }),
    { numRuns: 500, seed: 7 },
  );
  // A rank-8 LoRA product at LLaMA-7B width and a short prompt's projection can split; lm_head cannot.
  assert.ok(splitPartialBound(2048, 4096, 8, 1, 1 << 30) > 0);
  assert.equal(splitPartialBound(64, 4096, 4096, 1, 1 << 30), 16 << 20);
  assert.equal(splitPartialBound(512, 4096, 32000, 1, 1 << 30), 0);
});

test('the decode paths read a linear layer weight stored transposed ([N, K]) in place', async () => {
  for (const v of [...decodeCandidates(info), ...gpuDecode]) {
    setMatmulVariant(v);
    try {
      const c = { M: 1, K: 260, N: 132, batchA: [], batchB: [], ta: false, tb: true, seed: 11 };
      assert.equal(await check(v, 'f32', c), variantName(v));
    } finally {
      setMatmulVariant(null);
    }
  }
});

test('the subgroup-matrix variants match the reference where the adapter offers subgroup matrices', async (t) => {
  const sgmat = matmulCandidates(info).filter((v) => v.kernel === 'sgmat');
  if (sgmat.length === 0) {
    return t.skip(`adapter offers no f16 subgroup-matrix config (needs chromium-experimental-subgroup-matrix: HUATUO_UNSAFE_APIS=1)`);
  }
  for (const v of sgmat) {
    if (v.kernel !== 'sgmat') continue;
    setMatmulVariant(v);
    try {
      // The direct kernel runs tile-aligned products itself and hands the others to the staged one.
      const staged = variantName({ ...v, direct: false });
      for (const c of [
        { M: 130, K: 72, N: 136, batchA: [], batchB: [], ta: false, tb: true, seed: 3 },
        { M: 33, K: 19, N: 65, batchA: [2], batchB: [2], ta: true, tb: false, seed: 4, bias: true },
      ]) {
        assert.equal(await check(v, 'f16', c), staged);
      }
      if (v.direct) {
        for (const c of [
          { M: 2 * v.tm, K: 96, N: v.tn, batchA: [], batchB: [], ta: false, tb: true, seed: 5 },
          { M: v.tm, K: 64, N: 2 * v.tn, batchA: [2], batchB: [2], ta: true, tb: false, seed: 6, bias: true },
        ]) {
          assert.equal(await check(v, 'f16', c), variantName(v));
        }
      }
    } finally {
      setMatmulVariant(null);
    }
  }
});

test('the direct subgroup-matrix kernel plans tile-aligned products only; the staged kernel of its tiles plans the rest', async (t) => {
  if (!hasF16()) return t.skip('adapter has no shader-f16');
  const v: MatmulVariant = { kernel: 'sgmat', m: 16, n: 16, k: 16, sg: 32, tm: 64, tn: 64, wm: 32, wn: 32, direct: true };
  const staged = variantName({ ...v, direct: false });
  const planned = (aShape: number[], bShape: number[], ta: boolean, tb: boolean, dtype: FloatDType = 'f16') => {
    const a = make(new Float32Array(numelOf(aShape)), aShape, ta, dtype);
    const b = make(new Float32Array(numelOf(bShape)), bShape, tb, dtype);
    try {
      return variantName(matmulPlan(a, b).kernel);
    } finally {
      for (const x of [a, b]) x.dispose();
    }
  };
  setMatmulVariant(v);
  try {
    assert.equal(planned([128, 64], [64, 192], false, true), variantName(v), 'x W^T');
    assert.equal(planned([2, 64, 96], [2, 96, 64], true, false), variantName(v), 'batched, a read along m');
    assert.equal(planned([100, 64], [64, 64], false, true), staged, 'M off the tile');
    assert.equal(planned([64, 64], [64, 72], false, false), staged, 'N off the tile');
    assert.equal(planned([64, 48], [48, 64], false, false), staged, 'K off the k step');
    // A column slice: rows 8-aligned, but the operand starts 4 elements in (not on a 16-byte row).
    const wide = tensor(new Float32Array(64 * 72), [64, 72], { dtype: 'f16' });
    const b = tensor(new Float32Array(64 * 64), [64, 64], { dtype: 'f16' });
    const sliced = wide.slice(1, 4, 68);
    assert.equal(variantName(matmulPlan(sliced, b).kernel), staged, 'a at an offset of 4 elements');
    for (const x of [wide, b, sliced]) x.dispose();
    assert.notEqual(planned([128, 64], [64, 192], false, true, 'f32').slice(0, 5), 'sgmat', 'f32 runs the fallback');
  } finally {
    setMatmulVariant(null);
  }
});
