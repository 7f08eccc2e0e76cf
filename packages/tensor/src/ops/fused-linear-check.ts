// The on-device check the fused decode products pass before decoding prefers them by default: each
// epilogue (concatenated q/k/v with the norm, the residual add, SwiGLU with the norm), with and without
// LoRA adapters of odd ranks and scalings, q/k/v with biases (Qwen2's) with and without adapters, at awkward sizes and 1 and 2 rows, in f32 and f16, against the
// separate ops on the same device; the same over int8 and NF4 weights where the device binds their kernels.
import { getRuntime } from '../backend/context.js';
import type { Runtime } from '../backend/runtime.js';
import { tensor } from '../creation.js';
import { noGrad } from '../grad-mode.js';
import { toArray } from '../io.js';
import { tidy } from '../scope.js';
import type { FloatDType, Tensor } from '../tensor.js';
import { add, mul } from './arithmetic.js';
import { fusedLinear, fusedLinearAdd, fusedLinearFits, fusedLinearSwiglu, fusedLoraAdd, type FusedLora } from './fused-linear.js';
import { linear, matmul } from './matmul.js';
import { rmsNorm } from './rmsnorm.js';
import { swiglu } from './swiglu.js';
import { cat, reshape, slice, transpose } from './views.js';
import { quantizeHost } from '../quant/formats.js';
import { QuantizedWeight } from '../quant/weight.js';
import { quantizedMatmul } from './quantized-matmul.js';
import { checkValues as values } from '../check-values.js';

/** The outcome of the check on one device: passed, or refused with the reason. */
export type FusedLinearCheck = { ok: true } | { ok: false; reason: string };

const checks = new WeakMap<Runtime, Promise<FusedLinearCheck>>();
const outcomes = new WeakMap<Runtime, FusedLinearCheck>();

/** The check's outcome on this device, or undefined before {@link readyFusedLinear} has settled. */
export function fusedLinearCheckOutcome(rt: Runtime): FusedLinearCheck | undefined {
  return outcomes.get(rt);
}

/**
 * Runs the fused products' check on this device once (later calls share it). Until it has passed,
 * decoding uses the separate ops unless {@link setFusedLinearPreferred} forces the fused ones; a refusal
 * is kept, with its reason, for the device's life. `generate` awaits it before decoding. On a CPU
 * adapter, where decoding does not prefer them, nothing runs ({@link checkFusedLinear} runs it anyway).
 * @example const outcome = await readyFusedLinear(); if (!outcome.ok) console.log(outcome.reason);
 */
export function readyFusedLinear(): Promise<FusedLinearCheck> {
  const rt = getRuntime();
  let check = checks.get(rt);
  if (check === undefined) {
    const cpu = { ok: false as const, reason: 'a CPU adapter: decoding uses the separate ops (setFusedLinearPreferred(true) forces the fused ones)' };
    check = (rt.info.isFallbackAdapter ? Promise.resolve(cpu) : runCheck(rt)).then((outcome) => {
      outcomes.set(rt, outcome);
      return outcome;
    });
    checks.set(rt, check);
  }
  return check;
}

/**
 * Checks the fused products on this device now, whatever the adapter, and returns the outcome without
 * keeping it (a test's or a benchmark's question; decoding asks {@link readyFusedLinear}).
 */
export function checkFusedLinear(): Promise<FusedLinearCheck> {
  return runCheck(getRuntime());
}

