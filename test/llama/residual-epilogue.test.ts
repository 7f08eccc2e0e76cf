// A projection adds a decoder layer's residual (Linear.forwardAdd) and its LoRA update (y + scaling h B^T) in
// its product's epilogue (linearAdd, torch.addmm): one dispatch each where the separate ops took two and three,
// the f32 outputs and gradients bit for bit the separate ops', f16 rounded once; an adapter on top keeps PEFT's
// order (update on the base output, then the residual).
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { add, hasF16, initWebGPU, keep, linear, linearAdd, mul, runtimeStats, sum, synchronize, tensor, toArray, type FloatDType, type Tensor } from '@huatuo/tensor';
import { Linear, type LoraWeights } from '@huatuo/llama';
import { seededValues } from '../tensor/helpers.js';

before(async () => {
  await initWebGPU();
});

const [ROWS, IN, OUT, R] = [7, 40, 24, 4];
const SCALING = 2.5;

function projection(dtype: FloatDType, adapted: boolean): Linear {
  const l = new Linear('model.layers.0.self_attn.o_proj', OUT, IN, [keep(tensor(seededValues(OUT * IN, 1, 0.3), [OUT, IN], { dtype }))]);
  if (adapted) {
    const lora: LoraWeights = {
      A: keep(tensor(seededValues(R * IN, 3, 0.5), [R, IN]).requireGrad()),
      B: keep(tensor(seededValues(OUT * R, 4, 0.5), [OUT, R]).requireGrad()),
      scaling: SCALING,
      dropout: 0,
    };
    l.lora = lora;
  }
  return l;
}

/** The value of `f()` and the dispatches it issued. */
async function counted(f: () => Tensor): Promise<{ value: Float32Array; dispatches: number }> {
  await synchronize();
  const before = runtimeStats().dispatches;
  const y = f();
  const dispatches = runtimeStats().dispatches - before;
  return { value: (await toArray(y)) as Float32Array, dispatches };
}

test('a projection without an adapter adds the residual in its product: one dispatch, f32 bit for bit add(residual, forward(x)), f16 rounded once', async (t) => {
  for (const dtype of ['f32', 'f16'] as const) {
    if (dtype === 'f16' && !hasF16()) return t.skip('adapter lacks shader-f16');
    const l = projection(dtype, false);
    const x = tensor(seededValues(ROWS * IN, 5), [1, ROWS, IN], { dtype });
    const residual = tensor(seededValues(ROWS * OUT, 6, 4), [1, ROWS, OUT], { dtype });
    try {
      const fused = await counted(() => l.forwardAdd(residual, x));
      const separate = await counted(() => add(residual, l.forward(x)));
      assert.equal(fused.dispatches, 1, `${dtype}: forwardAdd dispatches`);
      assert.equal(separate.dispatches, 2, `${dtype}: forward then add dispatches`);
      if (dtype === 'f32') assert.deepEqual(fused.value, separate.value, 'f32: the separate ops bit for bit');
      else {
        assert.deepEqual(fused.value, (await counted(() => linearAdd(residual, x, l.parts[0]!))).value, 'f16: linearAdd, rounded once');
        assert.ok(fused.value.some((v, i) => v !== separate.value[i]), 'f16: the inputs tell one rounding from two');
      }
    } finally {
      for (const y of [x, residual]) y.dispose();
      l.dispose();
    }
  }
});

test('a LoRA projection adds scaling h B^T to its base output in the second product: two dispatches fewer, f32 output and gradients bit for bit the separate ops', async () => {
  const l = projection('f32', true);
  const x = tensor(seededValues(ROWS * IN, 7), [1, ROWS, IN]).requireGrad();
  const residual = tensor(seededValues(ROWS * OUT, 8, 4), [1, ROWS, OUT]);
  const g = tensor(seededValues(ROWS * OUT, 9), [1, ROWS, OUT]);
  const { A, B } = l.lora!;
  try {
    // PEFT's composition as separate ops: y + (h B^T) * scaling, h = x A^T.
    const composed = () => add(linear(x, l.parts[0]!), mul(linear(linear(x, A), B), SCALING));
    const fused = await counted(() => l.forward(x));
    const separate = await counted(composed);
    assert.equal(fused.dispatches, separate.dispatches - 2, `forward: ${fused.dispatches} dispatches, the separate ops ${separate.dispatches}`);
    assert.deepEqual(fused.value, separate.value, 'the update: the separate ops bit for bit');
    const gradsOf = async (y: Tensor) => {
      sum(mul(y, g)).backward();
      const out = await Promise.all([A, B, x].map((t) => toArray(t.grad!)));
      for (const t of [A, B, x]) t.grad = null;
      return out;
    };
    const fusedGrads = await gradsOf(l.forward(x));
    const separateGrads = await gradsOf(composed());
    ['A', 'B', 'x'].forEach((name, i) => assert.deepEqual(fusedGrads[i], separateGrads[i], `d/d${name}: the separate ops bit for bit`));
    // With an adapter, the residual comes after the update (PEFT's lora.Linear, then the decoder layer's add).
    assert.deepEqual((await counted(() => l.forwardAdd(residual, x))).value, (await counted(() => add(residual, composed()))).value, 'forwardAdd: residual + (y + update)');
  } finally {
    for (const y of [x, residual, g]) y.dispose();
    l.dispose();
  }
});
