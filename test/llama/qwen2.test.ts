// Tiny Qwen2 checkpoints (model_type "qwen2": biases on q_proj, k_proj and v_proj; use_sliding_window false
// with a sliding_window shorter than the batch, which must stay unused) against the PyTorch reference of
// scripts/fixtures/make-qwen2-fixtures.py: qwen2-bias (untied lm_head, safetensors) and qwen2-tied-bin (tied
// embeddings, a pytorch_model.bin). Logits and loss of a padded batch, the KV cache one token at a time, LoRA on
// q and v (logits, loss, gradients of A and B), greedy and beam ids, and a merged save that keeps the biases.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { add, copyInto, initWebGPU, keep, mul, noGrad, randn, setFusedLinearPreferred, tensor, tidy, toArray } from '@huatuo/tensor';
import { applyLora, configFromPreset, createRandomLlama, generate, loadAdapter, loadLlama, saveMergedModel, type LlamaModel } from '@huatuo/llama';
import { assertClose } from '../tensor/helpers.js';
import { checkAdapted, checkGeneration, checkLogits, decodedLogits, fixtureDir, ids2d, readReference, referenceForward } from './fixtures.js';

const tol = { atol: 1e-4, rtol: 1e-4 };

function biasedProjections(model: LlamaModel) {
  return model.layers.flatMap((l) => [l.qProj, l.kProj, l.vProj]);
}

