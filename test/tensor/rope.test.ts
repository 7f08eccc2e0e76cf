// rope (Hugging Face LLaMA rotate_half) against the CPU reference, by finite differences, and on bad input.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  DTypeError, DisposedError, ShapeError, ValueError, hasF16, mul, refRope, refRopeBackward, refRopeInvFreq, refTensor, rope,
  ropeInvFreq, slice, startScope, sum, tensor, refRoundToF16, type Tensor,
} from '@huatuo/tensor';
import { assertClose, finiteDifferences, gpu, seededValues } from './helpers.js';

const THETA = 10000;

function positionsFor(count: number, seed: number, max: number): Int32Array {
  return Int32Array.from(seededValues(count, seed), (v) => Math.floor(((v + 1) / 2) * max));
}

// [lead dims, T, D/2, per-batch positions]
const caseArb = fc.tuple(
  fc.constantFrom([1], [3], [2, 3], [1, 1]),
  fc.constantFrom(1, 3, 17),
  fc.constantFrom(1, 3, 17, 65),
  fc.boolean(),
  fc.integer({ min: 1, max: 1e6 }),
);

test('rope matches the CPU reference in f32 for [T] and per-batch [B, T] positions', async () => {
  await gpu();
  await fc.assert(
    fc.asyncProperty(caseArb, async ([lead, T, h, perBatch, seed]) => {
      const D = 2 * h;
      const shape = [...lead, T, D];
      const xv = seededValues(shape.reduce((a: number, b: number) => a * b, 1), seed, 2);
      const posShape = perBatch && lead.length >= 1 ? [lead[0]!, T] : [T];
      const pv = positionsFor(posShape.reduce((a: number, b: number) => a * b, 1), seed + 3, 300);
      const s = startScope();
      try {
        const y = await rope(tensor(xv, shape), tensor(pv, posShape), THETA).toArray();
        const expected = refRope(refTensor(xv, shape), refTensor(pv, posShape), THETA).data;
        assertClose(y, expected, { atol: 1e-5, rtol: 1e-4 }, `rope x [${shape}] positions [${posShape}] seed ${seed}`);
      } finally {
        s.end();
      }
    }),
    { numRuns: 15 },
  );
});

test('rope inverse frequencies follow float32 steps and position 0 leaves x unchanged', async () => {
  await gpu();
  const inv = ropeInvFreq(8, THETA);
  assert.deepEqual(Array.from(inv), Array.from(refRopeInvFreq(8, THETA)));
  assert.equal(inv[0], 1);
  assert.equal(inv[2], Math.fround(1 / Math.fround(Math.pow(THETA, 0.5))));
  const s = startScope();
  try {
    const xv = seededValues(8, 4);
    const y = await rope(tensor(xv, [1, 8]), tensor(new Int32Array([0])), THETA).toArray();
    assertClose(y, xv, { atol: 0, rtol: 0 }, 'rope at position 0');
  } finally {
    s.end();
  }
});

test('rope grows its table for large host positions and agrees with device-resident positions inside the table', async () => {
  await gpu();
  const s = startScope();
  try {
    const shape = [2, 3, 34];
    const xv = seededValues(2 * 3 * 34, 8, 2);
    const big = new Int32Array([5000, 3, 70000]);
    const y = await rope(tensor(xv, shape), tensor(big), 500000).toArray();
    assertClose(y, refRope(refTensor(xv, shape), refTensor(big, [3]), 500000).data, { atol: 1e-5, rtol: 1e-4 }, 'rope at large positions');
    // A slice of a longer tensor has no host copy: the kernel reads the positions from the GPU.
    const pos = new Int32Array([7, 1, 1000, 9]);
    const onDevice = slice(tensor(pos), 0, 0, 3);
    const yd = await rope(tensor(xv, shape), onDevice, THETA).toArray();
    const yh = await rope(tensor(xv, shape), tensor(pos.slice(0, 3)), THETA).toArray();
    assertClose(yd, yh, { atol: 0, rtol: 0 }, 'device vs host positions');
  } finally {
    s.end();
  }
});

test('rope in f16 matches the reference within f16 rounding', async (t) => {
  await gpu();
  if (!hasF16()) return t.skip('adapter lacks shader-f16');
  const s = startScope();
  try {
    const shape = [2, 17, 34];
    const x = tensor(seededValues(2 * 17 * 34, 12, 2), shape, { dtype: 'f16' });
    const pv = positionsFor(17, 13, 500);
    const y = await rope(x, tensor(pv), THETA).toArray();
    const expected = refRope(refTensor(await x.toArray(), shape), refTensor(pv, [17]), THETA).data;
    assertClose(y, expected, { atol: 4e-3, rtol: 4e-3 }, 'rope f16');
  } finally {
    s.end();
  }
});

