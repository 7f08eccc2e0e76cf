// GradScaler as torch.amp.GradScaler: the scale's state machine on the CPU, the unscale kernel's
// inf/NaN flag and quotients against a host reference, a skipped step on overflow, stepAndRead's
// one readback of the flag with other values, and AdamW's and SGD's steps queued before that readback,
// skipping on the GPU (torch's fused AdamW with found_inf) with the host's state taken back.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { AdamW, GradScaler, nextScaleState, runtimeStats, SGD, slice, tensor, unscaleGradients, ValueError, type GradScalerState, type OptimizerStateDict, type ScaledOptimizer, type Tensor } from '@huatuo/tensor';
import { gpu, seededValues } from './helpers.js';
import { dispatchOrder } from './optim-order.js';

const TORCH = { growthFactor: 2, backoffFactor: 0.5, growthInterval: 3 };

test('the scale grows by 2 after growthInterval finite steps in a row and halves on every overflow, resetting the count', () => {
  // Traced by hand from torch's _amp_update_scale_ with growth_interval=3.
  const found = [false, false, false, false, true, false, true, true, false, false, false];
  const expected: GradScalerState[] = [
    { scale: 65536, growthTracker: 1 },
    { scale: 65536, growthTracker: 2 },
    { scale: 131072, growthTracker: 0 },
    { scale: 131072, growthTracker: 1 },
    { scale: 65536, growthTracker: 0 },
    { scale: 65536, growthTracker: 1 },
    { scale: 32768, growthTracker: 0 },
    { scale: 16384, growthTracker: 0 },
    { scale: 16384, growthTracker: 1 },
    { scale: 16384, growthTracker: 2 },
    { scale: 32768, growthTracker: 0 },
  ];
  let s: GradScalerState = { scale: 65536, growthTracker: 0 };
  found.forEach((inf, i) => {
    s = nextScaleState(s, inf, TORCH);
    assert.deepEqual(s, expected[i], `after step ${i + 1} (inf: ${inf})`);
  });
});

test('with torch defaults the scale doubles at the 2000th finite step and never grows past f32', () => {
  const scaler = new GradScaler();
  assert.equal(scaler.getScale(), 65536);
  assert.deepEqual(scaler.options, { initScale: 65536, growthFactor: 2, backoffFactor: 0.5, growthInterval: 2000, enabled: true });
  let s = scaler.stateDict();
  for (let i = 0; i < 1999; i++) s = nextScaleState(s, false, scaler.options);
  assert.deepEqual(s, { scale: 65536, growthTracker: 1999 });
  assert.deepEqual(nextScaleState(s, false, scaler.options), { scale: 131072, growthTracker: 0 });
  const top = { scale: 2 ** 127, growthTracker: 1999 };
  assert.deepEqual(nextScaleState(top, false, scaler.options), { scale: 2 ** 127, growthTracker: 0 });
});

