// Optimizers against their float64 references: AdamW and SGD over 20 steps, clipGradNorm, the
// transformers learning-rate schedules, and state dict round trips.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  AdamW, SGD, clipGradNorm, LambdaLR, linearWarmupDecay, cosineWarmupDecay, constantWarmup, cosineHardRestartsWarmupDecay, polynomialWarmupDecay, roundedCos, linearScheduleWithWarmup, cosineScheduleWithWarmup,
  refAdamWState, refAdamWStep, refSgdStep, refClipGradNorm, runtimeStats, tensor, DTypeError, ShapeError, ValueError,
  type Tensor, type RefSgdState,
} from '@huatuo/tensor';
import { assertClose, gpu, seededValues } from './helpers.js';

const SIZES = [1, 17, 257, 4099] as const;
const STEPS = 20;

function setGrad(p: Tensor, values: Float32Array): void {
  p.grad?.dispose();
  p.grad = tensor(values, p.shape);
}

test('AdamW on the GPU equals the float64 reference over 20 steps for sizes 1, 17, 257, 4099 and random hyperparameters', async () => {
  await gpu();
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...SIZES),
      fc.integer({ min: 1, max: 1 << 30 }),
      fc.double({ min: 1e-4, max: 0.1, noNaN: true }),
      fc.double({ min: 0.5, max: 0.95, noNaN: true }),
      fc.double({ min: 0.9, max: 0.9999, noNaN: true }),
      fc.constantFrom(1e-8, 1e-6, 1e-3),
      fc.constantFrom(0, 0.01, 0.1),
      async (n, seed, lr, beta1, beta2, eps, weightDecay) => {
        const init = seededValues(n, seed);
        const p = tensor(init, [n]);
        const opt = new AdamW([p], { lr, betas: [beta1, beta2], eps, weightDecay });
        const ref = Float64Array.from(init);
        const state = refAdamWState(n);
        for (let t = 0; t < STEPS; t++) {
          const g = seededValues(n, seed + 7919 * (t + 1), 2);
          setGrad(p, g);
          opt.step();
          opt.zeroGrad();
          refAdamWStep(ref, g, state, { lr, beta1, beta2, eps, weightDecay });
        }
        const what = `n=${n} seed=${seed} lr=${lr} betas=[${beta1}, ${beta2}] eps=${eps} wd=${weightDecay}`;
        const sd = await opt.stateDict();
        assert.equal(sd.state[0]!.step, STEPS);
        assertClose(sd.state[0]!.buffers.expAvg!, state.m, { atol: 1e-6, rtol: 1e-5 }, `exp_avg, ${what}`);
        assertClose(sd.state[0]!.buffers.expAvgSq!, state.v, { atol: 1e-7, rtol: 1e-5 }, `exp_avg_sq, ${what}`);
        assertClose(await p.toArray(), ref, { atol: 2e-6, rtol: 1e-5 }, `param, ${what}`);
        opt.dispose();
        p.dispose();
      },
    ),
    { numRuns: 12, seed: 20240601 },
  );
});

test("AdamW's defaults are torch's: lr 1e-3, betas [0.9, 0.999], eps 1e-8, weight decay 0.01", async () => {
  await gpu();
  const p = tensor([1, 2], [2]);
  const opt = new AdamW([p]);
  assert.deepEqual(opt.paramGroups[0]!.options, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 });
  p.dispose();
});

