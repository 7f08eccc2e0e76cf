// Host data written into a buffer while commands are queued but not yet submitted: the queue writes
// before those commands run, so they are submitted first when they use the buffer, and only then.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { add, mul, runtimeStats, tensor } from '@huatuo/tensor';
import { getRuntime } from '@huatuo/tensor/internal';
import { gpu } from './helpers.js';

before(async () => {
  await gpu();
});

test('a host write into a buffer the queued commands do not use submits nothing', async () => {
  const a = tensor(new Float32Array([1, 2, 3, 4]), [4]);
  await getRuntime().sync();
  const y = add(a, a);
  const submits = runtimeStats().submits;
  const b = tensor(new Float32Array([5, 6, 7, 8]), [4]);
  assert.equal(runtimeStats().submits, submits, 'the write into a fresh buffer went ahead of the queued sum');
  const z = mul(y, b);
  assert.deepEqual([...(await z.toArray())], [10, 24, 42, 64]);
  for (const t of [a, y, b, z]) t.dispose();
});

test('a host write into a buffer a queued command reads submits that command first, which reads the old values', async () => {
  const a = tensor(new Float32Array([1, 2, 3, 4]), [4]);
  await getRuntime().sync();
  const y = add(a, a);
  const rt = getRuntime();
  const submits = runtimeStats().submits;
  rt.write(a.buffer(), 0, new Float32Array([-1, -2, -3, -4]));
  assert.equal(runtimeStats().submits, submits + 1, 'the queued sum was submitted before the write');
  assert.deepEqual([...(await y.toArray())], [2, 4, 6, 8]);
  assert.deepEqual([...(await a.toArray())], [-1, -2, -3, -4]);
  a.dispose();
  y.dispose();
});

test('a tensor made from host data while commands are queued takes a pooled buffer they do not use, and submits nothing', async () => {
  const a = tensor(new Float32Array([1, 2, 3, 4]), [4]);
  await getRuntime().sync();
  const y = add(a, a);
  const freed = a.buffer();
  a.dispose();
  const submits = runtimeStats().submits;
  const b = tensor(new Float32Array([5, 6, 7, 8]), [4]);
  assert.notEqual(b.buffer(), freed, 'the buffer the queued sum reads stays out of reach of the write');
  assert.equal(runtimeStats().submits, submits);
  assert.deepEqual([...(await y.toArray())], [2, 4, 6, 8]);
  assert.deepEqual([...(await b.toArray())], [5, 6, 7, 8]);
  y.dispose();
  b.dispose();
});
