// PEFT's modules_to_save (trained copies of embed_tokens and lm_head saved beside LoRA) on the tiny gqa LLaMA against
// test/fixtures/lora/modules-to-save (scripts/fixtures/make-modules-to-save-fixture.py, PyTorch in float64): an adapter
// trained on a vocabulary resized from 128 to 136 pieces loads with its own vocabulary, gives the reference logits
// (also decoded with the cache, merged, and as a merged folder, which generate then matches), the gradients of every
// trained tensor and AdamW's steps; it saves back with PEFT's keys; modules and bases it cannot serve are refused by name.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AdamW, hasF16, initWebGPU, resetPeakBytes, runtimeStats, synchronize, tensor, tidy, toArray, type Tensor } from '@huatuo/tensor';
import {
  adaptedLinears, applyLora, bytesSource, configFromPreset, createRandomLlama, generate, inferencePlan, planMemory, type LoraTargetModule, loadAdapter, loadAdapterFromFiles, loadLlama, mergeAdapter, openSafetensors, parsePeftConfig, peftKey,
  saveAdapter, saveMergedModel, serializeAdapter, serializeSafetensors, toPeftConfigJson, unmergeAdapter, type LlamaModel,
} from '@huatuo/llama';
import { assertClose } from '../tensor/helpers.js';
import { adamWSteps, decodedLogits, fixtureDir, logitsOf, lossWithGradients, readReference, safetensorKeys } from './fixtures.js';

const tol = { atol: 1e-4, rtol: 1e-4 };
const SAVED = fileURLToPath(new URL('../fixtures/lora/modules-to-save/', import.meta.url));
const expected = JSON.parse(readFileSync(join(SAVED, 'expected.json'), 'utf8')) as {
  vocabSize: number; ids: number[][]; attentionMask: number[][]; labels: number[][]; logits: number[]; loss: number; grads: Record<string, number[]>;
  steps: { steps: number; lr: number; maxGradNorm: number; losses: number[]; finalLoss: number; weights: Record<string, number[]> };
};
const EMBED = 'base_model.model.model.embed_tokens.weight';
const HEAD = 'base_model.model.lm_head.weight';

/** The adapter's trained tensors by PEFT key: A and B of each adapted projection, then the two copies (whole). */
async function trainedByKey(model: LlamaModel, of: (t: Tensor) => Tensor | null): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const { layer, target, linear } of adaptedLinears(model)) {
    out.set(peftKey(layer, target, 'A'), (await toArray(of(linear.lora!.A)!)) as Float32Array);
    out.set(peftKey(layer, target, 'B'), (await toArray(of(linear.lora!.B)!)) as Float32Array);
  }
  for (const [key, parts] of [[EMBED, model.savedModules.embedTokens!], [HEAD, model.savedModules.lmHead!.parts]] as const) {
    const arrays = await Promise.all(parts.map(async (p) => (await toArray(of(p)!)) as Float32Array));
    const all = new Float32Array(arrays.reduce((s, a) => s + a.length, 0));
    let at = 0;
    for (const a of arrays) {
      all.set(a, at);
      at += a.length;
    }
    out.set(key, all);
  }
  return out;
}

