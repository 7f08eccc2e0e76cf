// Elementwise ops against the CPU reference: broadcasting arithmetic, unary functions, where,
// maskedFill and casts, forward on fast-check shapes and views, backward by finite differences
// and against the reference's analytic gradients.
import { before, test } from 'node:test';
import fc from 'fast-check';
import {
  add, sub, mul, div, neg, exp, log, sqrt, rsqrt, pow, silu, relu, where, maskedFill, cast, sum,
  tensor, hasF16, numel,
  refTensor, refCast, refBroadcastTo,
  refAdd, refAddBackward, refSub, refSubBackward, refMul, refMulBackward, refDiv, refDivBackward, refNeg, refNegBackward,
  refExp, refExpBackward, refLog, refLogBackward, refSqrt, refSqrtBackward, refRsqrt, refRsqrtBackward,
  refPow, refPowBackward, refSilu, refSiluBackward, refRelu, refReluBackward, refWhere, refWhereBackward,
  type RefTensor, type Tensor,
} from '@huatuo/tensor';
import { assertClose, finiteDifferences, gpu, seededValues, type Tolerance, scoped, viewedInput, type Layout } from './helpers.js';

before(async () => {
  await gpu();
});

const dim = fc.constantFrom(1, 2, 3, 5, 17, 65, 257);
const shapeArb = (maxRank: number, maxNumel: number) =>
  fc.array(dim, { minLength: 1, maxLength: maxRank }).filter((s) => numel(s) <= maxNumel);
const layoutArb = fc.constantFrom<Layout>('contiguous', 'transposed', 'sliced');

/** An output shape and two operand shapes that broadcast to it (dropped leading dims, size-1 dims). */
const broadcastArb = fc
  .record({
    out: shapeArb(4, 6000),
    dropA: fc.nat(3),
    dropB: fc.nat(3),
    onesA: fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
    onesB: fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
  })
  .map(({ out, dropA, dropB, onesA, onesB }) => {
    const derive = (drop: number, ones: boolean[]) =>
      out.slice(Math.min(drop, out.length - 1)).map((d, i) => (ones[i] ? 1 : d));
    return { a: derive(dropA, onesA), b: derive(dropB, onesB) };
  });

const positive = (v: number) => 0.2 + Math.abs(v) * 2;
const awayFromZero = (v: number) => (v >= 0 ? 0.1 + v : v - 0.1);

interface BinaryCase {
  name: string;
  gpu: (a: Tensor, b: Tensor) => Tensor;
  ref: (a: RefTensor, b: RefTensor) => RefTensor;
  refBackward: (a: RefTensor, b: RefTensor, g: RefTensor) => [RefTensor, RefTensor];
  domainB?: (v: number) => number;
  tol: Tolerance;
}

const binaryCases: BinaryCase[] = [
  { name: 'add', gpu: add, ref: refAdd, refBackward: refAddBackward, tol: { atol: 1e-6, rtol: 1e-6 } },
  { name: 'sub', gpu: sub, ref: refSub, refBackward: refSubBackward, tol: { atol: 1e-6, rtol: 1e-6 } },
  { name: 'mul', gpu: mul, ref: refMul, refBackward: refMulBackward, tol: { atol: 1e-6, rtol: 1e-6 } },
  { name: 'div', gpu: div, ref: refDiv, refBackward: refDivBackward, domainB: positive, tol: { atol: 1e-6, rtol: 2e-6 } },
];

interface UnaryCase {
  name: string;
  gpu: (x: Tensor) => Tensor;
  ref: (x: RefTensor) => RefTensor;
  refBackward: (x: RefTensor, g: RefTensor) => RefTensor;
  domain?: (v: number) => number;
  tol: Tolerance;
}