test('AdamW leaves a parameter without a gradient untouched and updates each param group with its own hyperparameters', async () => {
  await gpu();
  const a = tensor([0.5, -1, 2], [3]);
  const b = tensor([1, 1], [2]);
  const c = tensor([3], [1]);
  const opt = new AdamW([{ params: [a] }, { params: [b, c], lr: 0.1, weightDecay: 0 }], { lr: 0.01 });
  const ga = Float32Array.from([0.1, -0.2, 0.3]);
  const gb = Float32Array.from([1, -1]);
  setGrad(a, ga);
  setGrad(b, gb);
  opt.step();
  const refA = Float64Array.from([0.5, -1, 2]);
  const refB = Float64Array.from([1, 1]);
  refAdamWStep(refA, ga, refAdamWState(3), { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 });
  refAdamWStep(refB, gb, refAdamWState(2), { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
  assertClose(await a.toArray(), refA, { atol: 1e-6, rtol: 1e-6 }, 'group 0');
  assertClose(await b.toArray(), refB, { atol: 1e-6, rtol: 1e-6 }, 'group 1');
  assert.deepEqual([...(await c.toArray())], [3]);
  const sd = await opt.stateDict();
  assert.equal(sd.state[2], null);
  opt.zeroGrad();
  assert.equal(a.grad, null);
  for (const t of [a, b, c]) t.dispose();
  opt.dispose();
});

test('SGD on the GPU equals the float64 reference over 20 steps with and without momentum, dampening, Nesterov and weight decay', async () => {
  await gpu();
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...SIZES),
      fc.integer({ min: 1, max: 1 << 30 }),
      fc.double({ min: 1e-3, max: 0.2, noNaN: true }),
      fc.constantFrom(0, 0.5, 0.9),
      fc.constantFrom(0, 0.1),
      fc.constantFrom(0, 0.01),
      fc.boolean(),
      async (n, seed, lr, momentum, dampening0, weightDecay, nesterov0) => {
        const nesterov = nesterov0 && momentum > 0;
        const dampening = nesterov ? 0 : dampening0;
        const o = { lr, momentum, dampening, weightDecay, nesterov };
        const init = seededValues(n, seed);
        const p = tensor(init, [n]);
        const opt = new SGD([p], o);
        const ref = Float64Array.from(init);
        const state: RefSgdState = { step: 0, buf: null };
        for (let t = 0; t < STEPS; t++) {
          const g = seededValues(n, seed + 104729 * (t + 1));
          setGrad(p, g);
          opt.step();
          refSgdStep(ref, g, state, o);
        }
        opt.zeroGrad();
        const what = `n=${n} seed=${seed} ${JSON.stringify(o)}`;
        assertClose(await p.toArray(), ref, { atol: 2e-6, rtol: 1e-5 }, `param, ${what}`);
        if (momentum > 0) {
          const sd = await opt.stateDict();
          assertClose(sd.state[0]!.buffers.momentumBuffer!, state.buf!, { atol: 1e-6, rtol: 1e-5 }, `momentum buffer, ${what}`);
        }
        opt.dispose();
        p.dispose();
      },
    ),
    { numRuns: 12, seed: 20240602 },
  );
});

interface TorchTrajectory {
  name: string;
  optimizer: 'AdamW' | 'SGD';
  options: Record<string, number | boolean | number[]>;
  init: number[];
  grads: number[][];
  after: number[][];
}
const torchOptim = JSON.parse(readFileSync(new URL('../fixtures/tensor/optim.json', import.meta.url), 'utf8')) as { cases: TorchTrajectory[] };

test('AdamW and SGD follow torch.optim step for step (test/fixtures/tensor/optim.json)', async () => {
  await gpu();
  for (const c of torchOptim.cases) {
    const p = tensor(c.init, [c.init.length]);
    const opt = c.optimizer === 'AdamW' ? new AdamW([p], c.options) : new SGD([p], c.options);
    for (const [t, g] of c.grads.entries()) {
      setGrad(p, Float32Array.from(g));
      opt.step();
      assertClose(await p.toArray(), c.after[t]!, { atol: 1e-6, rtol: 1e-5 }, `${c.name}, step ${t + 1}`);
    }
    opt.dispose();
    p.grad?.dispose();
    p.dispose();
  }
});

test("options torch has and these optimizers lack, or torch's snake_case spellings, are refused instead of ignored", async () => {
  await gpu();
  const p = tensor([1, 2], [2]);
  const refused = (make: () => unknown, message: string) =>
    assert.throws(make, (e: Error) => e instanceof ValueError && e.message.includes(message), message);
  refused(() => new AdamW([p], { weight_decay: 0.1 } as never), 'AdamW: option weight_decay is not supported; did you mean weightDecay?');
  refused(() => new AdamW([p], { amsgrad: true } as never), 'AdamW: option amsgrad is not supported; the options are lr, betas, eps, weightDecay');
  refused(() => new AdamW([{ params: [p], maximize: true } as never]), 'AdamW: group 0: option maximize is not supported');
  refused(() => new SGD([p], { lr: 0.1, maximize: true } as never), 'SGD: option maximize is not supported');
  refused(() => new SGD([{ params: [p], weight_decay: 0.1 } as never], { lr: 0.1 }), 'SGD: group 0: option weight_decay is not supported; did you mean weightDecay?');
  p.dispose();
});

