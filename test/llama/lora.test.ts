// LoRA in PEFT's format against the PyTorch reference: adapted logits, loss and the gradients of
// every lora_A / lora_B; frozen base weights; save/load round trips; merging and merged folders.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdamW, copyInto, initWebGPU, noGrad, tensor, tidy, toArray } from '@huatuo/tensor';
import {
  applyLora,
  loadAdapter,
  loadLlama,
  mergeAdapter,
  openSafetensors,
  peftKey,
  removeLora,
  saveAdapter,
  saveMergedModel,
  unmergeAdapter,
  llamaTokenizerDir,
} from '@huatuo/llama';
import { assertClose } from '../tensor/helpers.js';
import { checkLogits, fixtureDir, fixtureNames, ids2d, logitsOf, readReference } from './fixtures.js';

describe('LoRA in PEFT format against the PyTorch reference', () => {
  before(async () => {
    await initWebGPU();
  });

  for (const name of fixtureNames) {
    it(`gives the reference adapted logits, loss and LoRA gradients (${name})`, async () => {
      const ref = readReference(name);
      const model = await loadLlama(fixtureDir(name));
      try {
        await loadAdapter(model, join(fixtureDir(name), 'adapter'));
        const params = model.loraParameters();
        assert.equal(params.length, Object.keys(ref.lora.grads).length);
        const { logits, loss } = tidy(() => {
          const ids = ids2d(ref.ids);
          const mask = ids2d(ref.attentionMask);
          const loss = model.loss(ids, ids2d(ref.labels), mask);
          loss.backward();
          return { loss, logits: noGrad(() => model.forward(ids, { attentionMask: mask })) };
        });
        await checkLogits(logits, ref.lora, `${name} adapted logits`);
        assertClose([(await toArray(loss))[0]!], [ref.lora.loss], { atol: 1e-4, rtol: 1e-4 }, `${name} adapted loss`);
        for (const layer of model.layers) {
          for (const [target, linear] of [['q_proj', layer.qProj], ['k_proj', layer.kProj], ['v_proj', layer.vProj], ['o_proj', layer.oProj], ['gate_proj', layer.gateProj], ['up_proj', layer.upProj], ['down_proj', layer.downProj]] as const) {
            for (const p of linear.parts) {
              assert.equal(p.requiresGrad, false, `${linear.name} base weight must stay frozen`);
              assert.equal(p.grad, null, `${linear.name} base weight must get no gradient`);
            }
            if (linear.lora === null) continue;
            for (const m of ['A', 'B'] as const) {
              const key = peftKey(layer.index, target, m);
              const grad = linear.lora[m].grad;
              assert.ok(grad, `${key} has a gradient`);
              assertClose(await toArray(grad), ref.lora.grads[key]!, { atol: 1e-5, rtol: 1e-3 }, `${name} gradient of ${key}`);
            }
          }
        }
        logits.dispose();
        loss.dispose();
      } finally {
        model.dispose();
      }
    });
  }

  it('AdamW over the LoRA parameters changes only A and B, never the frozen base weights', async () => {
    const ref = readReference('gqa');
    const model = await loadLlama(fixtureDir('gqa'));
    try {
      const params = applyLora(model, { r: 2, alpha: 4, targetModules: ['q_proj', 'v_proj', 'down_proj'] }, { seed: 3 });
      assert.equal(params.length, 2 * 3 * model.config.numHiddenLayers);
      const baseBefore = await toArray(model.layers[0]!.qProj.parts[0]!);
      const bBefore = await toArray(model.layers[0]!.qProj.lora!.B);
      assert.ok(bBefore.every((x) => x === 0), 'lora_B starts at zero as in PEFT');
      const opt = new AdamW(params, { lr: 1e-2 });
      tidy(() => model.loss(ids2d(ref.ids), ids2d(ref.labels), ids2d(ref.attentionMask)).backward());
      opt.step();
      assert.deepEqual(await toArray(model.layers[0]!.qProj.parts[0]!), baseBefore);
      assert.ok((await toArray(model.layers[0]!.qProj.lora!.B)).some((x) => x !== 0), 'lora_B moved');
      opt.dispose();
    } finally {
      model.dispose();
    }
  });

  it('applies LoRA dropout only while training: the loss then varies between steps, and evaluation is deterministic', async () => {
    const ref = readReference('gqa');
    const model = await loadLlama(fixtureDir('gqa'));
    try {
      await loadAdapter(model, join(fixtureDir('gqa'), 'adapter'));
      for (const p of model.linears()) if (p.lora) p.lora = { ...p.lora, dropout: 0.5 };
      const lossOf = async () => {
        const l = noGrad(() => tidy(() => model.loss(ids2d(ref.ids), ids2d(ref.labels), ids2d(ref.attentionMask))));
        const v = (await toArray(l))[0]!;
        l.dispose();
        return v;
      };
      const evalLoss = await lossOf();
      assertClose([evalLoss], [ref.lora.loss], { atol: 1e-4, rtol: 1e-4 }, 'evaluation loss ignores dropout');
      model.training = true;
      const a = await lossOf();
      const b = await lossOf();
      model.training = false;
      assert.notEqual(a, b, 'two training steps draw different dropout masks');
      assert.notEqual(a, evalLoss);
      assert.equal(await lossOf(), evalLoss);
    } finally {
      model.dispose();
    }
  });

  it('saves an adapter with PEFT key names and shapes, and loading it back gives the same outputs', async () => {
    const ref = readReference('tied-odd');
    const dir = await mkdtemp(join(tmpdir(), 'llama-lora-'));
    const model = await loadLlama(fixtureDir('tied-odd'));
    const other = await loadLlama(fixtureDir('tied-odd'));
    try {
      applyLora(model, { r: 3, alpha: 5, targetModules: ['k_proj', 'up_proj'] }, { seed: 9 });
      // Give B non-zero values so the adapter changes the outputs.
      model.loraParameters().forEach((p, i) => {
        const vals = Float32Array.from({ length: p.size }, (_, j) => 0.5 * Math.sin(i * 7 + j));
        noGrad(() => tidy(() => copyInto(p, tensor(vals, p.shape))));
      });
      await saveAdapter(model, dir, 'tied-odd');
      const cfg = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8'));
      assert.equal(cfg.peft_type, 'LORA');
      assert.equal(cfg.r, 3);
      assert.equal(cfg.lora_alpha, 5);
      assert.deepEqual(cfg.target_modules, ['k_proj', 'up_proj']);
      const st = await openSafetensors(join(dir, 'adapter_model.safetensors'));
      const names = st.tensors.map((t) => `${t.name} ${t.dtype} [${t.shape.join(', ')}]`).sort();
      await st.close();
      assert.deepEqual(names, [
        'base_model.model.model.layers.0.mlp.up_proj.lora_A.weight F32 [3, 24]',
        'base_model.model.model.layers.0.mlp.up_proj.lora_B.weight F32 [61, 3]',
        'base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight F32 [3, 24]',
        'base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight F32 [24, 3]',
      ]);
      await loadAdapter(other, dir);
      const a = await logitsOf(model, ref);
      const b = await logitsOf(other, ref);
      const plain = await loadLlama(fixtureDir('tied-odd'));
      const base = await logitsOf(plain, ref);
      plain.dispose();
      assert.deepEqual(b, a);
      assert.ok(a.some((x, i) => Math.abs(x - base[i]!) > 1e-3), 'the adapter changes the logits');
    } finally {
      model.dispose();
      other.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('merged weights give the adapter forward, so does the unmerged model, the base comes back, and a merged folder reloads', async () => {
    const ref = readReference('gqa');
    const dir = await mkdtemp(join(tmpdir(), 'llama-merged-'));
    const model = await loadLlama(fixtureDir('gqa'));
    try {
      const base = await logitsOf(model, ref);
      await loadAdapter(model, join(fixtureDir('gqa'), 'adapter'));
      const adapted = await logitsOf(model, ref);
      const tol = { atol: 1e-4, rtol: 1e-4 };
      const result = await saveMergedModel(model, dir, { maxShardBytes: 40_000, tokenizerDir: llamaTokenizerDir() });
      assert.ok(result.shards.length > 1 && result.index === 'model.safetensors.index.json');
      const files = await readdir(dir);
      for (const f of ['config.json', 'model.safetensors.index.json', 'tokenizer.model', 'tokenizer_config.json']) assert.ok(files.includes(f), `${f} written`);
      mergeAdapter(model);
      assertClose(await logitsOf(model, ref), adapted, tol, 'merged vs adapter forward');
      unmergeAdapter(model);
      assertClose(await logitsOf(model, ref), adapted, tol, 'unmerged (adapter still attached) vs adapter forward');
      removeLora(model);
      assertClose(await logitsOf(model, ref), base, tol, 'base weights restored after unmerging and removing the adapter');
      const reloaded = await loadLlama(dir);
      try {
        assert.equal(reloaded.loraConfig, null);
        assertClose(await logitsOf(reloaded, ref), adapted, tol, 'merged folder vs adapter forward');
      } finally {
        reloaded.dispose();
      }
    } finally {
      model.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses an adapter whose tensors do not match the model, naming the file and tensor', async () => {
    const model = await loadLlama(fixtureDir('tied-odd'));
    try {
      await assert.rejects(loadAdapter(model, join(fixtureDir('gqa'), 'adapter')), /adapter_model\.safetensors.*q_proj\.lora_A\.weight.*shape \[4, 32\], expected \[4, 24\]/);
    } finally {
      model.dispose();
    }
  });
});
