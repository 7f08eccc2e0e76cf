// Errors at the op boundary: each bad call raises the package's error class with a message that
// names the op and the shapes or dtypes involved.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import {
  add, mul, exp, sum, max, matmul, reshape, permute, transpose, slice, expand, cat, where, cast, tensor, zeros, ones, arange,
  log, relu, pow, mean, argmax, softmax, logSoftmax, maskedFill, contiguous, dropout, rmsNorm, crossEntropy, embedding, swiglu, neg,
  ShapeError, DTypeError, DisposedError, AutogradError, TensorError, ValueError,
} from '@huatuo/tensor';
import { gpu } from './helpers.js';

before(async () => {
  await gpu();
});

/** Asserts that fn throws an instance of `cls` whose message contains every one of `parts`. */
function throwsWith(fn: () => unknown, cls: new (...args: never[]) => Error, parts: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
    assert.ok(e instanceof TensorError, 'every error of the package is a TensorError');
    for (const p of parts) assert.ok(e.message.includes(p), `message "${e.message}" should mention "${p}"`);
    return true;
  });
}

test('adding shapes that do not broadcast raises a ShapeError naming the op and both shapes', () => {
  throwsWith(() => add(zeros([2, 3]), zeros([4])), ShapeError, ['add', '[2, 3]', '[4]']);
  throwsWith(() => mul(zeros([5, 1, 3]), zeros([2, 4])), ShapeError, ['mul', '[5, 1, 3]', '[2, 4]']);
});

test('matmul with mismatched inner dimensions raises a ShapeError naming both operand shapes', () => {
  throwsWith(() => matmul(zeros([4, 8]), zeros([6, 2])), ShapeError, ['matmul', '[4, 8]', '[6, 2]']);
  throwsWith(() => matmul(zeros([2, 4, 8]), zeros([2, 6, 2])), ShapeError, ['matmul', '[2, 4, 8]', '[2, 6, 2]']);
  throwsWith(() => matmul(zeros([2, 4, 8]), zeros([3, 8, 2])), ShapeError, ['matmul', '[2]', '[3]', 'broadcast']);
});

test('an integer operand of float arithmetic raises a DTypeError naming the op and dtype', () => {
  const i = tensor(new Int32Array([1, 2, 3]));
  throwsWith(() => add(ones([3]), i), DTypeError, ['add', 'i32', '[3]']);
  throwsWith(() => exp(i), DTypeError, ['exp', 'i32']);
  throwsWith(() => matmul(ones([2, 2]), cast(ones([2, 2]), 'i32')), DTypeError, ['matmul', 'i32']);
  throwsWith(() => where(tensor(new Uint32Array([1, 0, 1])), ones([3]), i), DTypeError, ['where', 'f32', 'i32']);
  throwsWith(() => ones([2]).requireGrad().detach() && i.requireGrad(), DTypeError, ['requireGrad', 'i32']);
});

test('using a tensor after dispose raises a DisposedError naming the op that used it', async () => {
  const x = ones([2, 3]);
  x.dispose();
  assert.equal(x.disposed, true);
  throwsWith(() => exp(x), DisposedError, ['exp', '[2, 3]', 'disposed']);
  throwsWith(() => add(x, ones([3])), DisposedError, ['add', '[2, 3]']);
  throwsWith(() => matmul(x, ones([3, 2])), DisposedError, ['matmul', '[2, 3]']);
  throwsWith(() => sum(x), DisposedError, ['sum', '[2, 3]']);
  throwsWith(() => transpose(x), DisposedError, ['permute', '[2, 3]']);
  throwsWith(() => slice(x, 0, 1), DisposedError, ['slice', '[2, 3]']);
  throwsWith(() => reshape(x, [6]), DisposedError, ['reshape', '[2, 3]']);
  await assert.rejects(x.toArray(), (e: unknown) => e instanceof DisposedError && e.message.includes('toArray'));
  x.dispose(); // disposing twice is harmless
});

test('reshape to a different number of elements raises a ShapeError naming both shapes', () => {
  throwsWith(() => reshape(zeros([2, 3]), [4]), ShapeError, ['reshape', '[2, 3]', '[4]']);
  throwsWith(() => reshape(zeros([2, 3]), [-1, 4]), ShapeError, ['reshape', '[2, 3]', '[-1, 4]']);
  throwsWith(() => reshape(zeros([2, 3]), [-1, -1]), ShapeError, ['reshape', '-1']);
});

test('axes out of range or not forming a permutation raise a ShapeError naming the op, axis and rank', () => {
  throwsWith(() => sum(zeros([2, 3]), 2), ShapeError, ['sum', 'axis 2', 'rank 2']);
  throwsWith(() => max(zeros([2, 3]), -3), ShapeError, ['max', 'axis -3', 'rank 2']);
  throwsWith(() => transpose(zeros([4])), ShapeError, ['transpose', 'rank 1']);
  throwsWith(() => permute(zeros([2, 3, 4]), [0, 0, 1]), ShapeError, ['permute', '[0, 0, 1]', '[2, 3, 4]']);
  throwsWith(() => permute(zeros([2, 3]), [1]), ShapeError, ['permute', '[1]', '[2, 3]']);
  throwsWith(() => slice(zeros([2, 3]), 5, 0, 1), ShapeError, ['slice', 'axis 5']);
  throwsWith(() => cat([zeros([2, 3]), zeros([2, 4])], 0), ShapeError, ['cat', '[2, 3]', '[2, 4]']);
});

