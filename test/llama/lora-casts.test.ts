// An unmerged adapter on an f16 model at inference: A and B are cast to f16 once and the casts are
// reused while A and B are unchanged, made again after an optimizer step, an in-place write or a new
// adapter's weights, kept out of training's graph, and freed when the adapter is merged or removed.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import {
  AdamW, copyInto, hasF16, initWebGPU, keep, noGrad, profile, randn, runtimeStats, slice, synchronize, tensor, tidy, toArray, type Tensor,
} from '@huatuo/tensor';
import {
  adaptedLinears, applyLora, configFromPreset, createRandomLlama, mergeAdapter, peftKey, removeLora, setAdapterWeights, unmergeAdapter, type LlamaModel,
} from '@huatuo/llama';
import { assertClose } from '../tensor/helpers.js';

const config = configFromPreset('tiny', { hiddenSize: 64, intermediateSize: 176, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2, vocabSize: 512 });
const R = 4;
/** Two layers with q and v adapted: 4 adapters, 8 matrices. */
const MATRICES = 8;
const IDS = [[5, 17, 301, 44]];

function model(): LlamaModel {
  const m = createRandomLlama(config, { seed: 3, dtype: 'f16' });
  applyLora(m, { r: R, alpha: 8, targetModules: ['q_proj', 'v_proj'] }, { seed: 5 });
  // B starts at zero (PEFT's init): give it values, so that the adapter changes the logits.
  for (const l of m.linears()) {
    if (l.lora === null) continue;
    const zerosB = l.lora.B;
    l.lora = { ...l.lora, B: keep(noGrad(() => randn([l.outFeatures, R], { seed: 7 }))).requireGrad() };
    zerosB.dispose();
  }
  return m;
}

const ids = () => tensor(Int32Array.from(IDS.flat()), [1, IDS[0]!.length]);

/** Logits of an inference forward, and how many casts it dispatched (the adapters' and any other, as the logits' to f32). */
async function infer(m: LlamaModel): Promise<{ logits: Float32Array; casts: number }> {
  const { result, report } = await profile(() => noGrad(() => tidy(() => m.forward(ids()))));
  const logits = (await toArray(result)) as Float32Array;
  result.dispose();
  return { logits, casts: report.kernels.find((k) => k.label === 'cast')?.count ?? 0 };
}

/** Logits of a forward recording the graph (the casts are made afresh, in the graph). */
async function recorded(m: LlamaModel): Promise<Float32Array> {
  const t = tidy(() => m.forward(ids()));
  const out = (await toArray(t)) as Float32Array;
  t.dispose();
  return out;
}

/** Checks that inference gives the recorded forward's logits, and that these moved from `before`. */
async function assertFresh(m: LlamaModel, before: Float32Array, what: string): Promise<void> {
  const { logits, casts } = await infer(m);
  const again = await infer(m);
  const want = await recorded(m);
  assert.equal(casts - again.casts, MATRICES, `${what}: each changed matrix is cast again, once`);
  assertClose(logits, want, { atol: 1e-3, rtol: 1e-3 }, `${what}: inference vs recorded logits`);
  const moved = want.reduce((s, v, i) => Math.max(s, Math.abs(v - before[i]!)), 0);
  assert.ok(moved > 1e-2, `${what}: the adapter change moves the logits (by ${moved})`);
}

