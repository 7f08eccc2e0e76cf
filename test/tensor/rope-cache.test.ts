// ropeCache (RoPE and the KV-cache writes in one dispatch) against the CPU reference, equal to rope and
// copyInto on the GPU, on q/k/v read in place as column slices of one projection, and on bad input.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  ShapeError, ValueError, copyInto, f16BitsToF32, f32ToF16Bits, hasF16, noGrad, refRopeCache, refTensor, reshape, rope, ropeCache, slice,
  tensor, transpose, type FloatDType, type Tensor,
} from '@huatuo/tensor';
import { assertClose, gpu, scoped, seededValues } from './helpers.js';

const THETA = 10000;

/** Values as the dtype stores them (f16 rounded), so that the reference sees the same inputs. */
function stored(v: Float32Array, dtype: FloatDType): Float32Array {
  return dtype === 'f32' ? v : f16BitsToF32(f32ToF16Bits(v));
}

// [B, T, H, Hkv, D/2, past, per-batch positions, fused q/k/v buffer, seed]
const caseArb = fc.tuple(
  fc.constantFrom(1, 2, 3),
  fc.constantFrom(1, 3),
  fc.constantFrom([1, 1], [4, 2], [3, 1], [2, 2]),
  fc.constantFrom(1, 3, 17),
  fc.integer({ min: 0, max: 5 }),
  fc.boolean(),
  fc.boolean(),
  fc.integer({ min: 1, max: 1e6 }),
);

async function checkCase(dtype: FloatDType, [B, T, [H, Hkv], h, past, perBatch, fused, seed]: [number, number, readonly number[], number, number, boolean, boolean, number]): Promise<void> {
  const D = 2 * h;
  const L = past + T + 2;
  const [nq, nk] = [H! * D, Hkv! * D];
  const what = `ropeCache ${dtype} B ${B} T ${T} H ${H} Hkv ${Hkv} D ${D} past ${past} perBatch ${perBatch} fused ${fused} seed ${seed}`;
  const proj = stored(seededValues(B * T * (nq + 2 * nk), seed, 2), dtype); // [B, T, nq + 2 nk]
  const cacheInit = stored(seededValues(B * Hkv! * L * D, seed + 1), dtype);
  const posShape = perBatch ? [B, T] : [T];
  const pos = Int32Array.from({ length: posShape.reduce((a, b) => a * b, 1) }, (_, i) => (seed + 7 * i) % 3000);
  await scoped(async () => {
    const all = tensor(proj, [B, T, nq + 2 * nk], { dtype });
    const split = (t: Tensor): [Tensor, Tensor, Tensor] => [slice(t, 2, 0, nq), slice(t, 2, nq, nq + nk), slice(t, 2, nq + nk, nq + 2 * nk)];
    const [q, k, v] = fused ? split(all) : split(all).map((t) => t.contiguous()) as [Tensor, Tensor, Tensor];
    const positions = tensor(pos, posShape);
    const keys = tensor(cacheInit, [B, Hkv!, L, D], { dtype });
    const values = tensor(cacheInit, [B, Hkv!, L, D], { dtype });
    const qo = noGrad(() => ropeCache(q, k, v, positions, THETA, keys, values, past));
    // The same through rope and copyInto, which ropeCache must equal bit for bit.
    const heads = (t: Tensor, n: number) => transpose(reshape(t.contiguous(), [B, T, n, D]), 1, 2);
    const keys2 = tensor(cacheInit, [B, Hkv!, L, D], { dtype });
    const values2 = tensor(cacheInit, [B, Hkv!, L, D], { dtype });
    const qo2 = rope(heads(q, H!), positions, THETA);
    copyInto(slice(keys2, 2, past, past + T), rope(heads(k, Hkv!), positions, THETA));
    copyInto(slice(values2, 2, past, past + T), heads(v, Hkv!));
    const got = [await qo.toArray(), await keys.toArray(), await values.toArray()];
    const composed = [await qo2.toArray(), await keys2.toArray(), await values2.toArray()];
    ['q', 'keys', 'values'].forEach((name, i) => assertClose(got[i]!, composed[i]!, { atol: 0, rtol: 0 }, `${what}: ${name} against rope and copyInto`));
    const cols = (from: number, n: number) => {
      const out = new Float32Array(B * T * n);
      for (let m = 0; m < B * T; m++) out.set(proj.subarray(m * (nq + 2 * nk) + from, m * (nq + 2 * nk) + from + n), m * n);
      return refTensor(out, [B, T, n]);
    };
    const ref = refRopeCache(cols(0, nq), cols(nq, nk), cols(nq + nk, nk), refTensor(pos, posShape), THETA,
      refTensor(cacheInit, [B, Hkv!, L, D]), refTensor(cacheInit, [B, Hkv!, L, D]), past);
    const tol = dtype === 'f32' ? { atol: 1e-5, rtol: 1e-4 } : { atol: 4e-3, rtol: 4e-3 };
    assertClose(got[0]!, ref.q.data, tol, `${what}: q against the reference`);
    assertClose(got[1]!, ref.keys.data, tol, `${what}: keys against the reference`);
    assertClose(got[2]!, ref.values.data, { atol: 0, rtol: 0 }, `${what}: values against the reference`);
  });
}

test('ropeCache matches the reference and equals rope plus copyInto in f32, on separate and fused projections', async () => {
  await gpu();
  await fc.assert(fc.asyncProperty(caseArb, (c) => checkCase('f32', c)), { numRuns: 12 });
});

test('ropeCache matches the reference and equals rope plus copyInto in f16', async (t) => {
  await gpu();
  if (!hasF16()) return t.skip('adapter lacks shader-f16');
  await fc.assert(fc.asyncProperty(caseArb, (c) => checkCase('f16', c)), { numRuns: 8 });
});

test('ropeCache refuses positions past the cache, mismatched shapes and recorded gradients', async () => {
  await gpu();
  await scoped(async () => {
    const q = tensor(seededValues(8, 1), [1, 1, 8]);
    const kv = tensor(seededValues(4, 2), [1, 1, 4]);
    const cache = () => tensor(new Float32Array(1 * 1 * 3 * 4), [1, 1, 3, 4]);
    const pos = tensor(new Int32Array([0]));
    assert.throws(() => noGrad(() => ropeCache(q, kv, kv, pos, THETA, cache(), cache(), 3)), ValueError);
    assert.throws(() => noGrad(() => ropeCache(q, q, kv, pos, THETA, cache(), cache(), 0)), ShapeError);
    assert.throws(() => noGrad(() => ropeCache(q, kv, kv, tensor(new Int32Array([0, 1])), THETA, cache(), cache(), 0)), ShapeError);
    assert.throws(() => ropeCache(q.detach().requireGrad(), kv, kv, pos, THETA, cache(), cache(), 0), ValueError);
  });
});
