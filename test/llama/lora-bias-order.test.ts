// A biased projection with a LoRA or DoRA adapter adds its bias in PEFT's order: the base layer's output
// x W^T + b first, then the adapter's update on top (lora.Linear.forward), and for DoRA the base output less its
// bias rescaled (DoraLinearLayer.forward with base_result). The base output x W^T + b is F.linear's, the f32 sum
// and the bias rounded to f16 once (addmm); in prefill the update's f32 sum times scaling is added to it in the
// second product's epilogue and rounded once (addmm with alpha). In f16, where the orders round differently, the
// output of prefill and of decoding (the fused update) equals the formula evaluated on the host from the
// device's own base output and products, rounding as the ops do.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cast, div, f16BitsToF32, f32ToF16Bits, fusedLinear, fusedLoraAdd, hasF16, initWebGPU, keep, linear, matmul, noGrad, setFusedLinearPreferred, tensor, toArray, transpose, zeros, type Tensor } from '@huatuo/tensor';
import { Linear, type LoraWeights } from '@huatuo/llama';
import { seededValues } from '../tensor/helpers.js';

before(async () => {
  await initWebGPU();
});

const [IN, OUT, R] = [64, 48, 4];
const SCALING = 2;

/** v rounded to f16 (to nearest, ties to even). */
const r16 = (v: number) => f16BitsToF32(f32ToF16Bits(Float32Array.of(v)))[0]!;

/** A biased f16 projection [OUT, IN] with a LoRA (or, with `dora`, DoRA) adapter of rank R whose B is not zero. */
function biasedLinear(dora: boolean): Linear {
  const l = new Linear('model.layers.0.self_attn.q_proj', OUT, IN, [keep(tensor(seededValues(OUT * IN, 1, 0.2), [OUT, IN], { dtype: 'f16' }))]);
  l.bias = keep(tensor(seededValues(OUT, 2, 3), [OUT], { dtype: 'f16' }));
  const lora: LoraWeights = {
    A: keep(tensor(seededValues(R * IN, 3, 0.5), [R, IN])),
    B: keep(tensor(seededValues(OUT * R, 4, 0.5), [OUT, R])),
    scaling: SCALING,
    dropout: 0,
    magnitude: dora ? keep(tensor(seededValues(OUT, 5, 0.5).map((v) => 2 + v), [OUT])) : null,
  };
  l.lora = lora;
  return l;
}

/** The values of `t`, which is disposed once read. */
async function values(t: Tensor): Promise<Float32Array> {
  const v = (await toArray(t)) as Float32Array;
  t.dispose();
  return v;
}

/** Asserts `got` equals PEFT's order elementwise and that the other order (update, then bias) differs somewhere. */
function assertPeftOrder(got: Float32Array, peft: number[], other: number[], what: string): void {
  for (let i = 0; i < peft.length; i++) assert.equal(got[i], peft[i], `${what}: element ${i} is ${got[i]}, PEFT's order gives ${peft[i]} (the other order ${other[i]})`);
  assert.ok(peft.some((v, i) => v !== other[i]), `${what}: the inputs tell the two orders apart`);
}

/** The spacing of f16 values at v. */
const ulp16 = (v: number) => Math.max(2 ** -24, 2 ** (Math.floor(Math.log2(Math.abs(v) || 2 ** -24)) - 10));

/**
 * Asserts the base output x W^T + b is the rounded product plus the bias to within the product's rounding and
 * its own (half a step each: it is their f32 sum rounded once), and differs somewhere from rounding the product
 * first and adding the bias after.
 */
function assertOneRounding(base: Float32Array, product: Float32Array, bias: ArrayLike<number>, what: string): void {
  const twice = Array.from(product, (p, i) => r16(p + bias[i % OUT]!));
  for (let i = 0; i < base.length; i++) {
    const exact = product[i]! + bias[i % OUT]!;
    const bound = (ulp16(product[i]!) + ulp16(base[i]!)) / 2;
    assert.ok(Math.abs(base[i]! - exact) <= bound, `${what}: base output ${i} is ${base[i]}, the rounded product plus the bias ${exact}`);
  }
  assert.ok(twice.some((v, i) => v !== base[i]), `${what}: the bias rounded with the sum gives what two roundings give everywhere`);
}