const unaryCases: UnaryCase[] = [
  { name: 'neg', gpu: neg, ref: refNeg, refBackward: refNegBackward, tol: { atol: 0, rtol: 0 } },
  { name: 'exp', gpu: exp, ref: refExp, refBackward: refExpBackward, domain: (v) => 2 * v, tol: { atol: 1e-6, rtol: 4e-6 } },
  { name: 'log', gpu: log, ref: refLog, refBackward: refLogBackward, domain: positive, tol: { atol: 2e-6, rtol: 2e-6 } },
  { name: 'sqrt', gpu: sqrt, ref: refSqrt, refBackward: refSqrtBackward, domain: positive, tol: { atol: 1e-6, rtol: 2e-6 } },
  { name: 'rsqrt', gpu: rsqrt, ref: refRsqrt, refBackward: refRsqrtBackward, domain: positive, tol: { atol: 1e-6, rtol: 4e-6 } },
  { name: 'pow 3', gpu: (x) => pow(x, 3), ref: (x) => refPow(x, 3), refBackward: (x, g) => refPowBackward(x, 3, g), tol: { atol: 1e-5, rtol: 1e-5 } },
  { name: 'pow 2', gpu: (x) => pow(x, 2), ref: (x) => refPow(x, 2), refBackward: (x, g) => refPowBackward(x, 2, g), tol: { atol: 1e-6, rtol: 1e-6 } },
  {
    name: 'pow 0.5',
    gpu: (x) => pow(x, 0.5),
    ref: (x) => refPow(x, 0.5),
    refBackward: (x, g) => refPowBackward(x, 0.5, g),
    domain: positive,
    tol: { atol: 1e-5, rtol: 1e-5 },
  },
  { name: 'silu', gpu: silu, ref: refSilu, refBackward: refSiluBackward, domain: (v) => 4 * v, tol: { atol: 1e-6, rtol: 1e-5 } },
  { name: 'relu', gpu: relu, ref: refRelu, refBackward: refReluBackward, domain: awayFromZero, tol: { atol: 0, rtol: 0 } },
];

test('broadcasting add, sub, mul and div match the reference on fast-check shapes and views', async () => {
  for (const c of binaryCases) {
    await fc.assert(
      fc.asyncProperty(broadcastArb, layoutArb, layoutArb, fc.nat(1 << 20), async (shapes, la, lb, seed) =>
        scoped(async () => {
          const a = viewedInput(shapes.a, seed, la);
          const b = viewedInput(shapes.b, seed + 1, lb, c.domainB);
          const out = c.gpu(a.t, b.t);
          const expected = c.ref(a.ref, b.ref);
          assertClose(await out.toArray(), expected.data, c.tol, `${c.name} [${shapes.a}] (${la}) with [${shapes.b}] (${lb})`);
        }),
      ),
      { numRuns: 15 },
    );
  }
});

test('a number operand on either side is broadcast as a constant, forward and gradient', async () => {
  await scoped(async () => {
    const values = seededValues(24, 7).map(positive);
    const x = tensor(values, [4, 6]).requireGrad();
    const rx = refTensor(values, [4, 6]);
    const k = refTensor([2.5], []);
    const cases: [string, Tensor, RefTensor, RefTensor][] = [
      ['x + 2.5', add(x, 2.5), refAdd(rx, k), refAddBackward(rx, k, refBroadcastTo(refTensor([1], []), [4, 6]))[0]],
      ['2.5 - x', sub(2.5, x), refSub(k, rx), refSubBackward(k, rx, refBroadcastTo(refTensor([1], []), [4, 6]))[1]],
      ['x * 2.5', mul(x, 2.5), refMul(rx, k), refMulBackward(rx, k, refBroadcastTo(refTensor([1], []), [4, 6]))[0]],
      ['2.5 / x', div(2.5, x), refDiv(k, rx), refDivBackward(k, rx, refBroadcastTo(refTensor([1], []), [4, 6]))[1]],
      ['x / 2.5', div(x, 2.5), refDiv(rx, k), refDivBackward(rx, k, refBroadcastTo(refTensor([1], []), [4, 6]))[0]],
    ];
    for (const [what, y, expected, expectedGrad] of cases) {
      assertClose(await y.toArray(), expected.data, { atol: 1e-6, rtol: 2e-6 }, what);
      x.grad?.dispose();
      x.grad = null;
      sum(y).backward();
      assertClose(await x.grad!.toArray(), expectedGrad.data, { atol: 1e-6, rtol: 4e-6 }, `gradient of ${what}`);
    }
  });
});