test('clipGradNorm returns the global L2 norm and scales every gradient like the reference, without reading back', async () => {
  await gpu();
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.constantFrom(...SIZES), { minLength: 1, maxLength: 4 }),
      fc.integer({ min: 1, max: 1 << 30 }),
      fc.constantFrom(0.1, 1, 10, 1000),
      async (sizes, seed, maxNorm) => {
        const params = sizes.map((n, i) => tensor(seededValues(n, seed + i), [n]));
        const grads = sizes.map((n, i) => seededValues(n, seed + 31 * (i + 1)));
        params.forEach((p, i) => setGrad(p, grads[i]!));
        const noGradParam = tensor([5], [1]);
        const before = runtimeStats().readbacks;
        const norm = clipGradNorm([...params, noGradParam], maxNorm);
        assert.equal(runtimeStats().readbacks, before, 'clipGradNorm read back');
        assert.deepEqual(norm.shape, []);
        const ref = grads.map((g) => Float64Array.from(g));
        const total = refClipGradNorm(ref, maxNorm);
        const what = `sizes=[${sizes}] seed=${seed} maxNorm=${maxNorm}`;
        assertClose([await norm.item()], [total], { atol: 0, rtol: 1e-5 }, `norm, ${what}`);
        for (let i = 0; i < params.length; i++) {
          assertClose(await params[i]!.grad!.toArray(), ref[i]!, { atol: 1e-7, rtol: 1e-5 }, `grad ${i}, ${what}`);
        }
        for (const t of [...params, noGradParam, norm]) t.dispose();
      },
    ),
    { numRuns: 10, seed: 20240603 },
  );
});

test("clipGradNorm takes one tensor as torch does, and non-finite norms scale as torch's error_if_nonfinite=False", async () => {
  await gpu();
  const p = tensor([3, 4], [2]);
  const q = tensor([1, 2], [2]);
  setGrad(p, Float32Array.from([3, 4]));
  assert.equal(await clipGradNorm(p, 1).item(), 5);
  assertClose(await p.grad!.toArray(), [0.6, 0.8], { atol: 1e-6, rtol: 1e-5 }, 'one tensor clipped');
  // torch: total norm inf, coefficient 1 / (inf + 1e-6) = 0, so inf * 0 = NaN and finite entries 0
  setGrad(p, Float32Array.from([Infinity, 1]));
  setGrad(q, Float32Array.from([2, -3]));
  assert.equal(await clipGradNorm([p, q], 1).item(), Infinity);
  assert.ok(Number.isNaN((await p.grad!.toArray())[0]!));
  assert.deepEqual(Array.from(await q.grad!.toArray()).map(Math.abs), [0, 0]);
  setGrad(p, Float32Array.from([NaN, 1]));
  setGrad(q, Float32Array.from([2, -3]));
  assert.ok(Number.isNaN(await clipGradNorm([p, q], 1).item()));
  assert.ok(Array.from(await q.grad!.toArray()).every(Number.isNaN), 'a NaN norm makes every gradient NaN');
  assert.throws(() => clipGradNorm('w' as never, 1), (e: Error) => e instanceof ValueError && /clipGradNorm: params must be a Tensor or an array/.test(e.message));
  for (const t of [p, q]) {
    t.grad?.dispose();
    t.dispose();
  }
});

test('clipGradNorm of parameters without gradients returns a zero norm', async () => {
  await gpu();
  const p = tensor([1, 2], [2]);
  const norm = clipGradNorm([p], 1);
  assert.equal(await norm.item(), 0);
  norm.dispose();
  p.dispose();
});