test('expand to an incompatible shape raises a ShapeError naming both shapes', () => {
  throwsWith(() => expand(zeros([2, 3]), [2, 4]), ShapeError, ['expand', '[2, 3]', '[2, 4]']);
  throwsWith(() => expand(zeros([2, 3]), [3]), ShapeError, ['expand', '[2, 3]', '[3]']);
});

test('bad creation arguments raise errors naming the function', () => {
  throwsWith(() => tensor([1, 2, 3], [2, 2]), ShapeError, ['tensor', '3 values', '[2, 2]']);
  throwsWith(() => zeros([2, -1]), ShapeError, ['zeros', '[2, -1]']);
  throwsWith(() => arange(0, 5, 0), ValueError, ['arange', 'step']);
});

test('backward on a non-scalar without a gradient, or outside any graph, raises an AutogradError', () => {
  const x = ones([2, 2]).requireGrad();
  throwsWith(() => mul(x, 2).backward(), AutogradError, ['backward', 'not a scalar']);
  throwsWith(() => ones([1]).backward(), AutogradError, ['backward', 'requires a gradient']);
  throwsWith(() => mul(x, 2).backward(ones([3])), ShapeError, ['backward', '[3]', '[2, 2]']);
});

test('a non-Tensor where an op takes a tensor raises a ValueError naming the op and the argument', () => {
  const x = zeros([2, 3]);
  const bad = [5, null, undefined, 'x', [1, 2], { shape: [2] }] as unknown as never[];
  const cases: [string, string, (v: never) => unknown][] = [
    ['exp', 'x', (v) => exp(v)], ['log', 'x', (v) => log(v)], ['relu', 'x', (v) => relu(v)], ['neg', 'x', (v) => neg(v)],
    ['pow', 'x', (v) => pow(v, 2)], ['sum', 'x', (v) => sum(v)], ['mean', 'x', (v) => mean(v, 0)], ['max', 'x', (v) => max(v, 0)],
    ['argmax', 'x', (v) => argmax(v, 0)], ['softmax', 'x', (v) => softmax(v)], ['logSoftmax', 'x', (v) => logSoftmax(v)],
    ['reshape', 'x', (v) => reshape(v, [6])], ['permute', 'x', (v) => permute(v, [1, 0])], ['transpose', 'x', (v) => transpose(v)],
    ['slice', 'x', (v) => slice(v, 0, 1)], ['expand', 'x', (v) => expand(v, [2, 3])], ['contiguous', 'x', (v) => contiguous(v)],
    ['cat', 'xs[1]', (v) => cat([x, v])], ['where', 'cond', (v) => where(v, x, x)], ['where', 'b', (v) => where(x, x, v)],
    ['maskedFill', 'mask', (v) => maskedFill(x, v, 0)], ['cast', 'x', (v) => cast(v, 'f16')], ['dropout', 'x', (v) => dropout(v, 0.5, 1)],
    ['rmsNorm', 'weight', (v) => rmsNorm(x, v)], ['crossEntropy', 'targets', (v) => crossEntropy(x, v)],
    ['embedding', 'table', (v) => embedding(tensor(new Int32Array([0])), v)], ['swiglu', 'up', (v) => swiglu(x, v)],
  ];
  for (const [op, arg, call] of cases) {
    for (const v of bad) {
      if (op === 'where' && arg === 'b' && typeof v === 'number') continue; // where takes a number branch
      throwsWith(() => call(v), ValueError, [`${op}: ${arg} is `, 'expected a Tensor']);
    }
  }
  throwsWith(() => cat(x as never), ValueError, ['cat: xs is a Tensor; expected an array of Tensors']);
});

test('a fraction or a non-array where an op needs integers raises a ValueError naming the op', () => {
  const x = zeros([2, 3]);
  throwsWith(() => sum(x, 1.5), ValueError, ['sum: axis is the number 1.5; expected an integer']);
  throwsWith(() => transpose(x, 0, 0.5), ValueError, ['transpose: axis is the number 0.5']);
  throwsWith(() => reshape(x, 6 as never), ValueError, ['reshape: shape is the number 6; expected an array of integers']);
  throwsWith(() => reshape(x, [2, 1.5, 2]), ValueError, ['reshape: shape is [2, 1.5, 2]']);
  throwsWith(() => expand(zeros([1]), [1.5]), ValueError, ['expand: shape is [1.5]']);
  throwsWith(() => permute(x, '10' as never), ValueError, ['permute: order is the string "10"']);
  throwsWith(() => slice(x, 1, 0.5), ValueError, ['slice: start 0.5']);
  throwsWith(() => maskedFill(x, x, 'a' as never), ValueError, ['maskedFill: value is string']);
  throwsWith(() => pow(x, '2' as never), ValueError, ['pow: p is the string "2"; expected a number']);
  throwsWith(() => pow(x, x as never), ValueError, ['pow: p is a Tensor', 'tensor exponents are not supported']);
});