describe('the casts of an unmerged adapter at inference', () => {
  before(async (t) => {
    await initWebGPU();
  });

  it('are made once and reused while A and B are unchanged, two dispatches fewer per adapter', async (t) => {
    if (!hasF16()) return t.skip('adapter lacks shader-f16');
    const m = model();
    try {
      const d0 = runtimeStats().dispatches;
      const first = await infer(m);
      const d1 = runtimeStats().dispatches;
      const second = await infer(m);
      const d2 = runtimeStats().dispatches;
      assert.equal(first.casts - second.casts, MATRICES);
      assert.equal(d1 - d0 - (d2 - d1), MATRICES);
      assert.deepEqual(second.logits, first.logits);
    } finally {
      m.dispose();
    }
  });

  it('are made again after an optimizer step, and training casts in the graph so the gradients reach the f32 leaves', async (t) => {
    if (!hasF16()) return t.skip('adapter lacks shader-f16');
    const m = model();
    const opt = new AdamW(m.loraParameters(), { lr: 0.05, weightDecay: 0 });
    try {
      const before = (await infer(m)).logits;
      const others = (await infer(m)).casts;
      tidy(() => {
        const x = ids();
        m.loss(x, x).backward();
      });
      for (const p of m.loraParameters()) assert.ok(p.grad !== null, `${p} has a gradient`);
      assert.equal((await infer(m)).casts, others, 'a training forward leaves the kept casts alone');
      opt.step();
      opt.zeroGrad();
      await assertFresh(m, before, 'after an AdamW step');
    } finally {
      opt.dispose();
      m.dispose();
    }
  });

  it('are made again after an in-place write into A or B', async (t) => {
    if (!hasF16()) return t.skip('adapter lacks shader-f16');
    const m = model();
    try {
      const before = (await infer(m)).logits;
      noGrad(() =>
        tidy(() => {
          for (const { linear } of adaptedLinears(m)) {
            const { A, B } = linear.lora!;
            copyInto(slice(A, 0, 0, 1), randn([1, A.shape[1]!], { seed: 11 }));
            copyInto(slice(B, 1, 1, 2), randn([B.shape[0]!, 1], { seed: 12 }));
          }
        }),
      );
      await assertFresh(m, before, 'after copyInto into A and B');
    } finally {
      m.dispose();
    }
  });

  it('are made again for a new adapter\'s weights', async (t) => {
    if (!hasF16()) return t.skip('adapter lacks shader-f16');
    const m = model();
    try {
      const before = (await infer(m)).logits;
      const weights = new Map<string, { shape: readonly number[]; data: Float32Array }>();
      for (const { layer, target, linear } of adaptedLinears(m)) {
        for (const [k, t] of [['A', linear.lora!.A], ['B', linear.lora!.B]] as const) {
          const data = (await toArray(t)) as Float32Array;
          weights.set(peftKey(layer, target, k), { shape: t.shape, data: data.map((v, i) => (i % 3 === 0 ? -v : v)) });
        }
      }
      setAdapterWeights(m, weights, 'adapter_model.safetensors');
      await assertFresh(m, before, 'after setAdapterWeights');
    } finally {
      m.dispose();
    }
  });

  it('are freed when the adapter is merged or removed', async (t) => {
    if (!hasF16()) return t.skip('adapter lacks shader-f16');
    const m = model();
    const inUse = async () => {
      await synchronize();
      return runtimeStats().bytesInUse;
    };
    /** Bytes freed by removeLora. */
    const removed = async () => {
      const before = await inUse();
      removeLora(m);
      return before - (await inUse());
    };
    try {
      await infer(m); // the forward's own lasting buffers (the rope tables) are made
      removeLora(m);
      applyLora(m, { r: R, alpha: 8, targetModules: ['q_proj', 'v_proj'] }, { seed: 5 });
      const bare = await inUse();
      await infer(m);
      const castBytes = (await inUse()) - bare;
      assert.ok(castBytes > 0, 'the casts are kept');
      mergeAdapter(m);
      assert.equal(await inUse(), bare, 'merging frees them');
      unmergeAdapter(m);
      await infer(m);
      assert.equal(await inUse(), bare + castBytes, 'unmerged, they are made again');
      const withCasts = await removed();
      applyLora(m, { r: R, alpha: 8, targetModules: ['q_proj', 'v_proj'] }, { seed: 5 });
      const without = await removed();
      assert.equal(withCasts - without, castBytes, 'removing the adapter frees them with A and B');
    } finally {
      m.dispose();
    }
  });
});
