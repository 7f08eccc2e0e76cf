// embedding lookup and its deterministic scatter-add gradient against the CPU reference, and on bad input.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  DTypeError, DisposedError, ShapeError, ValueError, embedding, hasF16, mul, refEmbedding, refEmbeddingBackward, refTensor,
  slice, startScope, sum, tensor, type Tensor,
} from '@huatuo/tensor';
import { assertClose, finiteDifferences, gpu, seededValues } from './helpers.js';

function idsFor(count: number, seed: number, V: number): Int32Array {
  return Int32Array.from(seededValues(count, seed), (v) => Math.min(V - 1, Math.floor(((v + 1) / 2) * V)));
}

// [ids shape, V, C]
const caseArb = fc.tuple(
  fc.constantFrom([1], [3], [17], [2, 3], [3, 17]),
  fc.constantFrom(1, 3, 17, 65),
  fc.constantFrom(1, 3, 17, 65, 257),
  fc.integer({ min: 1, max: 1e6 }),
);

test('embedding gathers the table rows of the ids for any ids shape', async () => {
  await gpu();
  await fc.assert(
    fc.asyncProperty(caseArb, async ([idsShape, V, C, seed]) => {
      const ids = idsFor(idsShape.reduce((a: number, b: number) => a * b, 1), seed, V);
      const tv = seededValues(V * C, seed + 1, 2);
      const s = startScope();
      try {
        const out = embedding(tensor(ids, idsShape), tensor(tv, [V, C]));
        assert.deepEqual(out.shape, [...idsShape, C]);
        assertClose(await out.toArray(), refEmbedding(ids, idsShape, refTensor(tv, [V, C])).data, { atol: 0, rtol: 0 }, `embedding ids [${idsShape}] V ${V} C ${C}`);
      } finally {
        s.end();
      }
    }),
    { numRuns: 12 },
  );
});

test('embedding in f16 returns the f16 table rows exactly', async (t) => {
  await gpu();
  if (!hasF16()) return t.skip('adapter lacks shader-f16');
  const s = startScope();
  try {
    const table = tensor(seededValues(17 * 65, 3, 2), [17, 65], { dtype: 'f16' });
    const ids = idsFor(6, 4, 17);
    const out = await embedding(tensor(ids, [2, 3]), table).toArray();
    assertClose(out, refEmbedding(ids, [2, 3], refTensor(await table.toArray(), [17, 65])).data, { atol: 0, rtol: 0 }, 'embedding f16');
  } finally {
    s.end();
  }
});

test('embedding table gradient with repeated ids matches central finite differences of a random projection', async () => {
  await gpu();
  const s = startScope();
  try {
    const ids = tensor(new Int32Array([2, 0, 2, 3, 2]), [5]);
    const tv = seededValues(4 * 3, 41, 2);
    const r = tensor(seededValues(15, 42), [5, 3]);
    const f = (tbl: Tensor) => sum(mul(embedding(ids, tbl), r));
    const tbl = tensor(tv, [4, 3]).requireGrad();
    f(tbl).backward();
    assertClose(await tbl.grad!.toArray(), await finiteDifferences(f, tv, [4, 3]), { atol: 5e-3, rtol: 1e-2 }, 'dtable vs finite differences');
  } finally {
    s.end();
  }
});

test('embedding table gradient sums the rows of equal ids as the reference does', async () => {
  await gpu();
  await fc.assert(
    fc.asyncProperty(caseArb, async ([idsShape, V, C, seed]) => {
      const n = idsShape.reduce((a: number, b: number) => a * b, 1);
      const ids = idsFor(n, seed, V);
      const rv = seededValues(n * C, seed + 2);
      const s = startScope();
      try {
        const tbl = tensor(seededValues(V * C, seed + 1), [V, C]).requireGrad();
        sum(mul(embedding(tensor(ids, idsShape), tbl), tensor(rv, [...idsShape, C]))).backward();
        const expected = refEmbeddingBackward(ids, refTensor(rv, [n, C]), V).data;
        assertClose(await tbl.grad!.toArray(), expected, { atol: 1e-5, rtol: 1e-5 }, `dtable ids [${idsShape}] V ${V} C ${C} seed ${seed}`);
      } finally {
        s.end();
      }
    }),
    { numRuns: 10 },
  );
});