describe("PEFT's modules_to_save: trained embed_tokens and lm_head", () => {
  before(async () => {
    await initWebGPU();
  });

  it('an adapter on a resized vocabulary loads with it and gives the reference logits: unmerged, decoded with the cache, merged, and as a merged folder', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'modules-to-save-merged-'));
    const model = await loadLlama(fixtureDir('gqa'));
    try {
      assert.equal(model.config.vocabSize, 128);
      await loadAdapter(model, SAVED);
      assert.deepEqual(model.loraConfig?.modulesToSave, ['embed_tokens', 'lm_head']);
      assert.equal(model.config.vocabSize, expected.vocabSize, "the adapter's vocabulary replaces the base's");
      assertClose(await logitsOf(model, expected), expected.logits, tol, 'forward with the trained copies vs PyTorch');
      const row0 = expected.logits.slice(0, expected.ids[0]!.length * expected.vocabSize);
      for (const fused of [false, true]) {
        assertClose(await decodedLogits(model, [expected.ids[0]!], 2, fused), row0, tol, `cached decoding (fused products ${fused ? 'preferred' : 'off'}) vs PyTorch`);
      }
      mergeAdapter(model);
      assertClose(await logitsOf(model, expected), expected.logits, tol, 'merged');
      unmergeAdapter(model);
      await saveMergedModel(model, dir);
      const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      assert.equal(config['vocab_size'], expected.vocabSize, "the merged folder's config.json has the adapter's vocabulary");
      assert.ok((await safetensorKeys(join(dir, 'model.safetensors'))).includes(`model.embed_tokens.weight ${expected.vocabSize}x32`));
      const reloaded = await loadLlama(dir);
      assert.equal(reloaded.loraConfig, null);
      assertClose(await logitsOf(reloaded, expected), expected.logits, tol, 'merged folder (a plain model) vs PyTorch');
      reloaded.dispose();
    } finally {
      model.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('generate decodes with the copies as with the merged folded model: greedy (picks on the GPU), sampled and beam search, also with the copies split into parts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'modules-to-save-generate-'));
    const adapted = await loadLlama(fixtureDir('gqa'));
    const split = await loadLlama(fixtureDir('gqa'), { maxBindingBytes: 4096 });
    try {
      await loadAdapter(adapted, SAVED);
      await loadAdapter(split, SAVED);
      await saveMergedModel(adapted, dir);
      const merged = await loadLlama(dir);
      try {
        const prompts = [[1, 130, 37, 128], [1, 135, 46]];
        for (const options of [{}, { doSample: true, temperature: 0.8, seed: 3 }, { numBeams: 3 }]) {
          const want = (await generate(merged, null, prompts, { maxNewTokens: 8, eosTokenIds: [], ...options })).map((o) => o.tokens);
          for (const [what, model] of [['unsplit', adapted], ['split', split]] as const) {
            const got = (await generate(model, null, prompts, { maxNewTokens: 8, eosTokenIds: [], ...options })).map((o) => o.tokens);
            assert.deepEqual(got, want, `${JSON.stringify(options)}, copies ${what}`);
          }
        }
      } finally {
        merged.dispose();
      }
    } finally {
      adapted.dispose();
      split.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });

  for (const split of [false, true]) {
    it(`gives PyTorch's gradients of A, B and both trained copies${split ? ', with the copies split into parts along the vocabulary' : ''}`, async () => {
      // 4096 bytes per buffer: each f32 copy (136 x 32) is held in five parts.
      const model = await loadLlama(fixtureDir('gqa'), split ? { maxBindingBytes: 4096 } : {});
      try {
        await loadAdapter(model, SAVED);
        if (split) assert.equal(model.savedModules.embedTokens!.length, 5);
        const loss = lossWithGradients(model, expected);
        assertClose(await toArray(loss), [expected.loss], tol, 'loss');
        loss.dispose();
        const params = model.loraParameters();
        assert.ok(params.every((p) => p.dtype === 'f32' && p.requiresGrad), 'every trained tensor is an f32 leaf');
        const grads = await trainedByKey(model, (t) => t.grad);
        assert.equal(grads.size, Object.keys(expected.grads).length);
        for (const [key, g] of grads) assertClose(g, expected.grads[key]!, { atol: 1e-5, rtol: 1e-3 }, `gradient of ${key}`);
      } finally {
        model.dispose();
      }
    });
  }

  it("AdamW over A, B and the copies takes PyTorch's steps (global-norm clipping, no weight decay)", async () => {
    const model = await loadLlama(fixtureDir('gqa'));
    const steps = expected.steps;
    try {
      await loadAdapter(model, SAVED);
      const losses = await adamWSteps(model, expected, steps);
      assertClose(losses, [...steps.losses, steps.finalLoss], { atol: 1e-4, rtol: 1e-4 }, 'losses');
      for (const [key, w] of await trainedByKey(model, (t) => t)) assertClose(w, steps.weights[key]!, { atol: 1e-4, rtol: 1e-3 }, `${key} after ${steps.steps} steps`);
    } finally {
      model.dispose();
    }
  });

  it('on an f16 base the copies stay f32 leaves: reference logits and gradients to f16 precision', async () => {
    const model = await loadLlama(fixtureDir('gqa'), { dtype: 'f16' });
    try {
      await loadAdapter(model, SAVED);
      assert.equal(model.savedModules.embedTokens![0]!.dtype, 'f32');
      assert.equal(model.savedModules.lmHead!.parts[0]!.dtype, 'f32');
      const f16tol = { atol: 2e-2, rtol: 2e-2 };
      assertClose(await logitsOf(model, expected), expected.logits, f16tol, 'f16 forward vs PyTorch');
      const loss = lossWithGradients(model, expected);
      assertClose(await toArray(loss), [expected.loss], f16tol, 'f16 loss');
      loss.dispose();
      const grads = await trainedByKey(model, (t) => t.grad);
      // The gradients come back through f16 activations, each op rounding at 2^-11: single entries of the embedding's
      // land up to ~3e-3 from f32 PyTorch's, with the root mean square of the errors about 3e-4.
      for (const key of [EMBED, HEAD]) {
        const [got, want] = [grads.get(key)!, expected.grads[key]!];
        assertClose(got, want, { atol: 4e-3, rtol: 5e-2 }, `f16 gradient of ${key}`);
        const rms = Math.sqrt(want.reduce((s, w, i) => s + (got[i]! - w) ** 2, 0) / want.length);
        assert.ok(rms < 5e-4, `f16 gradient of ${key}: root mean square error ${rms}`);
      }
    } finally {
      model.dispose();
    }
  });

  it('on an NF4 base the copies load and train beside the quantized projections, and the merged f16 folder computes what the adapted model computes', async (t) => {
    if (!hasF16()) return t.skip('needs shader-f16');
    const dir = await mkdtemp(join(tmpdir(), 'modules-to-save-nf4-'));
    const model = await loadLlama(fixtureDir('gqa'), { quantize: 'nf4' });
    try {
      await loadAdapter(model, SAVED);
      assert.equal(model.quantization, 'nf4');
      const adapted = await logitsOf(model, expected);
      const loss = lossWithGradients(model, expected);
      loss.dispose();
      assert.ok(model.loraParameters().every((p) => p.grad !== null), 'A, B and both copies have gradients');
      await saveMergedModel(model, dir);
      const merged = await loadLlama(dir, { dtype: 'f16' });
      try {
        assert.equal(merged.config.vocabSize, expected.vocabSize);
        assertClose(await logitsOf(merged, expected), adapted, { atol: 2e-2, rtol: 2e-2 }, 'merged f16 folder vs the adapted NF4 model');
      } finally {
        merged.dispose();
      }
    } finally {
      model.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("saves PEFT's keys and config, which load back to the same bytes and logits", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'modules-to-save-adapter-'));
    const model = await loadLlama(fixtureDir('gqa'));
    const other = await loadLlama(fixtureDir('gqa'));
    try {
      await loadAdapter(model, SAVED);
      await saveAdapter(model, dir, 'gqa');
      const config = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      assert.deepEqual(config['modules_to_save'], ['embed_tokens', 'lm_head']);
      assert.deepEqual(await safetensorKeys(join(dir, 'adapter_model.safetensors')), await safetensorKeys(join(SAVED, 'adapter_model.safetensors')));
      await loadAdapter(other, dir);
      const first = await serializeAdapter(model, 'gqa');
      const again = await serializeAdapter(other, 'gqa');
      assert.deepEqual(again.weights, first.weights, 'save -> load -> save is byte-stable');
      assert.deepEqual(await logitsOf(other, expected), await logitsOf(model, expected));
    } finally {
      model.dispose();
      other.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('applyLora with modulesToSave starts the copies at the base (selected by name suffix, as PEFT does), so the model is the base until it trains', async () => {
    const model = await loadLlama(fixtureDir('gqa'));
    try {
      const ref = readReference('gqa');
      const run = { ...expected, ids: ref.ids, attentionMask: ref.attentionMask };
      const params = applyLora(model, { r: 4, alpha: 8, targetModules: ['q_proj'], modulesToSave: ['tokens', 'lm_head'] }, { seed: 3 });
      assert.equal(params.length, 2 * 2 + 2, 'A and B of two layers, then the two copies');
      assert.deepEqual(params.slice(4).map((p) => [p.dtype, p.shape, p.requiresGrad]), [['f32', [128, 32], true], ['f32', [128, 32], true]]);
      assertClose(await logitsOf(model, run), ref.logits, tol, 'fresh adapter with copies vs base logits');
      assert.deepEqual(toPeftConfigJson(model.loraConfig!)['modules_to_save'], ['tokens', 'lm_head']);
      const { config } = await serializeAdapter(model);
      assert.deepEqual(parsePeftConfig(JSON.parse(config), 'adapter_config.json').modulesToSave, ['tokens', 'lm_head']);
    } finally {
      model.dispose();
    }
  });

  it('refuses, naming the file, modules that cannot be saved whole, a tied base, and weights that do not fit the config', async () => {
    const model = await loadLlama(fixtureDir('gqa'));
    const tied = await loadLlama(fixtureDir('tied-odd'));
    const configText = await readFile(join(SAVED, 'adapter_config.json'), 'utf8');
    const withConfig = (fields: Record<string, unknown>) => JSON.stringify({ ...JSON.parse(configText), ...fields });
    const st = await openSafetensors(join(SAVED, 'adapter_model.safetensors'));
    const tensors: { name: string; dtype: 'F32'; shape: readonly number[]; data: Float32Array }[] = [];
    try {
      for (const t of st.tensors) tensors.push({ name: t.name, dtype: 'F32', shape: t.shape, data: await st.readAs(t.name, 'f32') });
    } finally {
      await st.close();
    }
    const weights = (keep: (name: string) => boolean) => bytesSource('adapter_model.safetensors', serializeSafetensors(tensors.filter((t) => keep(t.name)), { metadata: { format: 'pt' } }));
    try {
      await assert.rejects(loadAdapterFromFiles(model, withConfig({ modules_to_save: ['norm'] }), 'adapter_config.json', weights(() => true)), /adapter_config\.json.*modules_to_save entry "norm" selects .*layernorm.*only embed_tokens and lm_head/);
      await assert.rejects(loadAdapterFromFiles(model, withConfig({ modules_to_save: ['score'] }), 'adapter_config.json', weights(() => true)), /modules_to_save entry "score" names no module/);
      assert.throws(() => applyLora(tied, { modulesToSave: ['lm_head'] }), /tie_word_embeddings is true.*leave modulesToSave out/);
      await assert.rejects(loadAdapterFromFiles(model, withConfig({ modules_to_save: null }), 'adapter_config.json', weights(() => true)), /lm_head\.weight" is a trained copy of lm_head .*add "lm_head"/);
      await assert.rejects(
        loadAdapterFromFiles(model, withConfig({ modules_to_save: ['embed_tokens'] }), 'adapter_config.json', weights((n) => n !== HEAD)),
        /embed_tokens\.weight" has 136 rows, but the base's vocabulary has 128.*add "lm_head" to modules_to_save/,
      );
      await assert.rejects(loadAdapterFromFiles(model, configText, 'adapter_config.json', weights((n) => n !== EMBED)), /embed_tokens\.weight" is missing; adapter_config\.json's modules_to_save names embed_tokens/);
      assert.equal(model.config.vocabSize, 128, 'a refused adapter leaves the base as it was');
    } finally {
      model.dispose();
      tied.dispose();
    }
  });
});

describe('the memory plan with modules_to_save', () => {
  before(async () => {
    await initWebGPU();
  });

  it('counts the two f32 copies, their gradients and AdamW moments, and is within 10 % of the measured peak of a training step where they dominate', async (t) => {
    // LLaMA's 32000 pieces at width 64: each f32 copy is 7.8 MiB, the two decoder layers 0.2 MiB.
    const config = configFromPreset('tiny');
    const [B, T] = [1, 64];
    const lora = { r: 8, targetModules: ['q_proj', 'v_proj'] as LoraTargetModule[] };
    const without = planMemory(config, { batchSize: B, seqLen: T, lora });
    const plan = planMemory(config, { batchSize: B, seqLen: T, lora: { ...lora, modulesToSave: { embedTokens: true, lmHead: true } } });
    const copy = config.vocabSize * config.hiddenSize * 4;
    assert.equal(plan.lora - without.lora, 2 * copy);
    assert.equal(plan.gradients - without.gradients, 2 * copy);
    assert.equal(plan.optimizer - without.optimizer, 4 * copy);

    const model = createRandomLlama(config, { seed: 1 });
    try {
      const params = applyLora(model, { ...lora, alpha: 16, modulesToSave: ['embed_tokens', 'lm_head'] }, { seed: 1 });
      const opt = new AdamW(params, { lr: 1e-3 });
      const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 7919 + 13) % config.vocabSize);
      const step = () => {
        model.training = true;
        tidy(() => model.loss(tensor(ids, [B, T]), tensor(ids, [B, T])).backward());
        model.training = false;
        opt.step();
        opt.zeroGrad();
      };
      step(); // AdamW's moments exist from the first step on, as the plan counts them
      await synchronize();
      resetPeakBytes();
      step();
      await synchronize();
      const measured = runtimeStats().peakBytes;
      const ratio = plan.total / measured;
      t.diagnostic(`plan ${plan.total} B, measured ${measured} B, ratio ${ratio.toFixed(3)}`);
      assert.ok(Math.abs(ratio - 1) <= 0.1, `plan ${plan.total} B, measured peak ${measured} B (ratio ${ratio.toFixed(3)})`);
      opt.dispose();
      const inference = inferencePlan(model, 1, 16);
      const plain = planMemory(config, { batchSize: 1, seqLen: 16, training: false, lastPositionLogits: true, lora: { ...lora, merged: false, useDora: false } });
      assert.equal(inference.lora - plain.lora, 2 * copy, 'the inference plan of a model with copies counts them');
    } finally {
      model.dispose();
    }
  });
});