test('unary functions match the reference on fast-check shapes and views', async () => {
  for (const c of unaryCases) {
    await fc.assert(
      fc.asyncProperty(shapeArb(4, 6000), layoutArb, fc.nat(1 << 20), async (shape, layout, seed) =>
        scoped(async () => {
          const x = viewedInput(shape, seed, layout, c.domain);
          assertClose(await c.gpu(x.t).toArray(), c.ref(x.ref).data, c.tol, `${c.name} [${shape}] (${layout})`);
        }),
      ),
      { numRuns: 10 },
    );
  }
});

test('pow with an integer exponent keeps the sign of negative bases, and a fractional one gives NaN', async () => {
  await scoped(async () => {
    const values = [-2, -0.5, 0, 0.5, 3];
    const x = tensor(values, [5]);
    const r = refTensor(values, [5]);
    assertClose(await pow(x, 3).toArray(), refPow(r, 3).data, { atol: 1e-6, rtol: 1e-5 }, 'pow 3');
    assertClose(await pow(x, -2).toArray(), refPow(r, -2).data, { atol: 1e-6, rtol: 1e-5 }, 'pow -2');
    assertClose(await pow(x, 1.5).toArray(), refPow(r, 1.5).data, { atol: 1e-6, rtol: 1e-5 }, 'pow 1.5');
  });
});

test('pow follows IEEE pow at zero, signed zero and NaN: x^0 is 1 for every x, and d x^1/dx is 1 at 0', async () => {
  await scoped(async () => {
    const values = [-2, -0.5, -0, 0, 0.5, 3, NaN];
    const r = refTensor(values, [values.length]);
    for (const p of [0, 1, 3, -1, -2, 0.5, 1.5]) {
      const x = tensor(values, [values.length], { requiresGrad: true });
      const y = pow(x, p);
      assertClose(await y.toArray(), refPow(r, p).data, { atol: 1e-6, rtol: 1e-5 }, `pow ${p}`);
      y.backward(tensor(values.map(() => 1), [values.length]));
      assertClose(await x.grad!.toArray(), refPowBackward(r, p, refTensor(values.map(() => 1), [values.length])).data, { atol: 1e-6, rtol: 1e-5 }, `pow ${p} backward`);
    }
  });
});

test('where and maskedFill select elementwise with broadcasting of the mask and both branches', async () => {
  await fc.assert(
    fc.asyncProperty(broadcastArb, fc.nat(1 << 20), fc.constantFrom<'u32' | 'f32'>('u32', 'f32'), async (shapes, seed, condType) =>
      scoped(async () => {
        const mask = seededValues(numel(shapes.b), seed + 2).map((v) => (v > 0 ? 1 : 0));
        const cond = tensor(condType === 'u32' ? Uint32Array.from(mask) : mask, shapes.b);
        const rc = refTensor(mask, shapes.b);
        const a = viewedInput(shapes.a, seed, 'contiguous');
        const b = viewedInput(shapes.b, seed + 1, 'transposed');
        assertClose(await where(cond, a.t, b.t).toArray(), refWhere(rc, a.ref, b.ref).data, { atol: 0, rtol: 0 }, `where [${shapes.a}] [${shapes.b}]`);
        const filled = refWhere(rc, refTensor([-7.5], []), a.ref);
        assertClose(await maskedFill(a.t, cond, -7.5).toArray(), filled.data, { atol: 0, rtol: 0 }, `maskedFill [${shapes.a}] mask [${shapes.b}]`);
      }),
    ),
    { numRuns: 15 },
  );
});

