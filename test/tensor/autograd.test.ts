// Autograd: gradients accumulate across backward calls and across uses of a tensor, detach() and
// noGrad() stop recording, and the graph is freed after backward unless retained.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import {
  mul, exp, sum, matmul, transpose, tensor, noGrad, isGradEnabled, backward, AutogradError,
  refTensor, refMul, refExpBackward, refMatmulBackward, refAdd, refSumToShape,
} from '@huatuo/tensor';
import { assertClose, finiteDifferences, gpu, seededValues } from './helpers.js';

before(async () => {
  await gpu();
});

const tol = { atol: 1e-5, rtol: 1e-5 };

test('backward twice with retainGraph sums both gradients into .grad', async () => {
  const values = seededValues(6, 1);
  const x = tensor(values, [2, 3]).requireGrad();
  const y = sum(exp(x));
  y.backward(undefined, { retainGraph: true });
  const once = refExpBackward(refTensor(values, [2, 3]), refTensor(new Array(6).fill(1), [2, 3]));
  assertClose(await x.grad!.toArray(), once.data, tol, 'after one backward');
  y.backward();
  assertClose(await x.grad!.toArray(), refAdd(once, once).data, tol, 'after two backward calls');
});

test('two losses on the same leaf accumulate, and a tensor used twice gets both contributions', async () => {
  const av = seededValues(4, 2);
  const bv = seededValues(4, 3);
  const a = tensor(av, [2, 2]).requireGrad();
  const b = tensor(bv, [2, 2]).requireGrad();
  sum(mul(a, b)).backward();
  sum(mul(a, a)).backward();
  const ra = refTensor(av, [2, 2]);
  const rb = refTensor(bv, [2, 2]);
  // d/da [sum(a b) + sum(a a)] = b + 2a
  assertClose(await a.grad!.toArray(), refAdd(rb, refAdd(ra, ra)).data, tol, 'a.grad');
  assertClose(await b.grad!.toArray(), ra.data, tol, 'b.grad');
});

test('gradients of a small network match finite differences and the reference', async () => {
  const xv = seededValues(12, 4);
  const wv = seededValues(8, 5);
  const x = tensor(xv, [3, 4]);
  const w = tensor(wv, [2, 4]).requireGrad();
  const f = (wt: typeof w) => sum(exp(mul(matmul(x, transpose(wt)), 0.5)));
  f(w).backward();
  const fd = await finiteDifferences(f, wv, [2, 4], 1e-3);
  assertClose(await w.grad!.toArray(), fd, { atol: 5e-3, rtol: 5e-3 }, 'w.grad vs finite differences');
  // Reference chain: h = x w^T, y = exp(h / 2); dh = y / 2; dw = (x^T dh)^T
  const rx = refTensor(xv, [3, 4]);
  const rwT = refTensor([...Array(8).keys()].map((i) => wv[(i % 2) * 4 + Math.floor(i / 2)]!), [4, 2]);
  const h = (await matmul(x, transpose(w)).toArray());
  const dh = refMul(refExpBackward(refTensor(Array.from(h, (v) => v * 0.5), [3, 2]), refTensor(new Array(6).fill(1), [3, 2])), refTensor([0.5], []));
  const [, dwT] = refMatmulBackward(rx, rwT, dh);
  const dw = Array.from({ length: 8 }, (_, i) => dwT.data[(i % 4) * 2 + Math.floor(i / 4)]!);
  assertClose(await w.grad!.toArray(), dw, { atol: 1e-4, rtol: 1e-4 }, 'w.grad vs reference');
});

test('detach() cuts the graph: no gradient flows through the detached branch', async () => {
  const values = seededValues(4, 6);
  const x = tensor(values, [4]).requireGrad();
  const d = x.detach();
  assert.equal(d.node, null);
  assert.equal(d.requiresGrad, false);
  sum(mul(x, d)).backward();
  // d/dx sum(x * stop(x)) = x
  assertClose(await x.grad!.toArray(), values, tol, 'gradient with a detached factor');
});

test('noGrad records nothing and restores recording afterwards', () => {
  const x = tensor([1, 2], [2]).requireGrad();
  const y = noGrad(() => {
    assert.equal(isGradEnabled(), false);
    return mul(x, 3);
  });
  assert.equal(isGradEnabled(), true);
  assert.equal(y.node, null);
  assert.throws(() => sum(y).backward(), AutogradError);
  assert.throws(() => noGrad(() => { throw new Error('inside'); }), /inside/);
  assert.equal(isGradEnabled(), true, 'recording is restored after a throw');
});

test('backward frees the graph; a second backward without retainGraph raises an AutogradError', async () => {
  const x = tensor([1, 2, 3], [3]).requireGrad();
  const h = exp(x);
  const y = sum(h);
  assert.notEqual(y.node, null);
  y.backward();
  assert.equal(y.node, null);
  assert.equal(h.node, null);
  assert.throws(() => y.backward(), (e: unknown) => e instanceof AutogradError && /freed/.test(e.message) && /retainGraph/.test(e.message));
  const z = sum(exp(x));
  z.backward(undefined, { retainGraph: true });
  assert.notEqual(z.node, null, 'retainGraph keeps the graph');
});

test('backward with an explicit gradient of a non-scalar output and a broadcast operand', async () => {
  const av = seededValues(6, 7);
  const bv = seededValues(3, 8);
  const gv = seededValues(6, 9);
  const a = tensor(av, [2, 3]).requireGrad();
  const b = tensor(bv, [3]).requireGrad();
  backward(mul(a, b), tensor(gv, [2, 3]));
  const rg = refTensor(gv, [2, 3]);
  assertClose(await a.grad!.toArray(), refMul(rg, refTensor(bv, [3])).data, tol, 'a.grad');
  assertClose(await b.grad!.toArray(), refSumToShape(refMul(rg, refTensor(av, [2, 3])), [3]).data, tol, 'b.grad');
});

test('a backward through disposed saved tensors raises an AutogradError naming the op', () => {
  const x = tensor([1, 2], [2]).requireGrad();
  const w = tensor([3, 4], [2]);
  const y = sum(mul(x, w));
  w.dispose();
  assert.throws(() => y.backward(), (e: unknown) => e instanceof AutogradError && e.message.includes("'mul'"));
});
