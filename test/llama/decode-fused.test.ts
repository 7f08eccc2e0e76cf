// Cached decoding through the fused decode kernels (the norms and q/k/v in one product, RoPE with the cache
// writes, residual adds and SwiGLU in the products' epilogues, unmerged LoRA adapters' updates in them) gives
// the logits of the full forward, over dense, int8 and NF4 bases alike.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  cat, copyInto, decodeCandidates, fusedLinearPreferred, readyFusedLinear, initWebGPU, keep, mul, noGrad, profile, randn, runtimeStats, setFusedLinearPreferred, slice, synchronize, tensor, tidy, toArray,
  type DecodeVariant, type Tensor,
} from '@huatuo/tensor';
import { join } from 'node:path';
import {
  applyLora, configFromPreset, createRandomLlama, generate, KvCache, loadAdapter, loadLlama, mergeAdapter, quantizeModel, removeLora, unmergeAdapter, type LlamaModel, type LoraTargetModule,
} from '@huatuo/llama';
import { assertClose } from '../tensor/helpers.js';
import { fixtureDir, readReference } from './fixtures.js';

const config = configFromPreset('tiny', { hiddenSize: 64, intermediateSize: 176, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2 });
const ROWS = [
  [5, 17, 301, 44, 9, 120, 77],
  [3, 250, 18, 6, 412, 33, 71],
];

type Setup = 'plain' | 'lora q,v' | 'lora all, mixed ranks' | 'int8' | 'nf4' | 'nf4, lora q,v';

