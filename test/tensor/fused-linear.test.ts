// The fused decode products (fusedLinear, fusedLinearAdd, fusedLinearSwiglu) against the CPU reference
// in f32 and f16 on off-size shapes, bit for bit equal to matmul (wide matrix-vector kernel) then cat,
// add or swiglu, and where they do not fit.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  ValueError, add, cat, decodeCandidates, deviceInfo, f16BitsToF32, f32ToF16Bits, fusedLinear, fusedLinearAdd, fusedLinearFits,
  fusedLinearSwiglu, hasF16, matmul, noGrad, refFusedLinear, refFusedLinearAdd, refFusedLinearSwiglu, refTensor, setMatmulVariant,
  swiglu, tensor, transpose, type FloatDType, type Tensor,
} from '@huatuo/tensor';
import { assertClose, gpu, scoped, seededValues } from './helpers.js';

function stored(v: Float32Array, dtype: FloatDType): Float32Array {
  return dtype === 'f32' ? v : f16BitsToF32(f32ToF16Bits(v));
}

type Kind = 'cat1' | 'cat2' | 'cat3' | 'add' | 'swiglu';
// [kind, M, K / 8, N of each weight, seed]: K around the kernel's pass of SG * U chunks (and its tails).
// Each M is its own pipeline, slow to compile on lavapipe: a few rows only.
const caseArb = (ms: number[]) =>
  fc.tuple(
    fc.constantFrom<Kind>('cat1', 'cat2', 'cat3', 'add', 'swiglu'),
    fc.constantFrom(...ms),
    fc.constantFrom(1, 5, 32, 33, 65),
    fc.array(fc.constantFrom(1, 3, 17, 66), { minLength: 3, maxLength: 3 }),
    fc.integer({ min: 1, max: 1e6 }),
  );

interface Case {
  x: Tensor;
  ws: Tensor[];
  r: Tensor | null;
  xv: Float32Array;
  wv: Float32Array[];
  rv: Float32Array;
  shape: number[];
}

function inputs(dtype: FloatDType, kind: Kind, M: number, K: number, Ns: number[], seed: number): Case {
  const count = kind === 'cat1' || kind === 'add' ? 1 : kind === 'cat3' ? 3 : 2;
  const n = (i: number) => (kind === 'swiglu' ? Ns[0]! : Ns[i]!);
  const shape = M === 1 ? [1, 1, K] : [M, 1, K];
  const xv = stored(seededValues(M * K, seed), dtype);
  const wv = Array.from({ length: count }, (_, i) => stored(seededValues(n(i) * K, seed + 1 + i, 0.2), dtype));
  const rv = stored(seededValues(M * n(0), seed + 9, 2), dtype);
  const x = tensor(xv, shape, { dtype });
  const ws = wv.map((v, i) => tensor(v, [n(i), K], { dtype }));
  const r = kind === 'add' ? tensor(rv, [...shape.slice(0, -1), n(0)], { dtype }) : null;
  return { x, ws, r, xv, wv, rv, shape };
}

function fused(kind: Kind, c: Case): Tensor {
  return noGrad(() => (kind === 'add' ? fusedLinearAdd(c.r!, c.x, c.ws[0]!) : kind === 'swiglu' ? fusedLinearSwiglu(c.x, c.ws[0]!, c.ws[1]!) : fusedLinear(c.x, c.ws)));
}

async function checkReference(dtype: FloatDType, [kind, M, K8, Ns, seed]: [Kind, number, number, number[], number]): Promise<void> {
  const K = 8 * K8;
  await scoped(async () => {
    const c = inputs(dtype, kind, M, K, Ns, seed);
    const what = `${kind} ${dtype} M ${M} K ${K} N [${c.ws.map((w) => w.shape[0])}] seed ${seed}`;
    assert.ok(fusedLinearFits(c.x, c.ws), `${what}: fits`);
    const y = await fused(kind, c).toArray();
    const x = refTensor(c.xv, c.shape);
    const ws = c.wv.map((v, i) => refTensor(v, c.ws[i]!.shape));
    const expected =
      kind === 'add' ? refFusedLinearAdd(refTensor(c.rv, c.r!.shape), x, ws[0]!) : kind === 'swiglu' ? refFusedLinearSwiglu(x, ws[0]!, ws[1]!) : refFusedLinear(x, ws);
    const tol = dtype === 'f32' ? { atol: 1e-5, rtol: 1e-4 } : { atol: 4e-3, rtol: 4e-3 };
    assertClose(y, expected.data, tol, what);
  });
}

