// crossEntropy (F.cross_entropy semantics) against the CPU reference, by finite differences, and on bad input.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  DTypeError, DisposedError, ShapeError, ValueError, crossEntropy, hasF16, mul, refCrossEntropy, refCrossEntropyBackward,
  refTensor, slice, startScope, sum, tensor, type Reduction, type Tensor,
} from '@huatuo/tensor';
import { assertClose, finiteDifferences, gpu, seededValues } from './helpers.js';

/** Targets in [0, V), about a quarter replaced by ignoreIndex. */
function targetsFor(count: number, seed: number, V: number, ignoreIndex = -100): Int32Array {
  const u = seededValues(count, seed);
  return Int32Array.from(u, (v, i) => (Math.abs(seededValues(1, seed + i)[0]!) < 0.25 ? ignoreIndex : Math.min(V - 1, Math.floor(((v + 1) / 2) * V))));
}

// [lead dims, V, reduction]
const caseArb = fc.tuple(
  fc.constantFrom([1], [3], [17], [2, 3], [3, 17]),
  fc.constantFrom(1, 3, 17, 65, 257),
  fc.constantFrom<Reduction>('mean', 'sum', 'none'),
  fc.integer({ min: 1, max: 1e6 }),
);

test('crossEntropy matches the CPU reference for [N, V] and [B, T, V] logits and every reduction', async () => {
  await gpu();
  await fc.assert(
    fc.asyncProperty(caseArb, async ([lead, V, reduction, seed]) => {
      const n = lead.reduce((a: number, b: number) => a * b, 1);
      const xv = seededValues(n * V, seed, 4);
      const tv = targetsFor(n, seed + 5, V);
      if (reduction === 'mean' && tv.every((t) => t === -100)) tv[0] = 0;
      const s = startScope();
      try {
        const out = crossEntropy(tensor(xv, [...lead, V]), tensor(tv, lead), { reduction });
        assert.deepEqual(out.shape, reduction === 'none' ? lead : []);
        const expected = refCrossEntropy(refTensor(xv, [n, V]), tv, -100, reduction).data;
        assertClose(await out.toArray(), expected, { atol: 1e-5, rtol: 1e-4 }, `crossEntropy [${lead}, ${V}] ${reduction} seed ${seed}`);
      } finally {
        s.end();
      }
    }),
    { numRuns: 15 },
  );
});

test('crossEntropy with every target ignored is NaN for mean and 0 for sum, as torch', async () => {
  await gpu();
  const s = startScope();
  try {
    const x = tensor(seededValues(6, 2), [2, 3]);
    const t = tensor(new Int32Array([-100, -100]));
    assert.ok(Number.isNaN(await crossEntropy(x, t).item()));
    assert.equal(await crossEntropy(x, t, { reduction: 'sum' }).item(), 0);
    assert.deepEqual(Array.from(await crossEntropy(x, t, { reduction: 'none' }).toArray()), [0, 0]);
    const custom = await crossEntropy(x, tensor(new Int32Array([1, 7])), { ignoreIndex: 7 }).item();
    assertClose([custom], refCrossEntropy(refTensor(await x.toArray(), [2, 3]), [1, 7], 7).data, { atol: 1e-6, rtol: 1e-5 }, 'custom ignoreIndex');
  } finally {
    s.end();
  }
});

test('crossEntropy in f16 matches the reference within f16 rounding', async (t) => {
  await gpu();
  if (!hasF16()) return t.skip('adapter lacks shader-f16');
  const s = startScope();
  try {
    const x = tensor(seededValues(17 * 65, 3, 4), [17, 65], { dtype: 'f16' });
    const tv = targetsFor(17, 4, 65);
    const out = crossEntropy(x, tensor(tv));
    assert.equal(out.dtype, 'f16');
    const expected = refCrossEntropy(refTensor(await x.toArray(), [17, 65]), tv).data;
    assertClose([await out.item()], expected, { atol: 1e-3, rtol: 2e-3 }, 'crossEntropy f16');
  } finally {
    s.end();
  }
});