test('cast from f32 to f16 rounds to nearest even, and back to f32 is exact', async (t) => {
  if (!hasF16()) return t.skip('adapter lacks shader-f16');
  await scoped(async () => {
    const tie = [1 + 2 ** -11, 1 + 3 * 2 ** -11, 2 ** -25, 3 * 2 ** -25, 2048 + 1, 2048 + 3, 65504, 65519, -(1 + 2 ** -11), 2 ** -24, 6.1e-5];
    const values = Float32Array.from([...tie, ...seededValues(500, 11).map((v, i) => v * 2 ** ((i % 40) - 24))]);
    const x = tensor(values, [values.length]);
    const h = cast(x, 'f16');
    const expected = refCast(refTensor(values, [values.length]), 'f16');
    assertClose(await h.toArray(), expected.data, { atol: 0, rtol: 0 }, 'f32 -> f16');
    assertClose(await cast(h, 'f32').toArray(), expected.data, { atol: 0, rtol: 0 }, 'f16 -> f32');
  });
});

test('cast from floats to i32 truncates toward zero and from i32 to f32 is exact', async () => {
  await scoped(async () => {
    const values = Float32Array.from([-2.7, -0.5, 0, 0.99, 1.5, 123456.75, -40000.25]);
    const x = tensor(values, [values.length]);
    const expected = refCast(refTensor(values, [values.length]), 'i32');
    const i = cast(x, 'i32');
    assertClose(await i.toArray(), expected.data, { atol: 0, rtol: 0 }, 'f32 -> i32');
    assertClose(await cast(i, 'f32').toArray(), expected.data, { atol: 0, rtol: 0 }, 'i32 -> f32');
  });
});

test('f16 arithmetic and exp match the reference computed on f16-rounded inputs', async (t) => {
  if (!hasF16()) return t.skip('adapter lacks shader-f16');
  await fc.assert(
    fc.asyncProperty(broadcastArb, fc.nat(1 << 20), async (shapes, seed) =>
      scoped(async () => {
        const a = viewedInput(shapes.a, seed, 'transposed');
        const b = viewedInput(shapes.b, seed + 1, 'contiguous', positive);
        const [a16, b16] = [cast(a.t, 'f16'), cast(b.t, 'f16')];
        const [ra, rb] = [refCast(a.ref, 'f16'), refCast(b.ref, 'f16')];
        const tol = { atol: 1e-3, rtol: 2e-3 };
        assertClose(await add(a16, b16).toArray(), refCast(refAdd(ra, rb), 'f16').data, tol, `f16 add [${shapes.a}] [${shapes.b}]`);
        assertClose(await mul(a16, b16).toArray(), refCast(refMul(ra, rb), 'f16').data, tol, `f16 mul [${shapes.a}] [${shapes.b}]`);
        assertClose(await div(a16, b16).toArray(), refCast(refDiv(ra, rb), 'f16').data, tol, `f16 div [${shapes.a}] [${shapes.b}]`);
        assertClose(await exp(a16).toArray(), refCast(refExp(ra), 'f16').data, tol, `f16 exp [${shapes.a}]`);
      }),
    ),
    { numRuns: 10 },
  );
});

/** Random projection weights for turning an output into a scalar loss sum(y * w). */
function projection(shape: readonly number[], seed: number): { w: Tensor; rw: RefTensor } {
  const values = seededValues(numel(shape), seed);
  return { w: tensor(values, shape), rw: refTensor(values, shape) };
}

test('binary op gradients match central finite differences with respect to each broadcast operand', async () => {
  const aShape = [2, 3];
  const bShape = [3];
  for (const c of binaryCases) {
    await scoped(async () => {
      const av = seededValues(6, 21);
      const bv = seededValues(3, 22).map(c.domainB ?? ((v) => v));
      const { w } = projection([2, 3], 23);
      const a = tensor(av, aShape).requireGrad();
      const b = tensor(bv, bShape).requireGrad();
      sum(mul(c.gpu(a, b), w)).backward();
      const fa = await finiteDifferences((x) => sum(mul(c.gpu(x, tensor(bv, bShape)), w)), av, aShape);
      const fb = await finiteDifferences((y) => sum(mul(c.gpu(tensor(av, aShape), y), w)), bv, bShape);
      const tol = { atol: 5e-3, rtol: 5e-3 };
      assertClose(await a.grad!.toArray(), fa, tol, `${c.name} d/da vs finite differences`);
      assertClose(await b.grad!.toArray(), fb, tol, `${c.name} d/db vs finite differences`);
    });
  }
});