test("the linear schedule equals transformers' get_linear_schedule_with_warmup at hand-computed steps", () => {
  const f = linearWarmupDecay(10, 100);
  // step/10 during warm-up, then (100 - step) / 90.
  const expected: [number, number][] = [[0, 0], [1, 0.1], [5, 0.5], [9, 0.9], [10, 1], [19, 81 / 90], [55, 0.5], [99, 1 / 90], [100, 0], [130, 0]];
  for (const [step, v] of expected) assertClose([f(step)], [v], { atol: 1e-15, rtol: 1e-12 }, `linear(10, 100) at step ${step}`);
  // No warm-up: max(1, 0) keeps the division finite and the first step at full rate.
  assert.equal(linearWarmupDecay(0, 4)(0), 1);
  assert.equal(linearWarmupDecay(0, 4)(3), 0.25);
});

test("the cosine schedule equals transformers' get_cosine_schedule_with_warmup at hand-computed steps", () => {
  const f = cosineWarmupDecay(10, 110);
  // progress = (step - 10) / 100; factor = 0.5 (1 + cos(π progress)).
  const expected: [number, number][] = [
    [0, 0], [4, 0.4], [10, 1], [35, 0.5 * (1 + Math.SQRT1_2)], [60, 0.5], [85, 0.5 * (1 - Math.SQRT1_2)], [110, 0],
    // Past the end transformers does not clamp the progress: cos(1.4π) = -(√5 - 1) / 4.
    [150, 0.5 * (1 - (Math.sqrt(5) - 1) / 4)],
  ];
  for (const [step, v] of expected) assertClose([f(step)], [v], { atol: 1e-15, rtol: 1e-12 }, `cosine(10, 110) at step ${step}`);
  // One full cycle (numCycles 1): down to 0 at the midpoint, back to 1 at the end.
  assertClose([cosineWarmupDecay(0, 100, 1)(50)], [0], { atol: 1e-15, rtol: 0 }, 'cosine with one full cycle at the midpoint');
  assertClose([cosineWarmupDecay(0, 100, 1)(100)], [1], { atol: 1e-15, rtol: 0 }, 'cosine with one full cycle at the end');
});

test('roundedCos is the cosine rounded to the nearest double (mpmath at 200 bits), also where Math.cos is a last bit off', () => {
  const nearest: [number, number][] = [
    [5.101380514788434, 0.37925548298839346], [10.105676411592007, -0.7770074653835156], [7.494060410032805, 0.35220050591935237],
    [16.83489664548192, -0.4294312881326885], [1.5707963267948966, 6.123233995736766e-17], [3.141592653589793, -1], [-2.5, -0.8011436155469337], [1e-9, 1],
  ];
  for (const [x, c] of nearest) assert.equal(roundedCos(x), c, `cos(${x})`);
  assert.ok(nearest.slice(0, 4).every(([x, c]) => Math.cos(x) !== c), 'the first four are where Math.cos rounds the other way');
  fc.assert(fc.property(fc.double({ min: -1e4, max: 1e4, noNaN: true }), (x) => Math.abs(roundedCos(x) - Math.cos(x)) <= 2 ** -52));
  assert.throws(() => roundedCos(Infinity), RangeError);
});

test("the restarting cosine, constant and polynomial schedules equal transformers' at hand-computed steps", () => {
  // Two cycles over 100 steps after 10 of warm-up: each decays from 1 to 0 over 50 steps, then restarts.
  const restarts = cosineHardRestartsWarmupDecay(10, 110, 2);
  assert.deepEqual([0, 5, 10, 35, 59, 60, 85, 110, 120].map(restarts), [0, 0.5, 1, 0.5, restarts(59), 1, 0.5, 0, 0]);
  assert.ok(restarts(59) < 1e-3);
  assert.deepEqual([0, 2, 4, 5, 1000].map(constantWarmup(4)), [0, 0.5, 1, 1, 1]);
  assert.deepEqual([0, 1, 1000].map(constantWarmup(0)), [1, 1, 1]);
  // (lr - lr_end) remaining + lr_end over lr, and lr_end / lr after the end.
  const poly = polynomialWarmupDecay(10, 110, 1e-3, 1e-4);
  assert.deepEqual([5, 10, 60, 110, 111].map(poly), [0.5, 1, (9e-4 * 0.5 + 1e-4) / 1e-3, 1e-4 / 1e-3, 1e-4 / 1e-3]);
  assert.throws(() => polynomialWarmupDecay(0, 10, 1e-7), /lrEnd \(1e-7\) must be smaller/);
  assert.throws(() => polynomialWarmupDecay(0, 10, 1e-3, 0, -1), /power must be a finite number >= 0/);
});

