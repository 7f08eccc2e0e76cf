// The storage version (PyTorch's `_version`): every in-place write into a tensor's storage raises it,
// through any view of that storage, and nothing else does.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  AdamW, SGD, add, clipGradNorm, copyInto, noGrad, reshape, ropeCache, slice, tensor, transpose, unscaleGradients, zeros, type Tensor,
} from '@huatuo/tensor';
import { gpu } from './helpers.js';

function withGrad(values: number[]): Tensor {
  const p = tensor(new Float32Array(values), [values.length]).requireGrad();
  p.grad = tensor(new Float32Array(values.map((v) => v / 2)), [values.length]);
  return p;
}

test('a new tensor is at version 0, and ops that make new tensors leave their inputs at their version', async () => {
  await gpu();
  const a = tensor(new Float32Array([1, 2, 3, 4]), [2, 2]);
  assert.equal(a.version, 0);
  const y = add(a, transpose(a));
  assert.equal(a.version, 0);
  assert.equal(y.version, 0);
  for (const t of [a, y]) t.dispose();
});

test('copyInto raises the version of the written storage, seen from the tensor and all its views', async () => {
  await gpu();
  const base = zeros([4, 3]);
  const view = reshape(base, [12]);
  const rows = slice(base, 0, 1, 3);
  const src = tensor(new Float32Array(6).fill(1), [2, 3]);
  copyInto(rows, src);
  assert.deepEqual([base.version, view.version, rows.version, src.version], [1, 1, 1, 0]);
  copyInto(slice(base, 0, 0, 2), src);
  assert.deepEqual([base.version, view.version, rows.version], [2, 2, 2]);
  for (const t of [base, view, rows, src]) t.dispose();
});

test('an AdamW or SGD step raises the version of each parameter it updates, not of a parameter without a gradient', async () => {
  await gpu();
  for (const make of [(ps: Tensor[]) => new AdamW(ps, { lr: 0.1 }), (ps: Tensor[]) => new SGD(ps, { lr: 0.1, momentum: 0.9 })]) {
    const p = withGrad([1, 2, 3]);
    const idle = tensor(new Float32Array([1, 2]), [2]).requireGrad();
    const opt = make([p, idle]);
    opt.step();
    opt.step();
    assert.deepEqual([p.version, idle.version], [2, 0], opt.constructor.name);
    opt.dispose();
    for (const t of [p, idle]) t.dispose();
  }
});

test('clipping and unscaling gradients raise the gradients\' versions', async () => {
  await gpu();
  const p = withGrad([3, 4]);
  const g = p.grad!;
  clipGradNorm([p], 1).dispose();
  assert.equal(g.version, 1);
  unscaleGradients([g], 0.5).dispose();
  assert.equal(g.version, 2);
  p.dispose();
});

test('ropeCache raises the versions of the cache tensors it writes', async () => {
  await gpu();
  const [B, T, H, D, L] = [1, 2, 2, 4, 8];
  const keys = zeros([B, H, L, D]);
  const values = zeros([B, H, L, D]);
  const x = tensor(new Float32Array(B * T * H * D).fill(0.5), [B, T, H * D]);
  const positions = tensor(new Int32Array([0, 1]), [T]);
  noGrad(() => ropeCache(x, x, x, positions, 10000, keys, values, 0)).dispose();
  assert.deepEqual([keys.version, values.version, x.version], [1, 1, 0]);
  for (const t of [keys, values, x, positions]) t.dispose();
});
