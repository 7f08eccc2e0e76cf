// Ops on edge values (NaN, +-inf, +-0) against torch: elementwise functions and their gradients,
// casts, and where/maskedFill conditions and number branches (torch numbers in
// test/fixtures/tensor/torch-values.json, made by scripts/fixtures/make-tensor-torch-fixture.py).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, test } from 'node:test';
import { backward, cast, DTypeError, exp, hasF16, log, maskedFill, pow, relu, rsqrt, silu, sqrt, sum, tensor, where, type Tensor } from '@huatuo/tensor';
import { gpu, scoped } from './helpers.js';

type Encoded = number | 'nan' | 'inf' | '-inf' | '-0';
interface UnaryCase {
  op: string;
  x: Encoded[];
  y: Encoded[];
  grad: Encoded[];
}
interface CastCase {
  x: Encoded[];
  i32: Encoded[];
  f16: Encoded[];
}
const fixture = JSON.parse(readFileSync(new URL('../fixtures/tensor/torch-values.json', import.meta.url), 'utf8')) as {
  unary: UnaryCase[];
  cast: CastCase;
};

function decode(v: Encoded): number {
  if (v === 'nan') return NaN;
  if (v === 'inf') return Infinity;
  if (v === '-inf') return -Infinity;
  if (v === '-0') return -0;
  return v;
}

/** Equal as torch gives them: NaN for NaN, the same infinity, the same signed zero; finite values within rtol. */
function assertEdgeClose(actual: ArrayLike<number>, expected: Encoded[], what: string, rtol = 1e-5): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = decode(expected[i]!);
    const ok = Number.isNaN(e) ? Number.isNaN(a) : e === 0 || !Number.isFinite(e) ? Object.is(a, e) : Math.abs(a - e) <= rtol * Math.abs(e);
    if (!ok) assert.fail(`${what}: index ${i}: got ${Object.is(a, -0) ? '-0' : a}, torch gives ${expected[i]}`);
  }
}

const UNARY: Record<string, (x: Tensor) => Tensor> = { exp, log, sqrt, rsqrt, silu, relu };

before(async () => {
  await gpu();
});

test('exp, log, sqrt, rsqrt, silu, relu and pow give torch outputs and gradients on NaN, infinities and signed zeros', async () => {
  for (const c of fixture.unary) {
    await scoped(async () => {
      const x = tensor(c.x.map(decode), [c.x.length]).requireGrad();
      const y = c.op.startsWith('pow:') ? pow(x, Number(c.op.slice(4))) : UNARY[c.op]!(x);
      backward(sum(y));
      assertEdgeClose(await y.toArray(), c.y, `${c.op}(x)`);
      assertEdgeClose(await x.grad!.toArray(), c.grad, `${c.op} gradient`);
    });
  }
});

test('cast to i32 truncates toward zero and gives -2^31 for NaN, infinities and out-of-range values, as torch', async () => {
  await scoped(async () => {
    const x = tensor(fixture.cast.x.map(decode), [fixture.cast.x.length]);
    const y = cast(x, 'i32');
    assert.equal(y.dtype, 'i32');
    assertEdgeClose(await y.toArray(), fixture.cast.i32, 'cast to i32', 0);
    assert.throws(() => cast(x, 'f64' as never), (e: Error) => e instanceof DTypeError && /cast: dtype "f64" is not one of/.test(e.message));
  });
});

test('cast to f16 rounds to nearest even and overflows to infinity, as torch', async (t) => {
  if (!hasF16()) return t.skip('no shader-f16');
  await scoped(async () => {
    const x = tensor(fixture.cast.x.map(decode), [fixture.cast.x.length]);
    assertEdgeClose(await cast(x, 'f16').toArray(), fixture.cast.f16, 'cast to f16', 0);
  });
});

test('where and maskedFill read a float condition as torch bool() does: NaN and infinities are true, -0 false', async () => {
  await scoped(async () => {
    const cond = [NaN, 0, -0, 1, -Infinity, 1e-30];
    const chosen = [true, false, false, true, true, true];
    const a = tensor([1, 1, 1, 1, 1, 1], [6]);
    const b = tensor([2, 2, 2, 2, 2, 2], [6]);
    const expected = chosen.map((c) => (c ? 1 : 2));
    assert.deepEqual(Array.from(await where(tensor(cond, [6]), a, b).toArray()), expected, 'f32 condition');
    assert.deepEqual(Array.from(await maskedFill(b, tensor(cond, [6]), 1).toArray()), expected, 'f32 mask');
    // 1e-30 rounds to 0 in f16, so false there
    if (hasF16()) assert.deepEqual(Array.from(await where(cast(tensor(cond, [6]), 'f16'), a, b).toArray()), [...expected.slice(0, 5), 2], 'f16 condition');
    assert.deepEqual(Array.from(await where(tensor(new Int32Array([0, -1, 5, 0, 1, 0]), [6]), a, b).toArray()), [2, 1, 1, 2, 1, 2], 'i32 condition');
  });
});

test('where takes a number for either branch as torch.where does, in the other operand dtype, and its gradient is exactly 0 where a branch is not chosen', async () => {
  await scoped(async () => {
    const cond = tensor(new Int32Array([1, 0, 1]), [3]);
    const x = tensor([NaN, Infinity, 2], [3]).requireGrad();
    const y = where(cond, x, 0);
    assert.deepEqual(Array.from(await y.toArray()), [NaN, 0, 2]);
    const z = where(cond, -1.5, x);
    assert.deepEqual(Array.from(await z.toArray()), [-1.5, Infinity, -1.5]);
    backward(sum(y).add(sum(z)));
    assert.deepEqual(Array.from(await x.grad!.toArray()), [1, 1, 1]);
    const both = where(cond, 1, 0);
    assert.equal(both.dtype, 'f32');
    assert.deepEqual(Array.from(await both.toArray()), [1, 0, 1]);
    if (hasF16()) assert.equal(where(cond, cast(x, 'f16'), 0).dtype, 'f16');
    // where passes exactly 0 to the unchosen log branch; log's own backward then gives 0 / 0 = NaN at
    // u = 0, as in torch (tensor([nan, -1., 0.]))
    const u = tensor([0, -1, 4], [3]).requireGrad();
    backward(sum(where(cond, tensor([7, 7, 7], [3]), log(u))));
    const gu = await u.grad!.toArray();
    assert.ok(Number.isNaN(gu[0]!) && gu[1] === -1 && Object.is(gu[2], 0), `log branch gradient ${Array.from(gu)} (torch: nan, -1, 0)`);
  });
});