test('rope in f16 rounds as Hugging Face LLaMA does: cos and sin to f16, each product to f16, the sum to f16 (bit for bit)', async (t) => {
  await gpu();
  if (!hasF16()) return t.skip('adapter lacks shader-f16');
  const s = startScope();
  try {
    const [N, T, D] = [3, 17, 64];
    const h = D / 2;
    const x = tensor(seededValues(N * T * D, 21, 3), [N, T, D], { dtype: 'f16' });
    const pv = positionsFor(T, 5, 2000);
    const y = await rope(x, tensor(pv), THETA).toArray();
    const xs = await x.toArray();
    // The host's f32 tables: the f32 angle pos * inv_freq[j], its cos and sin stored as f32.
    const inv = ropeInvFreq(D, THETA);
    const angle = (pos: number, j: number) => Math.fround(pos * inv[j]!);
    const f = refRoundToF16;
    const expected = new Float32Array(N * T * D);
    for (let n = 0; n < N; n++) {
      for (let t = 0; t < T; t++) {
        for (let j = 0; j < h; j++) {
          const [c, sn] = [f(Math.fround(Math.cos(angle(pv[t]!, j)))), f(Math.fround(Math.sin(angle(pv[t]!, j))))];
          const base = (n * T + t) * D;
          const [a, b] = [xs[base + j]!, xs[base + j + h]!];
          expected[base + j] = f(f(a * c) - f(b * sn));
          expected[base + j + h] = f(f(b * c) + f(a * sn));
        }
      }
    }
    assertClose(y, expected, { atol: 0, rtol: 0 }, 'rope f16, HF roundings');
  } finally {
    s.end();
  }
});

test('rope backward matches central finite differences of a random projection', async () => {
  await gpu();
  const s = startScope();
  try {
    const shape = [2, 3, 4];
    const xv = seededValues(24, 31, 2);
    const p = tensor(new Int32Array([[2, 5, 9], [0, 1, 40]].flat()), [2, 3]);
    const r = tensor(seededValues(24, 32), shape);
    const f = (x: Tensor) => sum(mul(rope(x, p, THETA), r));
    const x = tensor(xv, shape).requireGrad();
    f(x).backward();
    assertClose(await x.grad!.toArray(), await finiteDifferences(f, xv, shape), { atol: 5e-3, rtol: 1e-2 }, 'rope grad vs finite differences');
  } finally {
    s.end();
  }
});

test('rope backward matches the reference inverse rotation on larger shapes', async () => {
  await gpu();
  await fc.assert(
    fc.asyncProperty(caseArb, async ([lead, T, h, perBatch, seed]) => {
      const shape = [...lead, T, 2 * h];
      const n = shape.reduce((a: number, b: number) => a * b, 1);
      const xv = seededValues(n, seed, 2);
      const rv = seededValues(n, seed + 1);
      const posShape = perBatch && lead.length >= 1 ? [lead[0]!, T] : [T];
      const pv = positionsFor(posShape.reduce((a: number, b: number) => a * b, 1), seed + 2, 300);
      const s = startScope();
      try {
        const x = tensor(xv, shape).requireGrad();
        sum(mul(rope(x, tensor(pv, posShape), THETA), tensor(rv, shape))).backward();
        const expected = refRopeBackward(refTensor(rv, shape), refTensor(pv, posShape), THETA).data;
        assertClose(await x.grad!.toArray(), expected, { atol: 1e-5, rtol: 1e-4 }, `rope grad [${shape}] seed ${seed}`);
      } finally {
        s.end();
      }
    }),
    { numRuns: 10 },
  );
});

test('rope rejects odd head dims, mismatched or float positions, negative positions and disposed inputs', async () => {
  await gpu();
  const x = tensor(seededValues(2 * 3 * 4, 1), [2, 3, 4]);
  const pos = tensor(new Int32Array([0, 1, 2]));
  assert.throws(() => rope(tensor(seededValues(9, 1), [3, 3]), pos, THETA), (e: Error) => e instanceof ShapeError && e.message.includes('rope') && e.message.includes('[3, 3]'));
  assert.throws(
    () => rope(x, tensor(new Int32Array([0, 1])), THETA),
    (e: Error) => e instanceof ShapeError && e.message.includes('[2, 3, 4]') && e.message.includes('[2]'),
  );
  assert.throws(() => rope(x, tensor(new Int32Array(9), [3, 3]), THETA), (e: Error) => e instanceof ShapeError && e.message.includes('[3, 3]'));
  assert.throws(() => rope(x, tensor([0, 1, 2]), THETA), (e: Error) => e instanceof DTypeError && e.message.includes('positions'));
  assert.throws(() => rope(x, tensor(new Int32Array([0, -1, 2])), THETA), (e: Error) => e instanceof ValueError && e.message.includes('positions[1] = -1'));
  assert.throws(() => rope(x, pos, 0), (e: Error) => e instanceof ValueError && e.message.includes('theta'));
  pos.dispose();
  assert.throws(() => rope(x, pos, THETA), (e: Error) => e instanceof DisposedError && e.message.includes('rope'));
});
