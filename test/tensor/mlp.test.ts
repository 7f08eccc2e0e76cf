// A composed check: a 2-layer MLP trained with AdamW on the GPU follows, loss by loss, the same
// network and optimizer computed on the CPU (float64 forward, hand-written backward, refAdamWStep).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AdamW, mean, refAdamWState, refAdamWStep, relu, silu, tensor, tidy, type RefAdamWOptions, type Tensor } from '@huatuo/tensor';
import { assertClose, gpu, seededValues } from './helpers.js';

const [B, I, H, O] = [12, 5, 24, 3];
const STEPS = 50;
const OPTIONS: RefAdamWOptions = { lr: 2e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

type Activation = 'relu' | 'silu';
const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
const act = { relu: (v: number) => Math.max(v, 0), silu: (v: number) => v * sigmoid(v) };
// relu' = [v > 0]; silu' = σ(v) (1 + v (1 - σ(v)))
const actGrad = { relu: (v: number) => (v > 0 ? 1 : 0), silu: (v: number) => sigmoid(v) * (1 + v * (1 - sigmoid(v))) };

interface Params {
  w1: Float64Array; // [I, H]
  b1: Float64Array; // [H]
  w2: Float64Array; // [H, O]
  b2: Float64Array; // [O]
}

/** Loss and gradients of mean((act(x w1 + b1) w2 + b2 - y)^2), by the chain rule written out. */
function cpuLossAndGrads(p: Params, x: Float32Array, y: Float32Array, kind: Activation): { loss: number; grads: Params } {
  const a = new Float64Array(B * H);
  const h = new Float64Array(B * H);
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < H; j++) {
      let s = p.b1[j]!;
      for (let i = 0; i < I; i++) s += x[b * I + i]! * p.w1[i * H + j]!;
      a[b * H + j] = s;
      h[b * H + j] = act[kind](s);
    }
  }
  const dOut = new Float64Array(B * O);
  let loss = 0;
  for (let b = 0; b < B; b++) {
    for (let k = 0; k < O; k++) {
      let s = p.b2[k]!;
      for (let j = 0; j < H; j++) s += h[b * H + j]! * p.w2[j * O + k]!;
      const d = s - y[b * O + k]!;
      loss += (d * d) / (B * O);
      dOut[b * O + k] = (2 * d) / (B * O);
    }
  }
  const g: Params = { w1: new Float64Array(I * H), b1: new Float64Array(H), w2: new Float64Array(H * O), b2: new Float64Array(O) };
  for (let b = 0; b < B; b++) {
    for (let k = 0; k < O; k++) {
      const d = dOut[b * O + k]!;
      g.b2[k] = g.b2[k]! + d;
      for (let j = 0; j < H; j++) g.w2[j * O + k] = g.w2[j * O + k]! + h[b * H + j]! * d;
    }
    for (let j = 0; j < H; j++) {
      let dh = 0;
      for (let k = 0; k < O; k++) dh += dOut[b * O + k]! * p.w2[j * O + k]!;
      const da = dh * actGrad[kind](a[b * H + j]!);
      g.b1[j] = g.b1[j]! + da;
      for (let i = 0; i < I; i++) g.w1[i * H + j] = g.w1[i * H + j]! + x[b * I + i]! * da;
    }
  }
  return { loss, grads: g };
}

for (const kind of ['relu', 'silu'] as const) {
  test(`a 2-layer ${kind} MLP trained for 50 AdamW steps on the GPU matches the CPU reference loss by loss`, async () => {
    await gpu();
    const xs = seededValues(B * I, 11);
    const ys = seededValues(B * O, 12);
    const init = { w1: seededValues(I * H, 13, 0.6), b1: seededValues(H, 14, 0.2), w2: seededValues(H * O, 15, 0.4), b2: seededValues(O, 16, 0.2) };
    const x = tensor(xs, [B, I]);
    const y = tensor(ys, [B, O]);
    const w1 = tensor(init.w1, [I, H], { requiresGrad: true });
    const b1 = tensor(init.b1, [H], { requiresGrad: true });
    const w2 = tensor(init.w2, [H, O], { requiresGrad: true });
    const b2 = tensor(init.b2, [O], { requiresGrad: true });
    const opt = new AdamW([w1, b1, w2, b2], { lr: OPTIONS.lr, betas: [OPTIONS.beta1, OPTIONS.beta2], eps: OPTIONS.eps, weightDecay: OPTIONS.weightDecay });
    const activation = kind === 'relu' ? relu : silu;
    const losses: Tensor[] = [];
    for (let s = 0; s < STEPS; s++) {
      losses.push(
        tidy(() => {
          const h = activation(x.matmul(w1).add(b1)); // [B, H]
          const d = h.matmul(w2).add(b2).sub(y); // [B, O]
          const loss = mean(d.mul(d));
          loss.backward();
          opt.step();
          opt.zeroGrad();
          return loss;
        }),
      );
    }
    const cpu: Params = { w1: Float64Array.from(init.w1), b1: Float64Array.from(init.b1), w2: Float64Array.from(init.w2), b2: Float64Array.from(init.b2) };
    const states = { w1: refAdamWState(I * H), b1: refAdamWState(H), w2: refAdamWState(H * O), b2: refAdamWState(O) };
    const cpuLosses: number[] = [];
    for (let s = 0; s < STEPS; s++) {
      const { loss, grads } = cpuLossAndGrads(cpu, xs, ys, kind);
      cpuLosses.push(loss);
      for (const k of ['w1', 'b1', 'w2', 'b2'] as const) refAdamWStep(cpu[k], grads[k], states[k], OPTIONS);
    }
    const gpuLosses = await Promise.all(losses.map((l) => l.item()));
    assertClose(gpuLosses, cpuLosses, { atol: 1e-6, rtol: 2e-4 }, `${kind} MLP losses`);
    assert.ok(cpuLosses[STEPS - 1]! < cpuLosses[0]! * 0.5, `the reference loss did not fall: ${cpuLosses[0]} -> ${cpuLosses[STEPS - 1]}`);
    assertClose(await w1.toArray(), cpu.w1, { atol: 1e-4, rtol: 1e-3 }, `${kind} MLP w1 after ${STEPS} steps`);
    assertClose(await w2.toArray(), cpu.w2, { atol: 1e-4, rtol: 1e-3 }, `${kind} MLP w2 after ${STEPS} steps`);
    for (const t of [x, y, w1, b1, w2, b2, ...losses]) t.dispose();
    opt.dispose();
  });
}