test('state dicts round trip and bad values are refused by name', () => {
  const a = new GradScaler({ growthInterval: 5 });
  a.loadStateDict({ scale: 1024, growthTracker: 3 });
  assert.deepEqual(a.stateDict(), { scale: 1024, growthTracker: 3 });
  assert.throws(() => a.loadStateDict({ scale: Infinity, growthTracker: 0 }), ValueError);
  // A checkpoint's JSON may hold a list 100000 deep (JSON.parse reads it), which comparing or JSON.stringify overflowed the stack on.
  const deep = JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`) as number;
  assert.throws(() => a.loadStateDict({ scale: deep, growthTracker: 0 }), /^ValueError: GradScaler\.loadStateDict: expected a finite scale > 0 and an integer growthTracker >= 0, got scale an Array and growthTracker the number 0$/);
  assert.throws(() => a.loadStateDict({ scale: 1024, growthTracker: deep }), /got scale the number 1024 and growthTracker an Array$/);
  assert.throws(() => a.loadStateDict(null as never), /got null$/);
  assert.deepEqual(a.stateDict(), { scale: 1024, growthTracker: 3 }, 'a refused state dict changes nothing');
  assert.throws(() => new GradScaler({ backoffFactor: 1 }), /backoffFactor/);
  assert.throws(() => new GradScaler({ growthInterval: 0 }), /growthInterval/);
  assert.equal(new GradScaler({ enabled: false }).getScale(), 1);
});

/** Values in [-range, range) with inf, -inf and NaN at the given positions. */
function withSpecials(n: number, seed: number, specials: readonly number[]): Float32Array {
  const v = seededValues(n, seed, 1e4);
  specials.forEach((pos, k) => (v[pos % n] = [Infinity, -Infinity, NaN][k % 3]!));
  return v;
}

test('unscaleGradients flags inf or NaN in any gradient exactly when the host finds one, and divides every element by the scale', async () => {
  await gpu();
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.record({ n: fc.constantFrom(1, 7, 255, 256, 257, 4099), specials: fc.array(fc.nat(5000), { maxLength: 3 }), lead: fc.constantFrom(0, 3) }), { minLength: 1, maxLength: 4 }),
      fc.integer({ min: 1, max: 1 << 30 }),
      fc.constantFrom(2 ** -16, 2 ** -7, 1 / 3, 1),
      async (specs, seed, invScale) => {
        const hosts = specs.map((s, i) => withSpecials(s.n, seed + i, s.specials));
        // A gradient may start past its buffer's first element (a contiguous slice).
        const owners: Tensor[] = hosts.map((h, i) => tensor(Float32Array.from([...new Float32Array(specs[i]!.lead), ...h]), [specs[i]!.lead + h.length]));
        const grads = owners.map((o, i) => (specs[i]!.lead === 0 ? o : slice(o, 0, specs[i]!.lead, specs[i]!.lead + hosts[i]!.length)));
        const found = unscaleGradients(grads, invScale);
        const expectInf = hosts.some((h) => h.some((x) => !Number.isFinite(x)));
        const what = `seed=${seed} invScale=${invScale} sizes=${specs.map((s) => s.n).join(',')}`;
        assert.equal((await found.item()) !== 0, expectInf, `found flag, ${what}`);
        for (let k = 0; k < grads.length; k++) {
          const got = await grads[k]!.toArray();
          const h = hosts[k]!;
          for (let i = 0; i < h.length; i++) {
            const want = Math.fround(h[i]! * Math.fround(invScale));
            if (Number.isNaN(want)) assert.ok(Number.isNaN(got[i]!), `gradient ${k} index ${i}: NaN stays NaN, got ${got[i]}, ${what}`);
            else assert.equal(got[i], want, `gradient ${k} index ${i}: ${h[i]} x ${invScale}, ${what}`);
          }
        }
        found.dispose();
        for (const o of owners) o.dispose();
      },
    ),
    { numRuns: 25, seed: 20261204 },
  );
});

test('an f16 gradient that overflowed to inf is flagged', async () => {
  await gpu();
  const g = tensor(new Float32Array([1, 70000, 2]), [3], { dtype: 'f16' });
  const found = unscaleGradients([g], 0.5);
  assert.equal(await found.item(), 1);
  const got = await g.toArray();
  assert.deepEqual([got[0], got[2]], [0.5, 1]);
});

test('a step whose gradients hold inf is skipped, the parameters keep their values and the scale backs off; a finite step updates from the unscaled gradients', async () => {
  await gpu();
  const p = tensor(new Float32Array([1, -2, 3]), [3]).requireGrad();
  const opt = new AdamW([p], { lr: 0.1, weightDecay: 0 });
  const scaler = new GradScaler({ initScale: 1024, growthInterval: 2 });
  p.grad = tensor(new Float32Array([1, Infinity, 1]), [3]);
  scaler.unscale(opt);
  assert.equal(await scaler.step(opt), false);
  scaler.update();
  opt.zeroGrad();
  assert.deepEqual([...(await p.toArray())], [1, -2, 3]);
  assert.equal(scaler.getScale(), 512);
  // Gradients scaled by 512: the first AdamW step moves each parameter by lr against the sign.
  p.grad = tensor(new Float32Array([512, -1024, 5120]), [3]);
  assert.equal(await scaler.step(opt), true);
  assert.deepEqual([...(await p.grad.toArray())], [1, -2, 10]);
  scaler.update();
  opt.zeroGrad();
  const after = await p.toArray();
  [0.9, -1.9, 2.9].forEach((v, i) => assert.ok(Math.abs(after[i]! - v) < 1e-5, `parameter ${i}: ${after[i]} vs ${v}`));
  assert.deepEqual(scaler.stateDict(), { scale: 512, growthTracker: 1 });
  assert.throws(() => scaler.update(), /no inf\/NaN check/);
  opt.dispose();
  p.dispose();
});

test('one scaler serves two optimizers as in torch: each steps unless its own gradients overflowed, and update backs off if either did', async () => {
  await gpu();
  const a = tensor(new Float32Array([1, 2]), [2]).requireGrad();
  const b = tensor(new Float32Array([3]), [1]).requireGrad();
  const optA = new SGD([a], { lr: 1 });
  const optB = new SGD([b], { lr: 1 });
  const scaler = new GradScaler({ initScale: 4, growthInterval: 1 });
  a.grad = tensor(new Float32Array([4, 8]), [2]);
  b.grad = tensor(new Float32Array([Infinity]), [1]);
  scaler.unscale(optA);
  assert.throws(() => scaler.unscale(optA), /already called on this optimizer/);
  assert.equal(await scaler.step(optA), true);
  assert.equal(await scaler.step(optB), false);
  await assert.rejects(scaler.step(optB), /step: already called on this optimizer/);
  scaler.update();
  assert.deepEqual([...(await a.toArray())], [0, 0]);
  assert.deepEqual([...(await b.toArray())], [3]);
  assert.equal(scaler.getScale(), 2);
  // both finite: both step, and with growthInterval 1 the scale grows
  a.grad = tensor(new Float32Array([2, 2]), [2]);
  b.grad = tensor(new Float32Array([2]), [1]);
  assert.equal(await scaler.step(optA), true);
  scaler.unscale(optB);
  assert.throws(() => scaler.update(), /unscaled but not stepped/);
  assert.equal(await scaler.step(optB), true);
  scaler.update();
  assert.deepEqual([...(await b.toArray())], [2]);
  assert.equal(scaler.getScale(), 4);
  for (const o of [optA, optB]) o.dispose();
  for (const p of [a, b]) {
    p.grad?.dispose();
    p.dispose();
  }
});

test('stepAndRead reads the inf/NaN flag and the given values in one readback, as they were before the step, skipping and backing off as step() does', async () => {
  await gpu();
  const p = tensor(new Float32Array([5, 7]), [2]).requireGrad();
  const opt = new SGD([p], { lr: 1 });
  const scaler = new GradScaler({ initScale: 4, growthInterval: 1 });
  // 0.1 is not an f16 value: its f16 rounding comes back widened exactly, as item() gives it.
  const loss = tensor(new Float32Array([0.1]), [1], { dtype: 'f16' });
  const before = slice(p, 0, 0, 1);
  const expectedLoss = await loss.item();
  const readbacks = () => runtimeStats().readbacks;

  p.grad = tensor(new Float32Array([4, NaN]), [2]);
  let at = readbacks();
  assert.deepEqual(await scaler.stepAndRead(opt, [loss, before]), { stepped: false, values: [expectedLoss, 5] });
  assert.equal(readbacks() - at, 1, 'one readback for the flag and two values');
  await assert.rejects(scaler.stepAndRead(opt, [loss]), /step: already called on this optimizer/);
  scaler.update();
  assert.equal(scaler.getScale(), 2);

  p.grad = tensor(new Float32Array([4, 2]), [2]);
  at = readbacks();
  assert.deepEqual(await scaler.stepAndRead(opt, [loss, before]), { stepped: true, values: [expectedLoss, 5] });
  assert.equal(readbacks() - at, 1);
  scaler.update();
  assert.deepEqual([...(await p.toArray())], [3, 6]);
  assert.deepEqual(scaler.stateDict(), { scale: 4, growthTracker: 0 });

  // Disabled, the step is queued before the read, yet the values are still those before it.
  const plain = new GradScaler({ enabled: false });
  p.grad = tensor(new Float32Array([1, 1]), [2]);
  at = readbacks();
  assert.deepEqual(await plain.stepAndRead(opt, [before]), { stepped: true, values: [3] });
  assert.equal(readbacks() - at, 1);
  assert.deepEqual([...(await p.toArray())], [2, 5]);
  at = readbacks();
  assert.deepEqual(await plain.stepAndRead(opt, []), { stepped: true, values: [] });
  assert.equal(readbacks() - at, 0, 'nothing to read, nothing read');

  await assert.rejects(scaler.stepAndRead(opt, [p]), (e: Error) => e instanceof ValueError && /one-element f32 or f16 tensors, got f32 \[2\]/.test(e.message));
  const count = tensor(new Int32Array([3]), [1], { dtype: 'i32' });
  await assert.rejects(scaler.stepAndRead(opt, [count]), /got i32 \[1\]/);
  for (const t of [count, loss, before, opt, p.grad, p]) t.dispose();
});

test("GradScaler refuses options it does not have, such as torch's snake_case init_scale, instead of ignoring them", () => {
  assert.throws(() => new GradScaler({ init_scale: 1024 } as never), (e: Error) => e instanceof ValueError && e.message.includes('GradScaler: option init_scale is not supported; did you mean initScale?'));
  assert.throws(() => new GradScaler({ growth_interval: 10 } as never), /did you mean growthInterval\?/);
});

test("GradScaler queues AdamW's and SGD's steps before the one readback, skipped or taken, and steps an optimizer without stepUnlessFound after it", async () => {
  await gpu();
  const a = tensor(new Float32Array([1, -2, 3]), [3]).requireGrad();
  const b = tensor(new Float32Array([0.5, 4]), [2]).requireGrad();
  const c = tensor(new Float32Array([2]), [1]).requireGrad();
  const adamw = new AdamW([a, b], { lr: 0.1 });
  const sgd = new SGD([c], { lr: 0.5, momentum: 0.9 });
  const scaler = new GradScaler({ initScale: 8, growthInterval: 1 });
  const loss = tensor(new Float32Array([3.5]), [1]);
  const setGrads = (inf: boolean) => {
    a.grad = tensor(new Float32Array([8, inf ? Infinity : -8, 16]), [3]);
    b.grad = tensor(new Float32Array([4, 4]), [2]);
    c.grad = tensor(new Float32Array([inf ? NaN : 8]), [1]);
  };
  for (const inf of [true, false, true, false]) {
    setGrads(inf);
    const readbacks = runtimeStats().readbacks;
    const { result, order } = await dispatchOrder(['adamw', 'sgd'], async () => [await scaler.stepAndRead(adamw, [loss]), await scaler.stepAndRead(sgd, [])] as const);
    assert.deepEqual(result, [{ stepped: !inf, values: [3.5] }, { stepped: !inf, values: [] }], `inf ${inf}`);
    assert.deepEqual(order, ['adamw', 'adamw', 'read', 'sgd', 'read'], `each step's kernels precede its readback (inf ${inf})`);
    assert.equal(runtimeStats().readbacks - readbacks, 2, 'one readback per optimizer');
    scaler.update();
    for (const p of [a, b, c]) p.grad?.dispose();
  }

  // An optimizer that offers no step skipping on the GPU (as a user's own) steps after the read, when the flag is clear.
  const plain: ScaledOptimizer = { paramGroups: adamw.paramGroups, step: () => adamw.step() };
  for (const inf of [true, false]) {
    setGrads(inf);
    const { result, order } = await dispatchOrder(['adamw'], () => scaler.stepAndRead(plain, [loss]));
    assert.deepEqual(result, { stepped: !inf, values: [3.5] });
    assert.deepEqual(order, inf ? ['read'] : ['read', 'adamw', 'adamw'], `read, then step (inf ${inf})`);
    scaler.update();
    for (const p of [a, b, c]) p.grad?.dispose();
  }
  // Nor does a subclass that adds to step() without overriding stepUnlessFound(): its step() is what the scaler calls.
  class CountingAdamW extends AdamW {
    calls = 0;
    override step(): void {
      this.calls++;
      super.step();
    }
  }
  const counting = new CountingAdamW([a, b], { lr: 0.1 });
  for (const inf of [true, false]) {
    setGrads(inf);
    const { order } = await dispatchOrder(['adamw'], () => scaler.step(counting));
    assert.deepEqual(order, inf ? ['read'] : ['read', 'adamw', 'adamw']);
    scaler.update();
    for (const p of [a, b, c]) p.grad?.dispose();
  }
  assert.equal(counting.calls, 1, 'its step() ran once, for the finite step');
  for (const t of [adamw, counting, sgd, loss, a, b, c]) t.dispose();
});