test('crossEntropy backward matches central finite differences for each reduction', async () => {
  await gpu();
  const s = startScope();
  try {
    const shape = [4, 5];
    const xv = seededValues(20, 51, 2);
    const targets = tensor(new Int32Array([1, -100, 4, 0]));
    const r = tensor(seededValues(4, 52), [4]);
    for (const reduction of ['mean', 'sum', 'none'] as const) {
      const f = (x: Tensor) => {
        const l = crossEntropy(x, targets, { reduction });
        return reduction === 'none' ? sum(mul(l, r)) : l;
      };
      const x = tensor(xv, shape).requireGrad();
      f(x).backward();
      assertClose(await x.grad!.toArray(), await finiteDifferences(f, xv, shape), { atol: 5e-3, rtol: 1e-2 }, `${reduction} grad vs finite differences`);
    }
  } finally {
    s.end();
  }
});

test('crossEntropy backward matches the reference analytic gradient on larger shapes', async () => {
  await gpu();
  await fc.assert(
    fc.asyncProperty(caseArb, async ([lead, V, reduction, seed]) => {
      const n = lead.reduce((a: number, b: number) => a * b, 1);
      const xv = seededValues(n * V, seed, 4);
      const tv = targetsFor(n, seed + 5, V);
      if (tv.every((t) => t === -100)) tv[0] = 0;
      const gv = reduction === 'none' ? seededValues(n, seed + 6) : new Float32Array([1.5]);
      const s = startScope();
      try {
        const x = tensor(xv, [...lead, V]).requireGrad();
        const loss = crossEntropy(x, tensor(tv, lead), { reduction });
        loss.backward(tensor(gv, loss.shape));
        const expected = refCrossEntropyBackward(refTensor(xv, [n, V]), tv, gv, -100, reduction).data;
        assertClose(await x.grad!.toArray(), expected, { atol: 1e-5, rtol: 1e-4 }, `grad [${lead}, ${V}] ${reduction} seed ${seed}`);
      } finally {
        s.end();
      }
    }),
    { numRuns: 10 },
  );
});

test('crossEntropy rejects out-of-range host targets, mismatched shapes, float targets and disposed inputs, naming the op', async () => {
  await gpu();
  const x = tensor(seededValues(6, 1), [2, 3]);
  assert.throws(
    () => crossEntropy(x, tensor(new Int32Array([0, 3]))),
    (e: Error) => e instanceof ValueError && e.message.includes('crossEntropy: targets[1] = 3') && e.message.includes('[2, 3]'),
  );
  assert.throws(
    () => crossEntropy(x, tensor(new Int32Array([0, 1, 2]))),
    (e: Error) => e instanceof ShapeError && e.message.includes('[2, 3]') && e.message.includes('[3]'),
  );
  assert.throws(() => crossEntropy(x, tensor([0, 1])), (e: Error) => e instanceof DTypeError && e.message.includes('crossEntropy'));
  assert.throws(() => crossEntropy(x, tensor(new Int32Array([0, 1])), { reduction: 'avg' as Reduction }), (e: Error) => e instanceof ValueError);
  // Device-resident targets are not bounds-checked: an out-of-range one gives a NaN loss.
  const s = startScope();
  try {
    const onDevice = slice(tensor(new Int32Array([0, 9, 1])), 0, 0, 2);
    const l = await crossEntropy(x, onDevice, { reduction: 'none' }).toArray();
    assert.ok(Number.isFinite(l[0]) && Number.isNaN(l[1]));
  } finally {
    s.end();
  }
  x.dispose();
  assert.throws(() => crossEntropy(x, tensor(new Int32Array([0, 1]))), (e: Error) => e instanceof DisposedError && e.message.includes('crossEntropy'));
});