test("the polynomial schedule at any power gives transformers' rates to the last bit (the Trainer's rates, base_lr * lr_lambda, from test/fixtures/sft/lr-schedule.json)", () => {
  interface Case { lrSchedulerType: string; totalSteps: number; warmupSteps: number; peak: number; lrSchedulerKwargs: { power?: number; lr_end?: number }; lrs: number[]; roundedLibmLrs: Record<string, number> }
  const { cases } = JSON.parse(readFileSync(new URL('../fixtures/sft/lr-schedule.json', import.meta.url), 'utf8')) as { cases: Case[] };
  const polynomial = cases.filter((c) => c.lrSchedulerType === 'polynomial');
  assert.ok(polynomial.some((c) => (c.lrSchedulerKwargs.power ?? 1) !== 1 && Math.round(c.lrSchedulerKwargs.power ?? 1) !== c.lrSchedulerKwargs.power), 'a power that is not a whole number');
  for (const c of polynomial) {
    const { power = 1, lr_end: lrEnd = 1e-7 } = c.lrSchedulerKwargs;
    const lambda = polynomialWarmupDecay(c.warmupSteps, c.totalSteps, c.peak, lrEnd, power);
    // Where glibc's pow is not the nearest double, the rate is the correctly rounded one's.
    const first = c.lrs.findIndex((lr, step) => c.peak * lambda(step) !== (c.roundedLibmLrs[step] ?? lr));
    assert.equal(first, -1, `power ${power}, lr_end ${lrEnd} over ${c.totalSteps} steps: step ${first}`);
  }
});

test('a scheduler sets the optimizer learning rate each step without compiling a new pipeline', async () => {
  await gpu();
  const p = tensor(seededValues(17, 3), [17]);
  const opt = new AdamW([p], { lr: 0.2 });
  const sched = new LambdaLR(opt, linearWarmupDecay(4, 20));
  assert.equal(opt.getLr(), 0);
  const ref = Float64Array.from(seededValues(17, 3));
  const state = refAdamWState(17);
  let pipelines = -1;
  for (let t = 0; t < 8; t++) {
    const lr = 0.2 * linearWarmupDecay(4, 20)(t);
    assertClose(sched.getLastLr(), [lr], { atol: 1e-15, rtol: 1e-12 }, `lr at step ${t}`);
    const g = seededValues(17, 100 + t);
    setGrad(p, g);
    opt.step();
    if (t === 0) pipelines = runtimeStats().pipelines;
    sched.step();
    refAdamWStep(ref, g, state, { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 });
  }
  assert.equal(runtimeStats().pipelines, pipelines, 'a learning-rate change compiled a pipeline');
  assertClose(await p.toArray(), ref, { atol: 2e-6, rtol: 1e-5 }, 'param after 8 scheduled steps');
  const lin = linearScheduleWithWarmup(opt, 2, 10);
  assert.equal(opt.getLr(), 0);
  lin.step();
  assertClose([opt.getLr()], [lin.baseLrs[0]! * 0.5], { atol: 0, rtol: 1e-12 }, 'linear factory after one step');
  const base = opt.getLr();
  const cos = cosineScheduleWithWarmup(opt, 4, 10);
  assert.equal(opt.getLr(), 0);
  cos.step();
  assertClose([opt.getLr()], [base * 0.25], { atol: 0, rtol: 1e-12 }, 'cosine factory after one warm-up step');
  opt.zeroGrad();
  opt.dispose();
  p.dispose();
});