/** A one-element u32 flag at offset 1 of its buffer, so that the kernels are seen to read it where it lies. */
function flagAt1(found: boolean): { flag: Tensor; owner: Tensor } {
  const owner = tensor(new Uint32Array([found ? 0 : 1, found ? 1 : 0]), [2], { dtype: 'u32' });
  return { flag: slice(owner, 0, 1, 2), owner };
}

/**
 * Steps `flagged` by stepUnlessFound through `found`, a flag per step, and `twin` by step() on the steps whose
 * flag is clear, with the same gradients; after each step both have the same parameters and state dicts, bit for bit.
 */
async function stepsMatchTwin(make: (params: Tensor[]) => AdamW | SGD, found: readonly boolean[], what: string): Promise<OptimizerStateDict[]> {
  const init = [seededValues(5, 11), seededValues(300, 12), seededValues(2, 13)];
  const [mine, theirs] = [0, 1].map(() => init.map((v) => tensor(v, [v.length]).requireGrad()));
  const flagged = make(mine!);
  const twin = make(theirs!);
  const dicts: OptimizerStateDict[] = [];
  for (const [step, inf] of found.entries()) {
    // The last parameter never has a gradient: both leave it without state.
    for (const params of [mine!, theirs!]) params.slice(0, 2).forEach((p, i) => (p.grad = tensor(seededValues(p.size, 100 * step + i, 2), p.shape)));
    const { flag, owner } = flagAt1(inf);
    const { result: queued, order } = await dispatchOrder(['adamw', 'sgd'], async () => flagged.stepUnlessFound(flag));
    assert.equal(order.length, 2, `${what}, step ${step}: both gradients' kernels are queued, flag set or not`);
    queued.settle(inf);
    assert.throws(() => queued.settle(inf), /already settled/);
    if (!inf) twin.step();
    for (const o of [flagged, twin]) o.zeroGrad();
    const where = `${what}, step ${step} (flag ${inf ? 'set' : 'clear'})`;
    for (const [i, p] of mine!.entries()) assert.deepEqual(await p.toArray(), await theirs![i]!.toArray(), `${where}: parameter ${i}`);
    const dict = await flagged.stateDict();
    assert.deepEqual(dict, await twin.stateDict(), `${where}: the state dict`);
    dicts.push(dict);
    owner.dispose();
  }
  for (const t of [flagged, twin, ...mine!, ...theirs!]) t.dispose();
  return dicts;
}