async function runCheck(rt: Runtime): Promise<FusedLinearCheck> {
  const dtypes: FloatDType[] = rt.info.features.has('shader-f16') ? ['f32', 'f16'] : ['f32'];
  for (const dtype of dtypes) {
    for (const rows of [1, 2]) {
      const what = `${dtype}, ${rows} row${rows > 1 ? 's' : ''}`;
      rt.device.pushErrorScope('internal');
      rt.device.pushErrorScope('validation');
      let outcome: FusedLinearCheck;
      try {
        outcome = await compareCase(dtype, rows, what);
        if (outcome.ok) outcome = await compareQuantized(dtype, rows, what);
      } catch (e) {
        outcome = { ok: false, reason: `${what}: ${(e as Error).message}` };
      }
      const errors = [await rt.device.popErrorScope(), await rt.device.popErrorScope()].filter((e) => e !== null);
      if (errors.length > 0) return { ok: false, reason: `${what}: ${errors.map((e) => e!.message).join('; ')}` };
      if (!outcome.ok) return outcome;
    }
  }
  return { ok: true };
}

/**
 * The three fused products against the separate ops at K 136, outputs 37 + 20 + 20, 44 and 29, then again
 * with adapters (q r 8, v r 3; o r 5; gate r 4, up r 7) of scalings 2, alpha / sqrt(r) and -0.75, an
 * adapter's update beside a base product, and q/k/v with biases, without and with the adapters.
 */
async function compareCase(dtype: FloatDType, rows: number, what: string): Promise<FusedLinearCheck> {
  const K = 136;
  const make = (shape: number[], seed: number, scale = 1) => tensor(values(shape.reduce((p, d) => p * d, 1), seed).map((v) => v * scale), shape, { dtype });
  const pairs = noGrad(() =>
    tidy(() => {
      const x = make([rows, K], 1);
      const g = make([K], 2);
      const norm = { weight: g, eps: 1e-5 };
      const [wq, wk, wv, wo, wg, wu] = [37, 20, 20, 44, 29, 29].map((n, i) => make([n, K], 10 + i, 0.1));
      const res = make([rows, 44], 3);
      if (!fusedLinearFits(x, [wq!, wk!, wv!], norm)) return null;
      const h = rmsNorm(x, g, 1e-5);
      const lin = (t: Tensor, w: Tensor) => matmul(t, transpose(w));
      // Adapters: A [r, K], B [N, r]; the separate ops as PEFT composes them at inference.
      const [aq, av, ao, ag, au] = [8, 3, 5, 4, 7].map((r, i) => make([r, K], 20 + i, 0.1));
      const [bq, bv, bo, bg, bu] = [[37, 8], [20, 3], [44, 5], [29, 4], [29, 7]].map((shape, i) => make(shape, 30 + i));
      const [sq, sv, so, sg, su] = [2, 16 / Math.sqrt(3), -0.75, 2, 16 / Math.sqrt(7)];
      // The base output (with its bias where given), then the update: PEFT's order.
      const adapted = (t: Tensor, w: Tensor, a: Tensor, b: Tensor, s: number, bias?: Tensor) => add(linear(t, w, bias), mul(lin(lin(t, a!), b!), s));
      const flat = (...bs: Tensor[]) => cat(bs.map((b) => reshape(b, [b.size])), 0);
      const qkvLora = { h: fusedLinear(x, [aq!, av!], norm), b: flat(bq!, bv!), adapters: [{ rank: 8, scaling: sq }, null, { rank: 3, scaling: sv! }] };
      const oLora = { h: fusedLinear(x, [ao!]), b: bo!, adapters: [{ rank: 5, scaling: so }] };
      const mlpLora = { h: fusedLinear(x, [ag!, au!], norm), b: flat(bg!, bu!), adapters: [{ rank: 4, scaling: sg }, { rank: 7, scaling: su! }] };
      // Biases (Qwen2's q, k and v), with the adapters' B in one buffer as decoding packs them.
      const [bq0, bk0, bv0] = [37, 20, 20].map((n, i) => make([n], 40 + i));
      const packed = biasBeside(qkvLora, flat(bq0!, bk0!, bv0!));
      return [
        ['q/k/v with the norm', fusedLinear(x, [wq!, wk!, wv!], norm), cat([lin(h, wq!), lin(h, wk!), lin(h, wv!)], -1)],
        ['residual add', fusedLinearAdd(res, x, wo!), add(res, lin(x, wo!))],
        ['gate/up with SwiGLU and the norm', fusedLinearSwiglu(x, wg!, wu!, norm), swiglu(lin(h, wg!), lin(h, wu!))],
        [
          'q/k/v with the norm and adapters on q and v',
          fusedLinear(x, [wq!, wk!, wv!], norm, qkvLora),
          cat([adapted(h, wq!, aq!, bq!, sq), lin(h, wk!), adapted(h, wv!, av!, bv!, sv!)], -1),
        ],
        ['residual add with an adapter', fusedLinearAdd(res, x, wo!, oLora), add(res, adapted(x, wo!, ao!, bo!, so))],
        ['gate/up with SwiGLU, the norm and adapters', fusedLinearSwiglu(x, wg!, wu!, norm, mlpLora), swiglu(adapted(h, wg!, ag!, bg!, sg), adapted(h, wu!, au!, bu!, su!))],
        ['an adapter beside a base product', fusedLoraAdd(res, lin(x, ao!), bo!, so), add(res, mul(lin(lin(x, ao!), bo!), so))],
        ['q/k/v with the norm and biases', fusedLinear(x, [wq!, wk!, wv!], norm, undefined, flat(bq0!, bk0!, bv0!)), cat([linear(h, wq!, bq0!), linear(h, wk!, bk0!), linear(h, wv!, bv0!)], -1)],
        [
          'q/k/v with the norm, adapters on q and v and biases',
          fusedLinear(x, [wq!, wk!, wv!], norm, packed.lora, packed.bias),
          cat([adapted(h, wq!, aq!, bq!, sq, bq0!), linear(h, wk!, bk0!), adapted(h, wv!, av!, bv!, sv!, bv0!)], -1),
        ],
      ] as Array<[string, Tensor, Tensor]>;
    }),
  );
  if (pairs === null) return { ok: false, reason: `${what}: the fused kernel does not fit this adapter` };
  return compare(pairs, dtype, what);
}

