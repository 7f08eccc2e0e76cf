// Scopes: tidy() disposes the tensors created inside except what it returns (tensors, arrays and
// objects of them) and what keep() marks; startScope()/end() does the same around async code.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { add, exp, ones, tensor, tidy, keep, startScope, runtimeStats, DisposedError } from '@huatuo/tensor';
import { gpu } from './helpers.js';

before(async () => {
  await gpu();
});

test('tidy disposes temporaries and keeps the returned tensor usable', async () => {
  let temp: ReturnType<typeof ones> | null = null;
  const out = tidy(() => {
    temp = ones([4]);
    return add(exp(temp), 1);
  });
  assert.equal(temp!.disposed, true);
  assert.equal(out.disposed, false);
  assert.deepEqual([...(await out.toArray())].map((v) => Math.round(v * 1e5) / 1e5), new Array(4).fill(Math.round((Math.E + 1) * 1e5) / 1e5));
  assert.throws(() => exp(temp!), DisposedError);
});

test('tidy keeps tensors returned in arrays and plain objects, and nested tidy hands results outward', () => {
  const inner: ReturnType<typeof ones>[] = [];
  const result = tidy(() => {
    const a = ones([2]);
    const kept = tidy(() => {
      const t = ones([3]);
      inner.push(t);
      return { x: add(t, 1), list: [add(t, 2)] };
    });
    inner.push(a);
    return [kept.x, { y: kept.list[0]! }];
  });
  assert.equal(inner[0]!.disposed, true, 'temporary of the inner tidy');
  assert.equal(inner[1]!.disposed, true, 'temporary of the outer tidy');
  const [x, { y }] = result as [ReturnType<typeof ones>, { y: ReturnType<typeof ones> }];
  assert.equal(x.disposed, false);
  assert.equal(y.disposed, false);
});

test('keep() saves a tensor from the scope it was created in', () => {
  let kept: ReturnType<typeof ones> | null = null;
  let dropped: ReturnType<typeof ones> | null = null;
  tidy(() => {
    kept = keep(ones([2]));
    dropped = ones([2]);
  });
  assert.equal(kept!.disposed, false);
  assert.equal(dropped!.disposed, true);
  kept!.dispose();
});

test('startScope/end frees tensors created across awaits, keeping the result', async () => {
  const scope = startScope();
  const a = tensor([1, 2, 3]);
  const b = exp(a);
  const values = await b.toArray();
  const c = add(a, 1);
  const out = scope.end(c)!;
  assert.equal(a.disposed, true);
  assert.equal(b.disposed, true);
  assert.equal(out.disposed, false);
  assert.equal(values.length, 3);
  assert.deepEqual([...(await out.toArray())], [2, 3, 4]);
});

test('a tidy that throws still disposes its temporaries', () => {
  let temp: ReturnType<typeof ones> | null = null;
  assert.throws(() =>
    tidy(() => {
      temp = ones([2]);
      throw new Error('boom');
    }),
  /boom/);
  assert.equal(temp!.disposed, true);
});

test('a loop of tidy steps keeps the number of live buffers flat', () => {
  const x = ones([64]);
  const step = () => tidy(() => add(exp(x), x).dispose());
  step();
  const before = runtimeStats();
  for (let i = 0; i < 20; i++) step();
  const after = runtimeStats();
  assert.equal(after.buffersInUse, before.buffersInUse);
  assert.equal(after.bytesInUse, before.bytesInUse);
});