test("a step skipped on the GPU leaves AdamW's parameters, moments and step counts as they were, first step or later: the state dict is that of an optimizer never stepped then", async () => {
  await gpu();
  const found = [true, false, false, true, true, false];
  const dicts = await stepsMatchTwin((params) => new AdamW(params, { lr: 0.01, weightDecay: 0.1 }), found, 'AdamW');
  // The skipped first step leaves no state, the later ones the count of the steps taken.
  assert.deepEqual(
    dicts.map((d) => d.state.map((s) => s?.step ?? null)),
    [[null, null, null], [1, 1, null], [2, 2, null], [2, 2, null], [2, 2, null], [3, 3, null]],
  );
  const p = tensor(new Float32Array([1]), [1]);
  const opt = new AdamW([p]);
  assert.throws(() => opt.stepUnlessFound(p), (e: Error) => e instanceof ValueError && /AdamW.stepUnlessFound: found must be a one-element u32 flag .* got f32 \[1\]/.test(e.message));
  for (const t of [opt, p]) t.dispose();
});

test("a step skipped on the GPU leaves SGD's parameters and momentum buffers as they were: a skipped first step creates no buffer", async () => {
  await gpu();
  const found = [true, false, true, false];
  const dicts = await stepsMatchTwin((params) => new SGD(params, { lr: 0.1, momentum: 0.9, dampening: 0.1, weightDecay: 0.01 }), found, 'SGD');
  assert.deepEqual(
    dicts.map((d) => d.state.map((s) => (s ? [s.step, Object.keys(s.buffers)] : null))),
    [[null, null, null], [[1, ['momentumBuffer']], [1, ['momentumBuffer']], null], [[1, ['momentumBuffer']], [1, ['momentumBuffer']], null], [[2, ['momentumBuffer']], [2, ['momentumBuffer']], null]],
  );
  await stepsMatchTwin((params) => new SGD(params, { lr: 0.1 }), [true, false, true], 'SGD without momentum');
});