test('a biased f16 projection adds its bias before the LoRA update, in prefill and in decoding, as PEFT orders them', async (t) => {
  if (!hasF16()) return t.skip('adapter lacks shader-f16');
  const l = biasedLinear(false);
  try {
    for (const [rows, fused] of [[7, false], [1, true]] as const) {
      const what = `${rows} row${rows > 1 ? 's' : ''}${fused ? ', the fused update' : ''}`;
      const x = tensor(seededValues(rows * IN, 6 + rows), [1, rows, IN], { dtype: 'f16' });
      setFusedLinearPreferred(fused);
      try {
        const { A, B } = l.inferenceAdapter('f16')!;
        const [y, bo, p, u] = noGrad(() => [
          l.forward(x), // [1, rows, OUT]
          linear(x, l.parts[0]!, l.bias!), // [1, rows, OUT]: x W^T + b rounded once
          matmul(x, transpose(l.parts[0]!)), // [1, rows, OUT]
          // The update alone as the path under test computes it: T(T(x A^T B^T) * scaling) fused; otherwise the f32
          // sum of T(x A^T) B^T (f16 products are exact in f32), which the epilogue scales and adds in f32.
          fused ? fusedLoraAdd(zeros([1, rows, OUT], { dtype: 'f16' }), fusedLinear(x, [A]), B, SCALING) : matmul(cast(matmul(x, transpose(A)), 'f32'), transpose(cast(B, 'f32'))),
        ] as const);
        const [got, base, product, update] = await Promise.all([values(y), values(bo), values(p), values(u)]);
        const bias = await toArray(l.bias!);
        const scaled = Array.from(update, (u) => (fused ? u : Math.fround(u * SCALING)));
        const peft = scaled.map((u, i) => r16(fused ? base[i]! + u : Math.fround(base[i]! + u)));
        const other = scaled.map((u, i) => r16(r16(product[i]! + u) + bias[i % OUT]!));
        assertPeftOrder(got, peft, other, what);
        assertOneRounding(base, product, bias, what);
      } finally {
        setFusedLinearPreferred(null);
        x.dispose();
      }
    }
  } finally {
    l.dispose();
  }
});

test("a biased f16 projection under DoRA rescales its base output less the bias and adds the update to the biased output, as PEFT's DoRA does", async (t) => {
  if (!hasF16()) return t.skip('adapter lacks shader-f16');
  const l = biasedLinear(true);
  const x = tensor(seededValues(5 * IN, 9), [1, 5, IN], { dtype: 'f16' });
  try {
    const { A, B } = l.inferenceAdapter('f16')!;
    // s = m / ||W + scaling B A|| in the weight's dtype.
    const [y, bo, p, lr, sc] = noGrad(
      () => [l.forward(x), linear(x, l.parts[0]!, l.bias!), matmul(x, transpose(l.parts[0]!)), matmul(matmul(x, transpose(A)), transpose(B)), cast(div(l.lora!.magnitude!, l.doraNorm()), 'f16')] as const,
    );
    const [got, base, product, loraResult, s] = await Promise.all([values(y), values(bo), values(p), values(lr), values(sc)]);
    const bias = await toArray(l.bias!);
    // PEFT: result = base(x); result + ((s - 1) (result - b) + s lora(x) scaling).
    const peft = Array.from(product, (p, i) => {
      const o = i % OUT;
      const result = base[i]!;
      const delta = r16(r16(r16(result - bias[o]!) * r16(s[o]! - 1)) + r16(r16(s[o]! * loraResult[i]!) * SCALING));
      return r16(result + delta);
    });
    // The bias added last to the rescaled product and update: s (x W^T + lora(x) scaling) + b.
    const other = Array.from(product, (p, i) => r16(r16(r16(p + r16(loraResult[i]! * SCALING)) * s[i % OUT]!) + bias[i % OUT]!));
    assertPeftOrder(got, peft, other, 'DoRA, 5 rows');
    assertOneRounding(base, product, bias, 'DoRA, 5 rows');
  } finally {
    x.dispose();
    l.dispose();
  }
});