test('fused decode products match the CPU reference in f32 on off-size shapes', async (t) => {
  const info = await gpu();
  if (decodeCandidates(info).length === 1) return t.skip('adapter has no fixed subgroup size');
  await fc.assert(fc.asyncProperty(caseArb([1, 3]), (c) => checkReference('f32', c)), { numRuns: 25 });
});

test('fused decode products match the CPU reference in f16 on off-size shapes', async (t) => {
  const info = await gpu();
  if (decodeCandidates(info).length === 1) return t.skip('adapter has no fixed subgroup size');
  if (!hasF16()) return t.skip('adapter lacks shader-f16');
  await fc.assert(fc.asyncProperty(caseArb([1, 2]), (c) => checkReference('f16', c)), { numRuns: 20 });
});

test('a fused product of one row equals matmul with the wide matrix-vector kernel, then cat, add or swiglu, bit for bit (f16 SwiGLU within an ulp)', async (t) => {
  const info = await gpu();
  const wide = decodeCandidates(info).find((v) => v.wide && v.groups === undefined);
  if (wide === undefined) return t.skip('adapter has no fixed subgroup size');
  setMatmulVariant(wide);
  try {
    for (const dtype of hasF16() ? (['f32', 'f16'] as const) : (['f32'] as const)) {
      for (const kind of ['cat3', 'add', 'swiglu'] as const) {
        await scoped(async () => {
          const c = inputs(dtype, kind, 1, 8 * 33, [16, 4, 64], 11); // N multiples of 4: matmul reads w in vec4 rows
          const products = c.ws.map((w) => matmul(c.x, transpose(w)));
          const composed = noGrad(() => (kind === 'add' ? add(c.r!, products[0]!) : kind === 'swiglu' ? swiglu(products[0]!, products[1]!) : cat(products, -1)));
          // f16 SwiGLU: lavapipe's compiler may skip the f16 rounding of g and u inside one kernel (1 ulp of f16).
          const tol = dtype === 'f16' && kind === 'swiglu' ? { atol: 1e-7, rtol: 2 ** -10 } : { atol: 0, rtol: 0 };
          assertClose(await fused(kind, c).toArray(), await composed.toArray(), tol, `${kind} ${dtype} against the composed ops`);
        });
      }
    }
  } finally {
    setMatmulVariant(null);
  }
});

test('fused products refuse what they do not fit: K off the 16-byte chunk, more than 4 rows, a recorded gradient', async (t) => {
  const info = await gpu();
  if (decodeCandidates(info).length === 1) return t.skip('adapter has no fixed subgroup size');
  assert.ok(deviceInfo() !== null);
  await scoped(async () => {
    const w = tensor(seededValues(3 * 6, 1), [3, 6]);
    assert.equal(fusedLinearFits(tensor(seededValues(6, 2), [1, 6]), [w]), false);
    assert.throws(() => noGrad(() => fusedLinear(tensor(seededValues(6, 2), [1, 6]), [w])), ValueError);
    const w8 = tensor(seededValues(3 * 8, 1), [3, 8]);
    assert.equal(fusedLinearFits(tensor(seededValues(5 * 8, 2), [5, 8]), [w8]), false);
    const x = tensor(seededValues(8, 2), [1, 8]).requireGrad();
    assert.equal(fusedLinearFits(x, [w8]), false);
    assert.equal(noGrad(() => fusedLinearFits(x, [w8])), true);
  });
});
