// The fused decode products (fusedLinear, fusedLinearAdd, fusedLinearSwiglu) against the CPU reference
// in f32 and f16 on off-size shapes (with and without the RMSNorm of x first), bit for bit equal to
// rmsNorm, matmul (wide matrix-vector kernel) then cat, add or swiglu, and where they do not fit.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  ValueError, add, cat, decodeCandidates, deviceInfo, f16BitsToF32, f32ToF16Bits, fusedLinear, fusedLinearAdd, fusedLinearFits,
  fusedLinearSwiglu, hasF16, matmul, noGrad, refFusedLinear, refFusedLinearAdd, refFusedLinearSwiglu, refRmsNorm, refTensor, rmsNorm, setMatmulVariant,
  swiglu, tensor, transpose, checkFusedLinear, fusedLinearPreferred, readyFusedLinear, type FloatDType, type Tensor,
} from '@huatuo/tensor';
import { assertClose, gpu, scoped, seededValues } from './helpers.js';

function stored(v: Float32Array, dtype: FloatDType): Float32Array {
  return dtype === 'f32' ? v : f16BitsToF32(f32ToF16Bits(v));
}

type Kind = 'cat1' | 'cat2' | 'cat3' | 'add' | 'swiglu';
// [kind, M, K / 8, N of each weight, seed]: K around the kernel's pass of SG * U chunks (and its tails).
// Each M is its own pipeline, slow to compile on lavapipe (f32 most): several rows in f16 only.
const caseArb = (ms: number[]) =>
  fc.tuple(
    fc.constantFrom<Kind>('cat1', 'cat2', 'cat3', 'add', 'swiglu'),
    fc.constantFrom(...ms),
    fc.constantFrom(1, 5, 32, 33, 65),
    fc.array(fc.constantFrom(1, 3, 17, 66), { minLength: 3, maxLength: 3 }),
    fc.integer({ min: 1, max: 1e6 }),
    fc.boolean(),
  );

interface Case {
  x: Tensor;
  ws: Tensor[];
  r: Tensor | null;
  xv: Float32Array;
  wv: Float32Array[];
  rv: Float32Array;
  shape: number[];
  /** The RMSNorm weight [K] applied to x first (cat and swiglu), or null. */
  g: Tensor | null;
  gv: Float32Array;
}

const EPS = 1e-5;

function inputs(dtype: FloatDType, kind: Kind, M: number, K: number, Ns: number[], seed: number, norm = false): Case {
  const count = kind === 'cat1' || kind === 'add' ? 1 : kind === 'cat3' ? 3 : 2;
  const n = (i: number) => (kind === 'swiglu' ? Ns[0]! : Ns[i]!);
  const shape = M === 1 ? [1, 1, K] : [M, 1, K];
  const xv = stored(seededValues(M * K, seed), dtype);
  const wv = Array.from({ length: count }, (_, i) => stored(seededValues(n(i) * K, seed + 1 + i, 0.2), dtype));
  const rv = stored(seededValues(M * n(0), seed + 9, 2), dtype);
  const x = tensor(xv, shape, { dtype });
  const ws = wv.map((v, i) => tensor(v, [n(i), K], { dtype }));
  const r = kind === 'add' ? tensor(rv, [...shape.slice(0, -1), n(0)], { dtype }) : null;
  const gv = stored(seededValues(K, seed + 13, 2), dtype);
  const g = norm && kind !== 'add' ? tensor(gv, [K], { dtype }) : null;
  return { x, ws, r, xv, wv, rv, shape, g, gv };
}

function fused(kind: Kind, c: Case): Tensor {
  const norm = c.g === null ? undefined : { weight: c.g, eps: EPS };
  return noGrad(() => (kind === 'add' ? fusedLinearAdd(c.r!, c.x, c.ws[0]!) : kind === 'swiglu' ? fusedLinearSwiglu(c.x, c.ws[0]!, c.ws[1]!, norm) : fusedLinear(c.x, c.ws, norm)));
}