type Encoded = number | 'nan' | 'inf' | '-inf' | '-0';
const decode = (v: Encoded): number => (v === 'nan' ? NaN : v === 'inf' ? Infinity : v === '-inf' ? -Infinity : v === '-0' ? -0 : v);
const torchCE = (
  JSON.parse(readFileSync(new URL('../fixtures/tensor/torch-values.json', import.meta.url), 'utf8')) as {
    crossEntropy: { V: number; logits: Encoded[]; targets: number[]; cases: { reduction: Reduction; rows: number[]; loss: Encoded[]; grad: Encoded[] }[] };
  }
).crossEntropy;

/** NaN where torch has NaN, the same infinity, finite values within tolerance (a zero of either sign). */
function assertTorchClose(actual: ArrayLike<number>, expected: Encoded[], what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = decode(expected[i]!);
    const ok = Number.isNaN(e) ? Number.isNaN(a) : Number.isFinite(e) ? Math.abs(a - e) <= 1e-6 + 1e-5 * Math.abs(e) : a === e;
    assert.ok(ok, `${what}: index ${i}: got ${a}, torch gives ${expected[i]}`);
  }
}

test('crossEntropy gives torch losses and gradients on rows of 130 logits with -inf (also first in a thread), +inf and NaN', async () => {
  await gpu();
  const s = startScope();
  try {
    const { V, logits, targets } = torchCE;
    for (const c of torchCE.cases) {
      const rows = c.rows.flatMap((r) => logits.slice(r * V, (r + 1) * V).map(decode));
      const x = tensor(rows, [c.rows.length, V]).requireGrad();
      const t = tensor(Int32Array.from(c.rows, (r) => targets[r]!), [c.rows.length]);
      const loss = crossEntropy(x, t, { reduction: c.reduction });
      sum(loss).backward();
      assertTorchClose(await loss.toArray(), c.loss, `crossEntropy ${c.reduction} loss`);
      assertTorchClose(await x.grad!.toArray(), c.grad, `crossEntropy ${c.reduction} gradient`);
    }
  } finally {
    s.end();
  }
});

test('crossEntropy refuses options it does not have (torch label_smoothing, weight, ignore_index spelling) instead of ignoring them', async () => {
  await gpu();
  const s = startScope();
  try {
    const x = tensor([0, 1, 2, 3, 4, 5], [2, 3]);
    const t = tensor(new Int32Array([0, 2]), [2]);
    for (const key of ['label_smoothing', 'labelSmoothing', 'weight', 'ignore_index']) {
      assert.throws(
        () => crossEntropy(x, t, { [key]: 0.1 } as never),
        (e: Error) => e instanceof ValueError && e.message.includes(`crossEntropy: option ${key} is not supported`),
        key,
      );
    }
  } finally {
    s.end();
  }
});

test('crossEntropy takes unbatched logits [V] with a 0-d target, as torch does', async () => {
  await gpu();
  const s = startScope();
  try {
    const x = tensor([1, 2, 3], [3]).requireGrad();
    const loss = crossEntropy(x, tensor(new Int32Array([1]), []));
    assert.deepEqual(loss.shape, []);
    // torch.nn.functional.cross_entropy(torch.tensor([1., 2, 3]), torch.tensor(1)) = 1.4076
    assertClose(await loss.toArray(), [1.4076059644443801], { atol: 1e-6, rtol: 1e-6 }, 'unbatched loss');
    loss.backward();
    const e = [1, 2, 3].map((v) => Math.exp(v));
    const z = e.reduce((a, b) => a + b, 0);
    assertClose(await x.grad!.toArray(), e.map((v, i) => v / z - (i === 1 ? 1 : 0)), { atol: 1e-6, rtol: 1e-5 }, 'unbatched gradient');
    assert.deepEqual(crossEntropy(tensor([1, 2, 3], [3]), tensor(new Int32Array([2]), []), { reduction: 'none' }).shape, []);
  } finally {
    s.end();
  }
});
