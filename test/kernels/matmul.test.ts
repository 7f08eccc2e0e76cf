// Every matmul kernel variant (each tile configuration the per-adapter search may choose, the subgroup
// kernel, the decode matrix-vector kernel; f32 and f16) against the CPU reference, on edge sizes, with
// transposed operands read in place and broadcast batch dims; and the tuning cache round trip.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  f16BitsToF32,
  f32ToF16Bits,
  hasF16,
  matmul,
  matmulCandidates,
  matmulPlan,
  refMatmul,
  refTensor,
  setMatmulVariant,
  tensor,
  toArray,
  transpose,
  tuneMatmul,
  variantName,
  type FloatDType,
  type MatmulVariant,
  type Tensor,
} from '@huatuo/tensor';
import { assertClose, gpu, seededValues } from '../tensor/helpers.js';

const info = await gpu();
const v3Candidate = matmulCandidates(info).find((v) => v.kernel === 'v3');
/** Every candidate, the decode kernel, and v3 reading b packed into column panels at any size. */
const variants: MatmulVariant[] = [...matmulCandidates(info), { kernel: 'matvec' }, ...(v3Candidate ? [{ ...v3Candidate, pack: true }] : [])];
/** What a plan ran, as `check` reports it: the kernel, `+pack` when b was packed first. */
const ranName = (v: MatmulVariant, packed: boolean) => `${v.kernel}${packed ? '+pack' : ''}`;
const dtypes: FloatDType[] = hasF16() ? ['f32', 'f16'] : ['f32'];

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
}

async function check(v: MatmulVariant, dtype: FloatDType, c: Case): Promise<string> {
  const aShape = [...c.batchA, c.M, c.K];
  const bShape = [...c.batchB, c.K, c.N];
  const ad = values(aShape.reduce((p, d) => p * d, 1), c.seed, dtype);
  const bd = values(bShape.reduce((p, d) => p * d, 1), c.seed + 1, dtype);
  const a = make(ad, aShape, c.ta, dtype);
  const b = make(bd, bShape, c.tb, dtype);
  const plan = matmulPlan(a, b);
  const out = matmul(a, b);
  const got = await toArray(out);
  const want = refMatmul(refTensor(ad, aShape), refTensor(bd, bShape));
  assert.deepEqual(out.shape, want.shape);
  const tol = dtype === 'f16' ? { atol: 2e-3 * Math.sqrt(c.K) + 1e-2, rtol: 1e-2 } : { atol: 1e-5 * Math.sqrt(c.K) + 1e-5, rtol: 1e-4 };
  const what = `${variantName(v)} ${dtype} ran ${variantName(plan.kernel)}: a ${JSON.stringify(aShape)}${c.ta ? 'T' : ''} b ${JSON.stringify(bShape)}${c.tb ? 'T' : ''} seed ${c.seed}`;
  assertClose(got, want.data, tol, what);
  // The last row and column, named separately: edge tiles are where kernels go wrong.
  const last = want.data.length - 1;
  assertClose([got[last]!, got[c.N - 1]!], [want.data[last]!, want.data[c.N - 1]!], tol, `${what} (last row/column)`);
  for (const t of [a, b, out]) t.dispose();
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
  });

for (const v of variants) {
  for (const dtype of dtypes) {
    test(`matmul ${variantName(v)} ${dtype} matches the reference on edge sizes, transposed operands and batch dims`, async () => {
      setMatmulVariant(v);
      try {
        const ran = new Set<string>();
        await fc.assert(
          fc.asyncProperty(caseArb(v), async (c) => {
            ran.add(await check(v, dtype, c));
          }),
          { numRuns: 8, seed: 20261125 },
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

test('matmul v3 reads 257 rows with b stored transposed, and falls back for N not a multiple of 4', async (t) => {
  const v3 = variants.find((v) => v.kernel === 'v3');
  if (!v3) return t.skip('adapter has no fixed subgroup size for v3');
  setMatmulVariant(v3);
  try {
    assert.equal(await check(v3, 'f32', { M: 257, K: 36, N: 68, batchA: [], batchB: [], ta: false, tb: true, seed: 7 }), 'v3');
    assert.equal(await check(v3, 'f32', { M: 65, K: 36, N: 66, batchA: [], batchB: [], ta: false, tb: false, seed: 8 }), 'v2');
  } finally {
    setMatmulVariant(null);
  }
});

test('the decode path reads a linear layer weight stored transposed ([N, K]) in place', async () => {
  setMatmulVariant({ kernel: 'matvec' });
  try {
    const c = { M: 1, K: 260, N: 132, batchA: [], batchB: [], ta: false, tb: true, seed: 11 };
    assert.equal(await check({ kernel: 'matvec' }, 'f32', c), 'matvec');
  } finally {
    setMatmulVariant(null);
  }
});

test('the tuning search caches its winner on disk under the adapter and the next product uses it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'huatuo-tune-'));
  const saved = process.env.XDG_CACHE_HOME;
  process.env.XDG_CACHE_HOME = dir;
  try {
    const choice = await tuneMatmul();
    const cache = JSON.parse(readFileSync(join(dir, 'huatuo-webgpu', 'tiles.json'), 'utf8')) as Record<string, { choice: unknown; timings: Record<string, number> }>;
    const entries = Object.values(cache);
    assert.equal(entries.length, 1);
    assert.deepEqual(entries[0]!.choice, choice);
    const names = matmulCandidates(info).map(variantName);
    assert.ok(names.includes(variantName(choice.main)), `winner ${variantName(choice.main)} not among ${names.join(', ')}`);
    assert.deepEqual(Object.keys(entries[0]!.timings).sort(), [...names].sort());
    const a = tensor(seededValues(64 * 64, 3), [64, 64]);
    assert.deepEqual(matmulPlan(a, a).kernel, choice.main);
    a.dispose();
  } finally {
    if (saved === undefined) delete process.env.XDG_CACHE_HOME;
    else process.env.XDG_CACHE_HOME = saved;
    rmSync(dir, { recursive: true, force: true });
  }
});