/**
 * The three fused products over int8 and NF4 weights (K 136: rows starting inside chunks, NF4 blocks
 * straddling rows) against quantizedMatmul and the separate ops, with adapters on q and v (and biases), o, and gate;
 * skipped where the device cannot bind the quantized kernels (fusedLinearFits refuses them there).
 */
async function compareQuantized(dtype: FloatDType, rows: number, what: string): Promise<FusedLinearCheck> {
  const K = 136;
  const make = (shape: number[], seed: number, scale = 1) => tensor(values(shape.reduce((p, d) => p * d, 1), seed).map((v) => v * scale), shape, { dtype });
  for (const format of ['int8', 'nf4'] as const) {
    const ws = [36, 20, 20, 44, 28, 28].map((n, i) => QuantizedWeight.upload(quantizeHost(values(n * K, 40 + i).map((v) => v * 0.1), n, K, format), 'check'));
    const [wq, wk, wv, wo, wg, wu] = ws as [QuantizedWeight, QuantizedWeight, QuantizedWeight, QuantizedWeight, QuantizedWeight, QuantizedWeight];
    try {
      const pairs = noGrad(() =>
        tidy(() => {
          const x = make([rows, K], 1);
          const g = make([K], 2);
          const norm = { weight: g, eps: 1e-5 };
          if (!fusedLinearFits(x, [wq, wk, wv], norm)) return null;
          const res = make([rows, 44], 3);
          const h = rmsNorm(x, g, 1e-5);
          const lin = (t: Tensor, w: Tensor) => matmul(t, transpose(w));
          const [aq, av, ao, ag] = [8, 3, 5, 4].map((r, i) => make([r, K], 50 + i, 0.1));
          const [bq, bv, bo, bg] = [[36, 8], [20, 3], [44, 5], [28, 4]].map((shape, i) => make(shape, 60 + i));
          const adapted = (t: Tensor, w: QuantizedWeight, a: Tensor, b: Tensor, s: number, bias?: Tensor) => {
            return add(quantizedMatmul(t, w, bias), mul(lin(lin(t, a), b), s));
          };
          const flat = (...bs: Tensor[]) => cat(bs.map((b) => reshape(b, [b.size])), 0);
          const qkvLora = { h: fusedLinear(x, [aq!, av!], norm), b: flat(bq!, bv!), adapters: [{ rank: 8, scaling: 2 }, null, { rank: 3, scaling: -0.5 }] };
          const oLora = { h: fusedLinear(x, [ao!]), b: bo!, adapters: [{ rank: 5, scaling: 0.75 }] };
          const mlpLora = { h: fusedLinear(x, [ag!], norm), b: bg!, adapters: [{ rank: 4, scaling: 2 }, null] };
          const [bq0, bk0, bv0] = [36, 20, 20].map((n, i) => make([n], 70 + i));
          const packed = biasBeside(qkvLora, flat(bq0!, bk0!, bv0!));
          return [
            [`${format} q/k/v with the norm and adapters on q and v`, fusedLinear(x, [wq, wk, wv], norm, qkvLora), cat([adapted(h, wq, aq!, bq!, 2), quantizedMatmul(h, wk), adapted(h, wv, av!, bv!, -0.5)], -1)],
            [
              `${format} q/k/v with the norm, adapters on q and v and biases`,
              fusedLinear(x, [wq, wk, wv], norm, packed.lora, packed.bias),
              cat([adapted(h, wq, aq!, bq!, 2, bq0!), quantizedMatmul(h, wk, bk0!), adapted(h, wv, av!, bv!, -0.5, bv0!)], -1),
            ],
            [`${format} residual add with an adapter`, fusedLinearAdd(res, x, wo, oLora), add(res, adapted(x, wo, ao!, bo!, 0.75))],
            [`${format} gate/up with SwiGLU, the norm and an adapter on gate`, fusedLinearSwiglu(x, wg, wu, norm, mlpLora), swiglu(adapted(h, wg, ag!, bg!, 2), quantizedMatmul(h, wu))],
          ] as Array<[string, Tensor, Tensor]>;
        }),
      );
      if (pairs === null) return { ok: true };
      const outcome = await compare(pairs, dtype, what);
      if (!outcome.ok) return outcome;
    } finally {
      for (const w of ws) w.dispose();
    }
  }
  return { ok: true };
}

