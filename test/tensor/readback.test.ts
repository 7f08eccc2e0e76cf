// toArray submits its copy before returning: more work can be queued, the tensor disposed and another
// read started before awaiting it, and each read gets the values its tensor held when it was called.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { add, runtimeStats, tensor, toArray } from '@huatuo/tensor';
import { gpu } from './helpers.js';

before(async () => {
  await gpu();
});

test('toArray submits the copy before it returns, and the tensor may be disposed before the promise settles', async () => {
  const a = tensor(new Float32Array([1, 2, 3, 4]), [4]);
  const y = add(a, a);
  const submits = runtimeStats().submits;
  const read = toArray(y);
  assert.equal(runtimeStats().submits, submits + 1, 'the sum and its copy were submitted by the call');
  y.dispose();
  const z = add(a, a); // may reuse y's buffer: it runs after the copy
  const w = add(z, z);
  const second = toArray(w);
  z.dispose();
  w.dispose();
  assert.deepEqual([...(await read)], [2, 4, 6, 8]);
  assert.deepEqual([...(await second)], [4, 8, 12, 16]);
  a.dispose();
});
