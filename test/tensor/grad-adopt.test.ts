// Leaf gradients: a fresh gradient that nothing else holds becomes `.grad` without a copy; one that
// is shared (two leaves, a user-supplied gradient, a view) is copied, and every case stays correct.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import {
  add, backward, checkpoint, expand, mul, reshape, resetPeakBytes, runtimeStats, sum, tensor, tidy, transpose, exp,
} from '@huatuo/tensor';
import { assertClose, gpu, seededValues } from './helpers.js';

before(async () => {
  await gpu();
});

const tol = { atol: 1e-6, rtol: 1e-6 };

test('the first gradient of a leaf is adopted: backward allocates no copy of it', async () => {
  const n = 1 << 18; // 1 MiB of f32
  const c = tensor(seededValues(n, 1), [n]);
  const dy = tensor(seededValues(n, 2), [n]);
  const w = tensor(seededValues(n, 3), [n]).requireGrad();
  const y = mul(w, c);
  const inUse = runtimeStats().bytesInUse;
  resetPeakBytes();
  backward(y, dy);
  const extra = runtimeStats().peakBytes - inUse;
  // d(w c) = dy c: one new buffer of n floats; a copy of it into .grad would double that.
  assert.ok(extra < 1.5 * 4 * n, `backward peaked ${extra} bytes above the graph, over one gradient of ${4 * n} bytes`);
  const [cv, dyv] = [await c.toArray(), await dy.toArray()];
  assertClose(await w.grad!.toArray(), Array.from(cv, (v, i) => v * dyv[i]!), tol, 'w.grad');
});

test('one gradient flowing to two leaves gives each its own .grad', async () => {
  const a = tensor(seededValues(6, 3), [2, 3]).requireGrad();
  const b = tensor(seededValues(6, 4), [2, 3]).requireGrad();
  const c = tensor(seededValues(6, 5), [2, 3]);
  sum(mul(add(a, b), c)).backward(); // add's backward hands the same tensor to both
  assert.notEqual(a.grad, b.grad);
  const expected = await c.toArray();
  a.grad!.dispose();
  assertClose(await b.grad!.toArray(), expected, tol, 'b.grad after a.grad was freed');
});

test('a user-supplied gradient is copied, never taken, whether it reaches the leaf directly or through a view', async () => {
  const av = seededValues(6, 6);
  const dyv = seededValues(6, 7);
  const a = tensor(av, [2, 3]).requireGrad();
  const dy = tensor(dyv, [2, 3]);
  backward(a, dy);
  const b = tensor(av, [2, 3]).requireGrad();
  backward(reshape(b, [3, 2]), reshape(dy, [3, 2]));
  dy.dispose();
  assertClose(await a.grad!.toArray(), dyv, tol, 'a.grad after dy was freed');
  assertClose(await b.grad!.toArray(), dyv, tol, 'b.grad after dy was freed');
});

test('gradients arriving as views, transposes and broadcast sums match the reference', async () => {
  const xv = seededValues(12, 8);
  const wv = seededValues(12, 9);
  const bv = seededValues(4, 10);
  const x = tensor(xv, [3, 4]);
  const w = tensor(wv, [4, 3]).requireGrad();
  const b = tensor(bv, [1, 4]).requireGrad();
  const r = tensor(xv, [12]).requireGrad();
  // y = x * w^T + expand(b) + reshape(r): w's gradient arrives transposed, b's summed, r's reshaped.
  const y = add(add(mul(x, transpose(w)), expand(b, [3, 4])), reshape(r, [3, 4]));
  sum(mul(y, x)).backward();
  const wT = Array.from({ length: 12 }, (_, i) => xv[(i % 3) * 4 + Math.floor(i / 3)]! ** 2);
  assertClose(await w.grad!.toArray(), wT, tol, 'w.grad = (x * x)^T');
  const bSum = [0, 1, 2, 3].map((j) => xv[j]! + xv[4 + j]! + xv[8 + j]!);
  assertClose(await b.grad!.toArray(), bSum, { atol: 1e-5, rtol: 1e-5 }, 'b.grad = column sums of x');
  assertClose(await r.grad!.toArray(), xv, tol, 'r.grad = x');
  assert.ok(w.grad!.isContiguous && b.grad!.isContiguous, '.grad is contiguous');
});

test('an adopted gradient accumulates over a second backward, and survives the tidy() it was made in', async () => {
  const xv = seededValues(8, 11);
  const x = tensor(xv, [8]);
  const w = tensor(seededValues(8, 12), [8]).requireGrad();
  const buffers = runtimeStats().buffersInUse;
  tidy(() => {
    sum(mul(w, x)).backward();
  });
  assertClose(await w.grad!.toArray(), xv, tol, 'after one backward');
  tidy(() => {
    sum(mul(w, x)).backward();
  });
  assertClose(await w.grad!.toArray(), xv.map((v) => 2 * v), tol, 'after two backward calls');
  w.grad!.dispose();
  w.grad = null;
  assert.equal(runtimeStats().buffersInUse, buffers, 'both tidy() scopes freed everything but .grad');
});

test('a checkpointed block with a leaf input frees or adopts every gradient it makes', async () => {
  const xv = seededValues(8, 13);
  const x = tensor(xv, [8]).requireGrad();
  const w = tensor(seededValues(8, 14), [8]).requireGrad();
  const buffers = runtimeStats().buffersInUse;
  tidy(() => {
    sum(checkpoint((h) => exp(mul(h, w)), [x], [w])).backward();
  });
  assert.equal(runtimeStats().buffersInUse, buffers + 2, 'buffers left over besides x.grad and w.grad');
  const e = await tidy(() => exp(mul(x, w))).toArray();
  const wv = await w.toArray();
  assertClose(await x.grad!.toArray(), Array.from(e, (v, i) => v * wv[i]!), { atol: 1e-5, rtol: 1e-5 }, 'x.grad');
  assertClose(await w.grad!.toArray(), Array.from(e, (v, i) => v * xv[i]!), { atol: 1e-5, rtol: 1e-5 }, 'w.grad');
});
