// Autograd semantics that follow torch 1.13: requiresGrad of op outputs, in-place writes into saved
// tensors and into leaves that require grad, a second backward through a freed part of the graph, integer outputs, and the dtype of
// the gradient passed to backward.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import {
  AutogradError, DTypeError, ShapeError, add, cast, cat, contiguous, copyInto, exp, expand, fusedLinearFits, matmul, max, mul, noGrad,
  permute, reshape, SGD, slice, softmax, sum, tensor, transpose, where, type Tensor,
} from '@huatuo/tensor';
import { assertClose, gpu } from './helpers.js';

before(async () => {
  await gpu();
});

const tol = { atol: 1e-6, rtol: 1e-6 };

test('an op output computed from a tensor that requires a gradient requires one too, and is no leaf (torch requires_grad, is_leaf)', () => {
  const x = tensor([1, 2], [2]).requireGrad();
  const c = tensor([3, 4], [2]);
  const y = mul(transpose(x.reshape([1, 2])), 2);
  assert.equal(y.requiresGrad, true);
  assert.equal(y.isLeaf, false);
  assert.equal(x.isLeaf, true);
  assert.equal(mul(c, 2).requiresGrad, false, 'no input requires a gradient');
  assert.equal(noGrad(() => mul(x, 2)).requiresGrad, false, 'under noGrad');
  assert.equal(y.requireGrad(), y, 'requireGrad() on an output that requires one does nothing');
  assert.throws(() => y.requireGrad(false), (e: unknown) => e instanceof AutogradError && /detach\(\)/.test(e.message));
  const d = y.detach().requireGrad();
  assert.equal(d.isLeaf, true);
  assert.equal(d.requiresGrad, true);
});

test('an in-place write into a tensor saved for backward makes backward throw instead of using the new values', async () => {
  const x = tensor([1, 2], [2]).requireGrad();
  const w = tensor([3, 4], [2]);
  const y = sum(mul(x, w));
  copyInto(w, tensor([100, 100], [2]));
  assert.throws(() => y.backward(), (e: unknown) => e instanceof AutogradError && /'mul'/.test(e.message) && /in-place/.test(e.message));
  assert.equal(x.grad, null);

  // A write through a view of the saved storage counts too; a write after backward does not matter.
  const h = exp(x);
  const z = sum(h);
  copyInto(h.reshape([1, 2]), tensor([0, 0], [1, 2]));
  assert.throws(() => z.backward(), /in-place/);
  const u = sum(mul(x, w));
  u.backward();
  copyInto(w, tensor([1, 1], [2]));
  assertClose(await x.grad!.toArray(), [100, 100], tol, 'x.grad from the values w had when mul ran');
});

test('copyInto a leaf that requires grad, or a view of one, is refused with grad mode on and allowed under noGrad or into its detach(), as torch refuses copy_', async () => {
  const w = tensor([1, 2, 3, 4], [4]).requireGrad();
  const src = tensor([9, 9, 9, 9], [4]);
  const refused = (view: string) => (e: unknown) =>
    e instanceof AutogradError &&
    e.message.includes(`"a ${view}leaf Variable that requires grad is being used in an in-place operation."`) &&
    /noGrad\(\(\) => copyInto\(dst, src\)\)/.test(e.message) &&
    /dst\.detach\(\)/.test(e.message);
  assert.throws(() => copyInto(w, src), refused(''));
  assert.throws(() => copyInto(slice(w, 0, 1, 3), slice(src, 0, 0, 2)), refused('view of a '));
  assert.throws(() => copyInto(slice(reshape(w, [2, 2]), 1, 0, 1), tensor([7, 7], [2, 1])), refused('view of a '));
  assert.equal(w.version, 0, 'nothing was written');
  assertClose(await w.toArray(), [1, 2, 3, 4], tol, 'w after the refused writes');

  noGrad(() => copyInto(slice(w, 0, 0, 2), tensor([5, 6], [2])));
  copyInto(slice(w.detach(), 0, 2, 4), tensor([7, 8], [2]));
  assert.equal(w.version, 2);
  assertClose(await w.toArray(), [5, 6, 7, 8], tol, 'w after the writes under noGrad and into its detach()');
  // An op's output that requires grad is no leaf: torch records copy_ into it, and so it is allowed here.
  copyInto(mul(w, 2), src);
});

test('an optimizer step between the forward and the backward that reads the stepped weight throws', () => {
  const x = tensor([1, 2], [2]).requireGrad();
  const w = tensor([3, 4], [2]).requireGrad();
  const y = sum(mul(x, w));
  w.grad = tensor([1, 1], [2]);
  new SGD([w], { lr: 0.5 }).step();
  assert.throws(() => y.backward(), (e: unknown) => e instanceof AutogradError && /'mul'/.test(e.message));
});

test('a write into a tensor that no backward reads is allowed, as torch allows it', async () => {
  const x = tensor([1, 2], [2]).requireGrad();
  const b = tensor([3, 4], [2]);
  const y = sum(add(x, b)); // add's backward reads neither operand
  copyInto(b, tensor([0, 0], [2]));
  y.backward();
  assertClose(await x.grad!.toArray(), [1, 1], tol, 'x.grad');
});