/** The adapters' B and the bias as views of one packed tensor (one binding of the kernels), as decoding packs them. */
function biasBeside(lora: FusedLora, bias: Tensor): { lora: FusedLora; bias: Tensor } {
  const n = lora.b.size;
  const packed = cat([reshape(lora.b, [n]), bias], 0);
  return { lora: { ...lora, b: slice(packed, 0, 0, n) }, bias: slice(packed, 0, n, n + bias.size) };
}

/** Each fused result against its separate ops' within the dtype's bound; disposes both. */
async function compare(pairs: Array<[string, Tensor, Tensor]>, dtype: FloatDType, what: string): Promise<FusedLinearCheck> {
  try {
    const [atol, rtol] = dtype === 'f16' ? [2e-2, 2e-2] : [1e-4, 1e-4];
    for (const [name, fused, separate] of pairs) {
      const [got, want] = [(await toArray(fused)) as Float32Array, (await toArray(separate)) as Float32Array];
      for (let i = 0; i < want.length; i++) {
        if (!(Math.abs(got[i]! - want[i]!) <= atol + rtol * Math.abs(want[i]!))) {
          return { ok: false, reason: `${what}, ${name}: element ${i} is ${got[i]}, the separate ops give ${want[i]}` };
        }
      }
    }
    return { ok: true };
  } finally {
    for (const [, a, b] of pairs) {
      a.dispose();
      b.dispose();
    }
  }
}
