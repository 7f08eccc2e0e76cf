// Memory discipline of a training loop: forward, backward and an AdamW step inside tidy() must
// reuse the same pooled buffers every iteration, compile nothing after the first step, and
// never read back.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AdamW, mean, relu, runtimeStats, silu, synchronize, tensor, tidy, type RuntimeStats } from '@huatuo/tensor';
import { gpu, seededValues } from './helpers.js';

const [B, I, H, O] = [16, 8, 32, 4];
const ITERATIONS = 200;

test('200 training iterations inside tidy() keep buffers, bytes, created buffers and pipelines flat and never read back', async () => {
  await gpu();
  const x = tensor(seededValues(B * I, 1), [B, I]);
  const y = tensor(seededValues(B * O, 2), [B, O]);
  const w1 = tensor(seededValues(I * H, 3, 0.5), [I, H], { requiresGrad: true });
  const b1 = tensor(seededValues(H, 4, 0.1), [H], { requiresGrad: true });
  const w2 = tensor(seededValues(H * O, 5, 0.5), [H, O], { requiresGrad: true });
  const b2 = tensor(seededValues(O, 6, 0.1), [O], { requiresGrad: true });
  const opt = new AdamW([w1, b1, w2, b2], { lr: 1e-2 });
  // relu and silu of the same pre-activation: a tensor used twice, so backward sums two gradients.
  const forward = () => {
    const a = x.matmul(w1).add(b1); // [B, H]
    const h = relu(a).add(silu(a));
    const d = h.matmul(w2).add(b2).sub(y); // [B, O]
    return mean(d.mul(d));
  };
  const readbacksBefore = runtimeStats().readbacks;
  const initialLoss = tidy(() => forward());
  const stats: RuntimeStats[] = [];
  for (let i = 1; i <= ITERATIONS; i++) {
    tidy(() => {
      forward().backward();
      opt.step();
      opt.zeroGrad();
    });
    stats[i] = runtimeStats();
  }
  const after = runtimeStats();
  assert.equal(after.readbacks, readbacksBefore, 'the training loop read back from the GPU');
  const at10 = stats[10]!;
  const at200 = stats[ITERATIONS]!;
  for (const key of ['buffersInUse', 'bytesInUse', 'buffersCreated'] as const) {
    assert.equal(at200[key], at10[key], `${key} grew from ${at10[key]} at iteration 10 to ${at200[key]} at iteration ${ITERATIONS}`);
  }
  assert.equal(at200.pipelines, stats[1]!.pipelines, 'pipelines were compiled after the first step');
  // Parameters, data, the AdamW moments, the zero flag its kernel reads in place of a loss scaler's and the
  // initial loss are all that stays alive.
  const tensorsAlive = 6 + 2 * 4 + 1 + 1;
  assert.equal(at200.buffersInUse, tensorsAlive, `buffers in use: ${at200.buffersInUse}, expected ${tensorsAlive}`);
  const finalLoss = tidy(() => forward());
  const [l0, l1] = [await initialLoss.item(), await finalLoss.item()];
  assert.ok(l1 < l0 * 0.5, `training did not reduce the loss: ${l0} -> ${l1}`);
  assert.equal(runtimeStats().readbacks, readbacksBefore + 2);
  for (const t of [x, y, w1, b1, w2, b2, initialLoss, finalLoss]) t.dispose();
  opt.dispose();
});

test('a step repeated with other uniform values, a submit each (as decoding reads a token back each step), creates no uniform buffer and no bind group', async () => {
  await gpu();
  const x = tensor(seededValues(64, 7), [64]);
  const step = async (i: number) => {
    tidy(() => void x.mul(i + 2).add(x));
    await synchronize();
  };
  // Two steps first: the pool may hand the two outputs their buffers in either order.
  await step(0);
  await step(1);
  const before = runtimeStats();
  for (let i = 2; i < 21; i++) await step(i);
  const after = runtimeStats();
  assert.equal(after.dispatches - before.dispatches, 19 * 2);
  assert.equal(after.uniformBuffers, before.uniformBuffers, 'uniform buffers created');
  assert.equal(after.bindGroups, before.bindGroups, 'bind groups created');
  assert.equal(after.buffersCreated, before.buffersCreated, 'storage buffers created');
  x.dispose();
});

test('one kernel on the same buffers dispatched again before a submit with other uniform values reads its own values', async () => {
  await gpu();
  const values = seededValues(64, 9);
  const x = tensor(values, [64]);
  // Each y takes the buffer the previous y released: the same kernel and buffers, another scalar, no submit between.
  const outs = [0, 1, 2, 3, 4].map((i) => {
    const y = x.mul(i + 2);
    const out = y.add(x);
    y.dispose();
    return out;
  });
  for (const [i, out] of outs.entries()) {
    const got = await out.toArray();
    assert.deepEqual([...got], [...Float32Array.from(values, (v) => Math.fround(Math.fround(v * (i + 2)) + v))], `scalar ${i + 2}`);
    out.dispose();
  }
  x.dispose();
});

test('a step repeated inside tidy() gets the same pooled buffers every time, so it creates no bind group after its first run', async () => {
  await gpu();
  const x = tensor(seededValues(64, 8), [64]);
  const step = () =>
    tidy(() => {
      const a = x.mul(2);
      const b = a.add(x);
      void relu(b).mul(a).sub(silu(b));
    });
  step();
  const before = runtimeStats();
  for (let i = 0; i < 5; i++) step();
  const after = runtimeStats();
  assert.equal(after.bindGroups, before.bindGroups, 'bind groups created');
  assert.equal(after.buffersCreated, before.buffersCreated, 'storage buffers created');
  x.dispose();
});

test('a dispatch at the place in a submit where an earlier submit bound other buffers reads its own buffers', async () => {
  await gpu();
  const inputs = [1, 2, 3].map((k) => tensor(seededValues(64, 20 + k), [64]));
  const host = await Promise.all(inputs.map((t) => t.toArray()));
  // Each sum is the first dispatch of its submit (the read submits it), with the same kernel and output buffer.
  const pairs: [number, number][] = [[0, 1], [0, 2], [1, 2], [2, 1], [0, 1]];
  for (const [i, j] of pairs) {
    const sum = inputs[i]!.add(inputs[j]!);
    const got = await sum.toArray();
    assert.deepEqual([...got], [...Float32Array.from(host[i]!, (v, k) => Math.fround(v + host[j]![k]!))], `inputs ${i} and ${j}`);
    sum.dispose();
  }
  for (const t of inputs) t.dispose();
});