test('binary op gradients match the reference on larger broadcast shapes', async () => {
  for (const c of binaryCases) {
    await fc.assert(
      fc.asyncProperty(broadcastArb, fc.nat(1 << 20), async (shapes, seed) =>
        scoped(async () => {
          const a = viewedInput(shapes.a, seed, 'contiguous');
          const b = viewedInput(shapes.b, seed + 1, 'contiguous', c.domainB);
          a.t.requireGrad();
          b.t.requireGrad();
          const y = c.gpu(a.t, b.t);
          const { w, rw } = projection(y.shape, seed + 2);
          sum(mul(y, w)).backward();
          const [ga, gb] = c.refBackward(a.ref, b.ref, rw);
          const tol = { atol: 1e-5, rtol: 1e-4 };
          assertClose(await a.t.grad!.toArray(), ga.data, tol, `${c.name} d/da [${shapes.a}] with [${shapes.b}]`);
          assertClose(await b.t.grad!.toArray(), gb.data, tol, `${c.name} d/db [${shapes.a}] with [${shapes.b}]`);
        }),
      ),
      { numRuns: 8 },
    );
  }
});

test('unary gradients match central finite differences and the reference', async () => {
  for (const c of unaryCases) {
    await scoped(async () => {
      const shape = [2, 4];
      const values = seededValues(8, 31).map(c.domain ?? awayFromZero);
      const { w } = projection(shape, 32);
      const x = tensor(values, shape).requireGrad();
      sum(mul(c.gpu(x), w)).backward();
      const fd = await finiteDifferences((v) => sum(mul(c.gpu(v), w)), values, shape, 1e-3);
      assertClose(await x.grad!.toArray(), fd, { atol: 1e-2, rtol: 1e-2 }, `${c.name} vs finite differences`);
      const big = [17, 65];
      const bv = seededValues(numel(big), 33).map(c.domain ?? awayFromZero);
      const xb = tensor(bv, big).requireGrad();
      const pb = projection(big, 34);
      sum(mul(c.gpu(xb), pb.w)).backward();
      const expected = c.refBackward(refTensor(bv, big), pb.rw);
      assertClose(await xb.grad!.toArray(), expected.data, { atol: 1e-5, rtol: 1e-4 }, `${c.name} gradient vs reference`);
    });
  }
});

test('where passes the gradient to the chosen branch only, summed over broadcast dimensions', async () => {
  await scoped(async () => {
    const mask = [1, 0, 1];
    const cond = tensor(Uint32Array.from(mask), [3]);
    const av = seededValues(6, 41);
    const bv = seededValues(3, 42);
    const a = tensor(av, [2, 3]).requireGrad();
    const b = tensor(bv, [1, 3]).requireGrad();
    const { w, rw } = projection([2, 3], 43);
    sum(mul(where(cond, a, b), w)).backward();
    const [ga, gb] = refWhereBackward(refTensor(mask, [3]), refTensor(av, [2, 3]), refTensor(bv, [1, 3]), rw);
    assertClose(await a.grad!.toArray(), ga.data, { atol: 1e-6, rtol: 1e-6 }, 'where d/da');
    assertClose(await b.grad!.toArray(), gb.data, { atol: 1e-6, rtol: 1e-6 }, 'where d/db');
    const fb = await finiteDifferences((y) => sum(mul(where(cond, tensor(av, [2, 3]), y), w)), bv, [1, 3]);
    assertClose(await b.grad!.toArray(), fb, { atol: 5e-3, rtol: 5e-3 }, 'where d/db vs finite differences');
  });
});

test('the gradient of a cast to f16 and back is the incoming gradient rounded to f16', async (t) => {
  if (!hasF16()) return t.skip('adapter lacks shader-f16');
  await scoped(async () => {
    const values = seededValues(12, 51);
    const x = tensor(values, [3, 4]).requireGrad();
    const { w, rw } = projection([3, 4], 52);
    sum(mul(cast(cast(x, 'f16'), 'f32'), w)).backward();
    assertClose(await x.grad!.toArray(), refCast(rw, 'f16').data, { atol: 0, rtol: 0 }, 'cast gradient');
  });
});