test('backward through a part of the graph that an earlier backward freed throws instead of dropping its gradient', async () => {
  const x = tensor([1, 2], [2]).requireGrad();
  const h = mul(x, x);
  const y1 = sum(h);
  const y2 = sum(mul(h, 3));
  y1.backward();
  assert.throws(() => y2.backward(), (e: unknown) => e instanceof AutogradError && /freed/.test(e.message) && /retainGraph/.test(e.message));

  // With the graph retained both gradients arrive: d/dx [sum(x^2) + sum(3 x^2)] = 8x.
  const a = tensor([1, 2], [2]).requireGrad();
  const ha = mul(a, a);
  sum(ha).backward(undefined, { retainGraph: true });
  sum(mul(ha, 3)).backward();
  assertClose(await a.grad!.toArray(), [8, 16], tol, 'a.grad');
});

test('a cast to an integer dtype carries no gradient (torch: an integer tensor never requires grad)', () => {
  const x = tensor([1.5, 2.5], [2]).requireGrad();
  const i = cast(x, 'i32');
  assert.equal(i.requiresGrad, false);
  assert.equal(i.node, null);
  const back = sum(cast(i, 'f32'));
  assert.equal(back.requiresGrad, false);
  assert.throws(() => back.backward(), AutogradError);
});

test('a gradient passed to backward in another dtype is converted to the output dtype, as torch converts it', async () => {
  const x = tensor([0, 1, 2], [3]).requireGrad();
  exp(x).backward(tensor([1, -2, 3], [3], { dtype: 'i32' }));
  assertClose(await x.grad!.toArray(), [1, -2 * Math.E, 3 * Math.exp(2)], { atol: 1e-5, rtol: 1e-6 }, 'x.grad from an i32 gradient');
});

test('fusedLinearFits refuses an activation on the graph (not only a leaf) while gradients are recorded', () => {
  const w = tensor(new Float32Array(8 * 16).fill(0.5), [8, 16]);
  const leaf = tensor(new Float32Array(16).fill(1), [1, 16]).requireGrad();
  const activation = mul(leaf, 2);
  const fitsWithoutGrad = noGrad(() => fusedLinearFits(activation, [w]));
  if (!fitsWithoutGrad) return; // an adapter without the fused kernels (no fixed subgroup size) never fits
  assert.equal(fusedLinearFits(activation, [w]), false, 'the fused kernel records no gradient, so the graph would be cut');
});

test('every op records a gradient-requiring output from a float input that requires one, and none under noGrad', () => {
  const x = tensor(new Float32Array(24).fill(0.5), [2, 3, 4]).requireGrad();
  const w = tensor(new Float32Array(20).fill(0.25), [4, 5]);
  const ops: [string, (t: Tensor) => Tensor][] = [
    ['reshape', (t) => reshape(t, [6, 4])],
    ['permute', (t) => permute(t, [2, 0, 1])],
    ['transpose', (t) => transpose(t, 0, 2)],
    ['slice', (t) => slice(t, 2, 1, 3)],
    ['expand', (t) => expand(reshape(t, [1, 2, 3, 4]), [3, 2, 3, 4])],
    ['contiguous', (t) => contiguous(transpose(t, 1, 2))],
    ['cast to f32', (t) => cast(t, 'f32')],
    ['where', (t) => where(tensor([1, 0, 1, 0], [4], { dtype: 'u32' }), t, 0)],
    ['cat', (t) => cat([t, tensor(new Float32Array(24), [2, 3, 4])], 1)],
    ['matmul, broadcast batch', (t) => matmul(t, w)],
    ['add with a number', (t) => add(3, t)],
    ['sum', (t) => sum(t, 1)],
    ['max', (t) => max(t, 2)],
    ['softmax', (t) => softmax(t)],
  ];
  for (const [name, f] of ops) {
    assert.equal(f(x).requiresGrad, true, name);
    assert.equal(noGrad(() => f(x)).requiresGrad, false, `${name} under noGrad`);
    assert.equal(f(x.detach()).requiresGrad, false, `${name} of a detached input`);
  }
});

test('assigning a .grad of another shape or dtype throws, as torch; null and a matching tensor are accepted', async () => {
  const x = tensor([1, 2], [2]).requireGrad();
  assert.throws(() => { x.grad = tensor([1], [1]); }, ShapeError);
  assert.throws(() => { x.grad = tensor([1, 2], [1, 2]); }, ShapeError);
  assert.throws(() => { x.grad = tensor([1, 2], [2], { dtype: 'i32' }); }, DTypeError);
  x.grad = tensor([10, 20], [2]);
  sum(x).backward();
  assertClose(await x.grad!.toArray(), [11, 21], tol, 'x.grad accumulates onto the assigned one');
  x.grad = null;
  sum(x).backward();
  assertClose(await x.grad!.toArray(), [1, 1], tol, 'x.grad after it was set to null');
});