async function checkReference(dtype: FloatDType, [kind, M, K8, Ns, seed, norm]: [Kind, number, number, number[], number, boolean]): Promise<void> {
  const K = 8 * K8;
  await scoped(async () => {
    const c = inputs(dtype, kind, M, K, Ns, seed, norm);
    const what = `${kind} ${dtype} M ${M} K ${K} N [${c.ws.map((w) => w.shape[0])}] norm ${c.g !== null} seed ${seed}`;
    assert.ok(fusedLinearFits(c.x, c.ws, c.g === null ? undefined : { weight: c.g, eps: EPS }), `${what}: fits`);
    const y = await fused(kind, c).toArray();
    const x = c.g === null ? refTensor(c.xv, c.shape) : refRmsNorm(refTensor(c.xv, c.shape), refTensor(c.gv, [K]), EPS);
    const ws = c.wv.map((v, i) => refTensor(v, c.ws[i]!.shape));
    const expected =
      kind === 'add' ? refFusedLinearAdd(refTensor(c.rv, c.r!.shape), x, ws[0]!) : kind === 'swiglu' ? refFusedLinearSwiglu(x, ws[0]!, ws[1]!) : refFusedLinear(x, ws);
    // With the norm, x's entries are of order 1 (not 1 / sqrt(3)) and each is rounded once more in f16.
    const scale = c.g === null ? 1 : 5;
    const tol = dtype === 'f32' ? { atol: 1e-5 * scale, rtol: 1e-4 } : { atol: 4e-3 * scale, rtol: 4e-3 };
    assertClose(y, expected.data, tol, what);
  });
}

test('fused decode products match the CPU reference in f32 on off-size shapes, one row', async (t) => {
  const info = await gpu();
  if (decodeCandidates(info).length === 1) return t.skip('adapter has no fixed subgroup size');
  await fc.assert(fc.asyncProperty(caseArb([1]), (c) => checkReference('f32', c)), { numRuns: 25 });
});

test('fused decode products match the CPU reference in f16 on off-size shapes, one and two rows', async (t) => {
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
      for (const [kind, norm] of [['cat3', false], ['add', false], ['swiglu', false], ['cat3', true], ['swiglu', true]] as const) {
        await scoped(async () => {
          const c = inputs(dtype, kind, 1, 8 * 33, [16, 4, 64], 11, norm); // N multiples of 4: matmul reads w in vec4 rows
          const x = c.g === null ? c.x : rmsNorm(c.x, c.g, EPS);
          const products = c.ws.map((w) => matmul(x, transpose(w)));
          const composed = noGrad(() => (kind === 'add' ? add(c.r!, products[0]!) : kind === 'swiglu' ? swiglu(products[0]!, products[1]!) : cat(products, -1)));
          // f16 SwiGLU and norm: lavapipe's compiler may skip an f16 rounding inside one kernel (an ulp of f16 and its sums).
          const tol = dtype === 'f16' && (kind === 'swiglu' || norm) ? { atol: 1e-3, rtol: 2 ** -9 } : { atol: 0, rtol: 0 };
          assertClose(await fused(kind, c).toArray(), await composed.toArray(), tol, `${kind} ${dtype} norm ${norm} against the composed ops`);
        });
      }
    }
  } finally {
    setMatmulVariant(null);
  }
});

test('fused products refuse what they do not fit: K off the 16-byte chunk, more than 4 rows, a recorded gradient, a norm weight at an offset', async (t) => {
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
    // A norm weight that is a view at an offset (the kernels read the weight from its buffer's start).
    const g = tensor(seededValues(16, 3), [16]);
    const x1 = tensor(seededValues(8, 2), [1, 8]);
    assert.equal(noGrad(() => fusedLinearFits(x1, [w8], { weight: g.slice(0, 0, 8), eps: 1e-6 })), true);
    assert.equal(noGrad(() => fusedLinearFits(x1, [w8], { weight: g.slice(0, 8, 16), eps: 1e-6 })), false);
    assert.throws(() => noGrad(() => fusedLinear(x1, [w8], { weight: g.slice(0, 8, 16), eps: 1e-6 })), /not a view at an offset/);
  });
});

test('the fused products pass their on-device check here; decoding prefers them by default only on a GPU that passed it', async (t) => {
  const info = await gpu();
  if (decodeCandidates(info).length === 1) return t.skip('adapter has no fixed subgroup size');
  const outcome = await checkFusedLinear();
  assert.deepEqual(outcome, { ok: true });
  const ready = await readyFusedLinear();
  if (info.isFallbackAdapter) {
    // A CPU adapter runs no check for decoding and keeps the separate ops.
    assert.equal(ready.ok, false);
    assert.match(ready.ok ? '' : ready.reason, /CPU adapter/);
    assert.equal(fusedLinearPreferred(), false);
  } else {
    assert.deepEqual(ready, { ok: true });
    assert.equal(fusedLinearPreferred(), true);
  }
});