test('embedding with ids computed on the GPU gives the same rows and bitwise the same gradient as host ids', async () => {
  await gpu();
  const s = startScope();
  try {
    const V = 17;
    const C = 65;
    const ids = idsFor(40, 9, V);
    const dy = tensor(seededValues(33 * C, 10), [33, C]);
    const run = async (idsT: Tensor) => {
      const tbl = tensor(seededValues(V * C, 11), [V, C]).requireGrad();
      const out = embedding(idsT, tbl);
      sum(mul(out, dy)).backward();
      return { out: await out.toArray(), grad: await tbl.grad!.toArray() };
    };
    // A slice of a longer tensor has no host copy, so the op takes the GPU-only path.
    const device = await run(slice(tensor(ids), 0, 0, 33));
    const host = await run(tensor(ids.slice(0, 33)));
    assertClose(device.out, host.out, { atol: 0, rtol: 0 }, 'rows from device ids');
    assertClose(device.grad, host.grad, { atol: 0, rtol: 0 }, 'gradient from device ids');
    // Device ids are not bounds-checked: an out-of-range id reads a row of zeros.
    const bad = slice(tensor(new Int32Array([1, 99, -4, 0])), 0, 0, 3);
    const rows = await embedding(bad, tensor(seededValues(V * 2, 12), [V, 2])).toArray();
    assert.deepEqual(Array.from(rows.slice(2)), [0, 0, 0, 0]);
  } finally {
    s.end();
  }
});

// Id counts around the 64-thread workgroup and the 1024-id scan chunk, and past the 2048-position
// list (one id repeated), so a row is summed in parts.
const deviceIdCounts = [1, 7, 63, 65, 1023, 1025, 2500];
// [V, C, seed]
const deviceCaseArb = fc.tuple(
  fc.constantFrom(1, 2, 5, 40),
  fc.constantFrom(1, 3, 17, 65),
  fc.integer({ min: 1, max: 1e6 }),
);

test('embedding gradient from GPU-only ids equals the host-ids gradient bitwise and the reference, at awkward sizes', async () => {
  await gpu();
  await fc.assert(
    fc.asyncProperty(deviceCaseArb, async ([V, C, seed]) => {
      for (const N of deviceIdCounts) await checkDeviceIds(N, V, C, seed);
    }),
    { numRuns: 4 },
  );
});

test('embedding f16 gradient from GPU-only ids equals the host-ids gradient bitwise', async (t) => {
  await gpu();
  if (!hasF16()) return t.skip('adapter lacks shader-f16');
  await checkDeviceIds(1025, 5, 17, 7, 'f16');
});

async function checkDeviceIds(N: number, V: number, C: number, seed: number, dtype: 'f32' | 'f16' = 'f32'): Promise<void> {
  // Ids cluster on 0 and V - 1 (a quarter each), the rest anywhere: long runs of repeats.
  const ids = Int32Array.from(seededValues(N, seed), (v) => {
    const u = (v + 1) / 2;
    return u < 0.25 ? 0 : u < 0.5 ? V - 1 : Math.min(V - 1, Math.floor((u - 0.5) * 2 * V));
  });
  const dyv = seededValues(N * C, seed + 1);
  const s = startScope();
  try {
    const dy = tensor(dyv, [N, C], { dtype });
    const grad = async (idsT: Tensor) => {
      const tbl = tensor(seededValues(V * C, seed + 2), [V, C], { dtype }).requireGrad();
      sum(mul(embedding(idsT, tbl), dy)).backward();
      return tbl.grad!.toArray();
    };
    const label = `${dtype} N ${N} V ${V} C ${C} seed ${seed}`;
    const device = await grad(slice(tensor(Int32Array.from([...ids, 0])), 0, 0, N));
    assertClose(device, await grad(tensor(ids)), { atol: 0, rtol: 0 }, `device vs host ids, ${label}`);
    const expected = refEmbeddingBackward(ids, refTensor(dyv, [N, C]), V).data;
    if (dtype === 'f32') assertClose(device, expected, { atol: 1e-4, rtol: 1e-5 }, `device ids vs reference, ${label}`);
  } finally {
    s.end();
  }
}

test('embedding rejects out-of-range host ids naming the id, its position and V; and bad dtypes, shapes and disposed inputs', async () => {
  await gpu();
  const table = tensor(seededValues(10 * 4, 1), [10, 4]);
  assert.throws(
    () => embedding(tensor(new Int32Array([1, 2, 3, 10, 0, 0]), [2, 3]), table),
    (e: Error) => e instanceof ValueError && /embedding: ids\[1, 0\] = 10 .*10 rows/.test(e.message),
  );
  assert.throws(() => embedding(tensor(new Int32Array([-1])), table), (e: Error) => e instanceof ValueError && e.message.includes('= -1'));
  assert.throws(() => embedding(tensor([1, 2]), table), (e: Error) => e instanceof DTypeError && e.message.includes('embedding'));
  assert.throws(() => embedding(tensor(new Int32Array([1])), tensor(new Int32Array(4), [2, 2])), (e: Error) => e instanceof DTypeError);
  assert.throws(() => embedding(tensor(new Int32Array([1])), tensor([1, 2, 3])), (e: Error) => e instanceof ShapeError && e.message.includes('[3]'));
  table.dispose();
  assert.throws(() => embedding(tensor(new Int32Array([1])), table), (e: Error) => e instanceof DisposedError && e.message.includes('embedding'));
});