for (const NAME of ['qwen2-bias', 'qwen2-tied-bin']) {
  describe(`the Qwen2 checkpoint ${NAME} against the PyTorch reference`, () => {
    const ref = readReference(NAME);
    before(async () => {
      await initWebGPU();
    });

    it('loads as a qwen2 config with q/k/v biases and gives the reference logits and loss; without the biases they differ', async () => {
      const model = await loadLlama(fixtureDir(NAME));
      try {
        assert.equal(model.config.modelType, 'qwen2');
        assert.equal(model.config.slidingWindow, null);
        assert.equal(model.config.tieWordEmbeddings, NAME === 'qwen2-tied-bin');
        for (const l of biasedProjections(model)) assert.deepEqual(l.bias?.shape, [l.outFeatures], `${l.name}.bias`);
        for (const l of model.layers.flatMap((l) => [l.oProj, l.gateProj, l.upProj, l.downProj])) assert.equal(l.bias, null, `${l.name} has no bias`);
        const { logits, loss } = referenceForward(model, ref);
        await checkLogits(logits, ref, `${NAME} logits`);
        assertClose([(await toArray(loss))[0]!], [ref.loss], tol, `${NAME} loss`);
        const biases = biasedProjections(model).map((l) => l.bias);
        for (const l of biasedProjections(model)) l.bias = null;
        const unbiased = referenceForward(model, ref);
        biasedProjections(model).forEach((l, i) => (l.bias = biases[i]!));
        const [a, b] = [await toArray(unbiased.logits), ref.logits];
        assert.ok(a.some((v, i) => Math.abs(v - b[i]!) > 1e-2), 'the projections without their biases must give other logits');
        for (const t of [logits, loss, unbiased.logits, unbiased.loss]) t.dispose();
      } finally {
        model.dispose();
      }
    });

    it('gives the reference logits through the KV cache, one token at a time, with the fused decode products or without', async () => {
      const model = await loadLlama(fixtureDir(NAME));
      const row = ref.ids[0]!;
      try {
        for (const fused of [false, true]) {
          assertClose(await decodedLogits(model, [row], 2, fused), ref.logits.slice(0, row.length * model.config.vocabSize), tol, `cached (fused ${fused}) vs reference`);
        }
      } finally {
        model.dispose();
      }
    });

    it('with the PEFT adapter on q and v gives the reference logits, loss and LoRA gradients (the biases frozen)', async () => {
      const model = await loadLlama(fixtureDir(NAME));
      try {
        await loadAdapter(model, join(fixtureDir(NAME), 'adapter'));
        await checkAdapted(model, ref, NAME, (l) => [['q_proj', l.qProj], ['v_proj', l.vProj]]);
        for (const linear of model.layers.flatMap((l) => [l.qProj, l.vProj])) assert.equal(linear.bias!.grad, null, `${linear.name}.bias gets no gradient`);
        // Decoding with the adapter (its update on the biased projections fused or not) gives the adapted logits too.
        const row = ref.ids[0]!;
        for (const fused of [false, true]) {
          assertClose(await decodedLogits(model, [row], 1, fused), ref.lora.logits.slice(0, row.length * model.config.vocabSize), tol, `adapted, cached (fused ${fused}) vs reference`);
        }
      } finally {
        model.dispose();
      }
    });

    it('greedy decoding of left-padded prompts and 4-beam search give the reference ids', async () => {
      const model = await loadLlama(fixtureDir(NAME));
      const g = ref.generation!;
      try {
        await checkGeneration(model, ref);
        setFusedLinearPreferred(true);
        try {
          const fused = await generate(model, null, g.prompts, { maxNewTokens: g.maxNewTokens });
          assert.deepEqual(fused.map((o) => o.tokens), g.greedy, 'greedy with the fused decode products');
        } finally {
          setFusedLinearPreferred(null);
        }
      } finally {
        model.dispose();
      }
    });

    it('a merged save keeps the biases as they are, writes Qwen2ForCausalLM, and loads back to the adapted logits', async () => {
      const model = await loadLlama(fixtureDir(NAME));
      const dir = await mkdtemp(join(tmpdir(), 'qwen2-merged-'));
      try {
        await loadAdapter(model, join(fixtureDir(NAME), 'adapter'));
        await saveMergedModel(model, dir);
        const json = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
        assert.deepEqual([json['model_type'], json['architectures'], json['use_sliding_window']], ['qwen2', ['Qwen2ForCausalLM'], false]);
        const back = await loadLlama(dir);
        try {
          assert.equal(back.config.tieWordEmbeddings, model.config.tieWordEmbeddings);
          const [saved, original] = [biasedProjections(back), biasedProjections(model)];
          for (let i = 0; i < saved.length; i++) assert.deepEqual(await toArray(saved[i]!.bias!), await toArray(original[i]!.bias!), `${saved[i]!.name}.bias`);
          const logits = noGrad(() => tidy(() => back.forward(ids2d(ref.ids), { attentionMask: ids2d(ref.attentionMask) })));
          await checkLogits(logits, ref.lora, `${NAME} merged logits`);
          logits.dispose();
        } finally {
          back.dispose();
        }
      } finally {
        model.dispose();
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
}

describe('a Qwen2 checkpoint quantized while loading', () => {
  before(async () => {
    await initWebGPU();
  });

  it('keeps the biases in the model dtype beside the int8 projections: logits near the reference', async () => {
    const ref = readReference('qwen2-bias');
    const model = await loadLlama(fixtureDir('qwen2-bias'), { quantize: 'int8' });
    try {
      assert.equal(model.quantization, 'int8');
      for (const l of biasedProjections(model)) assert.deepEqual([l.bias?.shape, l.bias?.dtype], [[l.outFeatures], 'f32'], `${l.name}.bias`);
      const logits = noGrad(() => tidy(() => model.forward(ids2d(ref.ids), { attentionMask: ids2d(ref.attentionMask) })));
      // int8's rounding moves these logits by about 0.02; without the biases they move by more than 3.
      assertClose(await toArray(logits), ref.logits, { atol: 0.06, rtol: 0 }, 'int8 logits');
      logits.dispose();
    } finally {
      model.dispose();
    }
  });
});

describe('a biased projection under DoRA', () => {
  before(async () => {
    await initWebGPU();
  });

  it("adds the bias after DoRA's rescaling, unscaled (PEFT subtracts it from the base output before rescaling)", async () => {
    const model = createRandomLlama(configFromPreset('tiny', { modelType: 'qwen2', bosTokenId: 1, eosTokenId: 2 }), { seed: 1 });
    try {
      applyLora(model, { r: 4, alpha: 8, useDora: true, targetModules: ['q_proj'] }, { seed: 2 });
      const q = model.layers[0]!.qProj;
      const bias = q.bias!;
      noGrad(() => {
        // B non-zero and m away from ||W||, so that DoRA's factor is not 1.
        const old = q.lora!;
        q.lora = { ...old, B: keep(randn([q.outFeatures, 4], { seed: 3 })), magnitude: keep(mul(old.magnitude!, 1.5)) };
        old.B.dispose();
        old.magnitude!.dispose();
        copyInto(bias, randn([q.outFeatures], { seed: 4 }));
      });
      const x = tensor(Float32Array.from({ length: 3 * q.inFeatures }, (_, i) => Math.sin(i)), [1, 3, q.inFeatures]);
      const [withBias, withoutBias] = noGrad(() => {
        const a = keep(q.forward(x));
        q.bias = null;
        const b = keep(add(q.forward(x), bias));
        q.bias = bias;
        return [a, b];
      });
      assertClose(await toArray(withBias), await toArray(withoutBias), { atol: 1e-5, rtol: 1e-5 }, 'DoRA output with the bias');
      withBias.dispose();
      withoutBias.dispose();
      x.dispose();
    } finally {
      model.dispose();
    }
  });
});
