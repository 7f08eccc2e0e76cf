// Cached decoding through the fused decode kernels (the norms and q/k/v in one product, RoPE with the cache
// writes, residual adds and SwiGLU in the products' epilogues) gives the logits of the full forward, and falls
// back to the separate ops for unmerged LoRA adapters and quantized bases.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  cat, decodeCandidates, fusedLinearPreferred, readyFusedLinear, initWebGPU, keep, noGrad, profile, randn, setFusedLinearPreferred, tensor, tidy, toArray,
  type DecodeVariant, type Tensor,
} from '@huatuo/tensor';
import { applyLora, configFromPreset, createRandomLlama, KvCache, quantizeModel, type LlamaModel } from '@huatuo/llama';
import { assertClose } from '../tensor/helpers.js';

const config = configFromPreset('tiny', { hiddenSize: 64, intermediateSize: 176, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2 });
const ROWS = [
  [5, 17, 301, 44, 9, 120, 77],
  [3, 250, 18, 6, 412, 33, 71],
];

type Setup = 'plain' | 'lora q,v' | 'int8' | 'nf4';

async function modelFor(setup: Setup): Promise<LlamaModel> {
  const model = createRandomLlama(config, { seed: 3 });
  if (setup === 'lora q,v') {
    applyLora(model, { r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj'] }, { seed: 5 });
    // B starts at zero (PEFT's init): give it values, so that the adapter changes the logits.
    for (const l of model.linears()) {
      if (l.lora !== null) l.lora = { ...l.lora, B: keep(noGrad(() => randn([l.outFeatures, l.lora!.A.shape[0]!], { seed: 7 }))) };
    }
  }
  if (setup === 'int8' || setup === 'nf4') await quantizeModel(model, setup);
  return model;
}

/** Logits of prefilling 3 tokens then decoding one at a time, and the kernel counts of the last step. */
async function cached(model: LlamaModel, rows: number[][]): Promise<{ logits: Tensor; counts: Map<string, number> }> {
  const B = rows.length;
  const ids = (from: number, to: number) => tensor(Int32Array.from(rows.flatMap((r) => r.slice(from, to))), [B, to - from]);
  const cache = new KvCache(config, B, rows[0]!.length, 'f32');
  try {
    const steps: Tensor[] = [];
    noGrad(() => {
      steps.push(tidy(() => model.forward(ids(0, 3), { cache })));
      for (let t = 3; t < rows[0]!.length - 1; t++) steps.push(tidy(() => model.forward(ids(t, t + 1), { cache })));
    });
    const t = rows[0]!.length - 1;
    const { result, report } = await profile(() => noGrad(() => tidy(() => model.forward(ids(t, t + 1), { cache }))));
    steps.push(result);
    const logits = tidy(() => cat(steps, 1));
    for (const s of steps) s.dispose();
    return { logits, counts: new Map(report.kernels.map((k) => [k.label, k.count])) };
  } finally {
    cache.dispose();
  }
}

describe('cached decoding with the fused decode kernels', () => {
  let wide: DecodeVariant | undefined;
  before(async () => {
    const info = await initWebGPU();
    // The fused products need a fixed subgroup size (as the wide decode kernel); a CPU adapter does not prefer them.
    wide = decodeCandidates(info).find((v) => v.wide && v.groups === undefined);
    setFusedLinearPreferred(true);
  });
  after(() => setFusedLinearPreferred(null));

  const expected: Record<Setup, Record<string, number>> = {
    plain: { rmsNorm: 1, fusedLinear: 2, ropeCache: 2, fusedLinearAdd: 4, fusedLinearSwiglu: 2, swiglu: 0, add: 0, copyInto: 0 },
    'lora q,v': { rmsNorm: 3, fusedLinear: 0, ropeCache: 2, fusedLinearAdd: 4, fusedLinearSwiglu: 2, swiglu: 0, copyInto: 0 },
    int8: { rmsNorm: 5, fusedLinear: 0, ropeCache: 2, fusedLinearAdd: 0, fusedLinearSwiglu: 0, swiglu: 2, add: 4 },
    nf4: { rmsNorm: 5, fusedLinear: 0, ropeCache: 2, fusedLinearAdd: 0, fusedLinearSwiglu: 0, swiglu: 2, add: 4 },
  };
  for (const setup of Object.keys(expected) as Setup[]) {
    it(`gives the full forward's logits one token at a time and runs the fused kernels where they apply (${setup})`, async (t) => {
      if (wide === undefined) return t.skip('adapter has no fixed subgroup size');
      const model = await modelFor(setup);
      try {
        for (const rows of [ROWS.slice(0, 1), ROWS]) {
          const ids = tensor(Int32Array.from(rows.flat()), [rows.length, rows[0]!.length]);
          // 7 positions a row: more rows than the fused products take, so the full forward runs the separate ops.
          const full = noGrad(() => tidy(() => model.forward(ids)));
          const { logits, counts } = await cached(model, rows);
          assertClose(await toArray(logits), await toArray(full), { atol: 2e-5, rtol: 2e-5 }, `${setup}, ${rows.length} rows: cached vs full logits`);
          for (const [label, n] of Object.entries(expected[setup])) {
            assert.equal(counts.get(label) ?? 0, n, `${setup}, ${rows.length} rows: ${label} dispatches in one step (${JSON.stringify([...counts])})`);
          }
          full.dispose();
          logits.dispose();
          ids.dispose();
        }
      } finally {
        model.dispose();
      }
    });
  }

  it('keeps the separate products where the fused ones are not preferred (by default on a CPU adapter)', async () => {
    const info = await initWebGPU();
    setFusedLinearPreferred(null);
    // Preferred by default once the fused products passed their check on a GPU; never on a CPU adapter.
    await readyFusedLinear();
    assert.equal(fusedLinearPreferred(), !info.isFallbackAdapter);
    setFusedLinearPreferred(false);
    const model = await modelFor('plain');
    try {
      const { logits, counts } = await cached(model, ROWS.slice(0, 1));
      assert.equal(counts.get('fusedLinear') ?? 0, 0);
      assert.equal(counts.get('ropeCache'), 2);
      assert.equal(counts.get('rmsNorm'), 5);
      logits.dispose();
    } finally {
      model.dispose();
      setFusedLinearPreferred(true);
    }
  });
});