const ALL: LoraTargetModule[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
/** Ranks of the mixed adapters, in PEFT target-module order, with rsLoRA's scaling alpha / sqrt(r). */
const MIXED_RANKS = [8, 4, 2, 6, 3, 5, 7];

/** Greedy tokens of `prompts` with the fused decode products preferred or not, and the dispatches they took; leaves the preference set. */
async function greedy(model: LlamaModel, prompts: number[][], maxNewTokens: number, fused: boolean): Promise<{ tokens: (readonly number[])[]; dispatches: number }> {
  setFusedLinearPreferred(fused);
  const before = runtimeStats().dispatches;
  const out = await generate(model, null, prompts, { maxNewTokens });
  return { tokens: out.map((o) => o.tokens), dispatches: runtimeStats().dispatches - before };
}

async function modelFor(setup: Setup): Promise<LlamaModel> {
  const model = createRandomLlama(config, { seed: 3 });
  if (setup === 'int8' || setup === 'nf4' || setup === 'nf4, lora q,v') await quantizeModel(model, setup === 'int8' ? 'int8' : 'nf4');
  if (setup === 'lora q,v' || setup === 'nf4, lora q,v') {
    applyLora(model, { r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj'] }, { seed: 5 });
    // B starts at zero (PEFT's init): give it values, so that the adapter changes the logits.
    for (const l of model.linears()) {
      if (l.lora !== null) l.lora = { ...l.lora, B: keep(noGrad(() => randn([l.outFeatures, l.lora!.A.shape[0]!], { seed: 7 }))) };
    }
  }
  if (setup === 'lora all, mixed ranks') {
    applyLora(model, { r: 4, alpha: 8, targetModules: ALL }, { seed: 5 });
    model.layers.forEach((layer, li) =>
      layer.linears().forEach((l, i) => {
        const r = MIXED_RANKS[i]!;
        const [A, B] = noGrad(() => [keep(mul(randn([r, l.inFeatures], { seed: 40 + 10 * li + i }), 0.3)), keep(mul(randn([l.outFeatures, r], { seed: 80 + 10 * li + i }), 0.3))]);
        const old = l.lora!;
        l.lora = { A: A!, B: B!, scaling: 16 / Math.sqrt(r), dropout: 0.05 };
        old.A.dispose();
        old.B.dispose();
      }),
    );
  }
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

  // Adapted projections keep the fused products: one more dispatch a group (h = norm(x) A^T of its adapters).
  // Quantized bases (int8, NF4) run the same fused products, their weights dequantized as read.
  const fusedCounts = { rmsNorm: 1, ropeCache: 2, fusedLinearAdd: 4, fusedLinearSwiglu: 2, swiglu: 0, add: 0, mul: 0, copyInto: 0, matmul: 1 };
  const quantizedCounts = { rmsNorm: 1, ropeCache: 2, fusedLinearAdd: 4, fusedLinearSwiglu: 2, swiglu: 0, add: 0, mul: 0, copyInto: 0, fusedLoraAdd: 0 };
  const expected: Record<Setup, { counts: Record<string, number>; over?: [Setup, number] }> = {
    plain: { counts: { ...fusedCounts, fusedLinear: 2 } },
    'lora q,v': { counts: { ...fusedCounts, fusedLinear: 4 }, over: ['plain', 2] },
    'lora all, mixed ranks': { counts: { ...fusedCounts, fusedLinear: 10 }, over: ['plain', 8] },
    int8: { counts: { ...quantizedCounts, fusedLinear: 2 } },
    nf4: { counts: { ...quantizedCounts, fusedLinear: 2 } },
    'nf4, lora q,v': { counts: { ...quantizedCounts, fusedLinear: 4 }, over: ['nf4', 2] },
  };
  /** Dispatches of one decoding step, by setup and rows. */
  const totals = new Map<string, number>();
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
          for (const [label, n] of Object.entries(expected[setup].counts)) {
            assert.equal(counts.get(label) ?? 0, n, `${setup}, ${rows.length} rows: ${label} dispatches in one step (${JSON.stringify([...counts])})`);
          }
          const total = [...counts.values()].reduce((a, b) => a + b, 0);
          totals.set(`${setup}|${rows.length}`, total);
          const over = expected[setup].over;
          if (over !== undefined) {
            const base = totals.get(`${over[0]}|${rows.length}`);
            assert.ok(base !== undefined, `${over[0]} runs before ${setup}`);
            assert.equal(total - base, over[1], `${setup}, ${rows.length} rows: dispatches a step over ${over[0]}'s (${JSON.stringify([...counts])})`);
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

  it("packs q and v's B matrices once, again after an in-place write, and frees the pack when the adapter is merged or removed", async (t) => {
    if (wide === undefined) return t.skip('adapter has no fixed subgroup size');
    const model = await modelFor('lora q,v');
    const rows = ROWS.slice(0, 1);
    const ids = tensor(Int32Array.from(rows.flat()), [1, rows[0]!.length]);
    const inUse = async () => {
      await synchronize();
      return runtimeStats().bytesInUse;
    };
    // Per layer, q's B [C, 4] and v's B [Hkv D, 4] in f32, one after the other.
    const packBytes = config.numHiddenLayers * 4 * (config.hiddenSize + config.numKeyValueHeads * config.headDim) * 4;
    try {
      (await cached(model, rows)).logits.dispose(); // packs q and v's B
      noGrad(() => tidy(() => {
        for (const l of model.linears()) if (l.lora !== null) copyInto(slice(l.lora.B, 1, 0, 1), randn([l.outFeatures, 1], { seed: 9 }));
      }));
      const full = noGrad(() => tidy(() => model.forward(ids)));
      const { logits } = await cached(model, rows);
      assertClose(await toArray(logits), await toArray(full), { atol: 2e-5, rtol: 2e-5 }, 'cached vs full logits after the write');
      full.dispose();
      logits.dispose();
      const packed = await inUse();
      // Merging replaces the adapted weights with W + scaling B A, which the pool may hand buffers of another size
      // class (up to twice a request's): what the pack freed is the change in use less the weights' own change.
      const adaptedWeightBytes = () => model.linears().reduce((n, l) => n + (l.lora === null ? 0 : l.parts.reduce((m, w) => m + w.buffer().size, 0)), 0);
      const weightsBefore = adaptedWeightBytes();
      mergeAdapter(model);
      const packFreed = packed - (await inUse()) + (adaptedWeightBytes() - weightsBefore);
      assert.ok(packFreed >= packBytes && packFreed <= 2 * packBytes, `merging frees the packed B matrices (${packFreed} bytes, ${packBytes} packed)`);
      unmergeAdapter(model);
      (await cached(model, rows)).logits.dispose();
      assert.equal((await inUse()) - (adaptedWeightBytes() - weightsBefore), packed, 'unmerged, decoding packs them again');
      const withPack = await inUse();
      const adapterBytes = model.linears().reduce((n, l) => n + (l.lora === null ? 0 : l.lora.A.buffer().size + l.lora.B.buffer().size), 0);
      removeLora(model);
      assert.equal(withPack - (await inUse()), adapterBytes + packFreed, 'removing the adapter frees A, B and the pack');
    } finally {
      ids.dispose();
      model.dispose();
    }
  });

  it('greedy generation with an unmerged adapter (PEFT, r 4 on q and v) gives the same tokens fused as separate, in fewer dispatches', async (t) => {
    if (wide === undefined) return t.skip('adapter has no fixed subgroup size');
    const g = readReference('gqa').generation!;
    const model = await loadLlama(fixtureDir('gqa'));
    try {
      await loadAdapter(model, join(fixtureDir('gqa'), 'adapter'));
      const [separate, fused] = [await greedy(model, g.prompts, g.maxNewTokens, false), await greedy(model, g.prompts, g.maxNewTokens, true)];
      assert.notDeepEqual(separate.tokens, g.greedy, 'the adapter changes the greedy tokens');
      assert.deepEqual(fused.tokens, separate.tokens);
      assert.ok(fused.dispatches < separate.dispatches, `${fused.dispatches} dispatches fused, ${separate.dispatches} separate`);
    } finally {
      setFusedLinearPreferred(true);
      model.dispose();
    }
  });

  for (const format of ['int8', 'nf4'] as const) {
    const adapter = format === 'nf4';
    it(`greedy generation with an ${format} base${adapter ? ' and an unmerged adapter (QLoRA)' : ''} gives the same tokens fused as separate, in fewer dispatches`, async (t) => {
      if (wide === undefined) return t.skip('adapter has no fixed subgroup size');
      const g = readReference('gqa').generation!;
      const model = await loadLlama(fixtureDir('gqa'), { quantize: format });
      try {
        if (adapter) await loadAdapter(model, join(fixtureDir('gqa'), 'adapter'));
        const [separate, fused] = [await greedy(model, g.prompts, g.maxNewTokens, false), await greedy(model, g.prompts, g.maxNewTokens, true)];
        assert.deepEqual(fused.tokens, separate.tokens);
        assert.ok(fused.dispatches < separate.dispatches, `${fused.dispatches} dispatches fused, ${separate.dispatches} separate`);
      } finally {
        setFusedLinearPreferred(true);
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