test('an AdamW state dict round-trips exactly, and a restored optimizer continues bit for bit', async () => {
  await gpu();
  const shapes = [[17], [3, 5], [1]] as const;
  const inits = shapes.map((s, i) => seededValues((s as readonly number[]).reduce((a, b) => a * b, 1), 40 + i));
  const a = inits.map((v, i) => tensor(v, shapes[i]!));
  const optA = new AdamW([{ params: [a[0]!, a[1]!] }, { params: [a[2]!], lr: 0.05 }], { lr: 0.01 });
  const gradsAt = (t: number, i: number) => seededValues(inits[i]!.length, 1000 * t + i, 3);
  for (let t = 0; t < 5; t++) {
    a.forEach((p, i) => (i === 2 && t < 2 ? undefined : setGrad(p, gradsAt(t, i))));
    optA.step();
    optA.zeroGrad();
  }
  const sd = await optA.stateDict();
  assert.deepEqual(sd.state.map((s) => s?.step), [5, 5, 3]);
  const b = await Promise.all(a.map(async (p) => tensor(await p.toArray(), p.shape)));
  const optB = new AdamW([{ params: [b[0]!, b[1]!] }, { params: [b[2]!] }]);
  optB.loadStateDict(sd);
  assert.deepEqual(await optB.stateDict(), sd);
  assert.equal(optB.paramGroups[1]!.options.lr, 0.05);
  for (let t = 5; t < 10; t++) {
    for (const [params, opt] of [[a, optA], [b, optB]] as const) {
      params.forEach((p, i) => setGrad(p, gradsAt(t, i)));
      opt.step();
      opt.zeroGrad();
    }
  }
  for (let i = 0; i < a.length; i++) assert.deepEqual(await b[i]!.toArray(), await a[i]!.toArray(), `parameter ${i}`);
  assert.deepEqual(await optB.stateDict(), await optA.stateDict());
  assert.throws(
    () => optB.loadStateDict({ ...sd, state: [{ step: 1, buffers: { expAvg: new Float32Array(3), expAvgSq: new Float32Array(3) } }, sd.state[1]!, sd.state[2]!] }),
    ShapeError,
  );
  assert.deepEqual(await optB.stateDict(), await optA.stateDict(), 'a failed load changed the state');
  for (const t of [...a, ...b]) t.dispose();
  optA.dispose();
  optB.dispose();
});

test('an SGD momentum state dict round-trips exactly and the restored optimizer continues bit for bit', async () => {
  await gpu();
  const init = seededValues(257, 9);
  const a = tensor(init, [257]);
  const optA = new SGD([a], { lr: 0.05, momentum: 0.9, nesterov: true });
  for (let t = 0; t < 3; t++) {
    setGrad(a, seededValues(257, 50 + t));
    optA.step();
  }
  const sd = await optA.stateDict();
  const b = tensor(await a.toArray(), [257]);
  const optB = new SGD([b], { lr: 1 });
  optB.loadStateDict(sd);
  assert.deepEqual(await optB.stateDict(), sd);
  for (const [p, opt] of [[a, optA], [b, optB]] as const) {
    setGrad(p, seededValues(257, 99));
    opt.step();
    opt.zeroGrad();
  }
  assert.deepEqual(await b.toArray(), await a.toArray());
  for (const t of [a, b]) t.dispose();
  optA.dispose();
  optB.dispose();
});

test('optimizers reject non-f32 parameters, duplicates and out-of-range hyperparameters with errors that name them', async () => {
  await gpu();
  const ids = tensor(new Int32Array([1, 2]));
  const p = tensor([1, 2], [2]);
  assert.throws(() => new AdamW([ids]), (e: Error) => e instanceof DTypeError && /i32.*f32/.test(e.message));
  assert.throws(() => new SGD([p, p]), (e: Error) => e instanceof ValueError && /twice/.test(e.message));
  assert.throws(() => new AdamW([p], { betas: [0.9, 1] }), (e: Error) => e instanceof ValueError && /betas/.test(e.message));
  assert.throws(() => new SGD([p], { nesterov: true }), (e: Error) => e instanceof ValueError && /nesterov/.test(e.message));
  assert.throws(() => new AdamW([p]).setLr(-1), ValueError);
  assert.throws(() => clipGradNorm([p], -1), ValueError);
  ids.dispose();
  p.dispose();
});
