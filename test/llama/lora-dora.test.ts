// PEFT's DoRA (use_dora) on the tiny gqa LLaMA against test/fixtures/lora/dora (scripts/fixtures/make-dora-fixture.py,
// PyTorch autograd in float64 with the weight norm detached): loaded logits, merged and unmerged weights, cached
// decoding, a merged folder, an f16 base, the gradients of A, B and m (with and without gradient checkpointing),
// and a save -> load round trip with PEFT's keys.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initWebGPU, toArray } from '@huatuo/tensor';
import {
  adaptedLinears, applyLora, bytesSource, loadAdapter, loadAdapterFromFiles, loadLlama, mergeAdapter, openSafetensors, peftKey, saveAdapter, saveMergedModel,
  serializeAdapter, serializeSafetensors, unmergeAdapter,
} from '@huatuo/llama';
import { assertClose } from '../tensor/helpers.js';
import { decodedLogits, fixtureDir, logitsOf, lossWithGradients, readReference, safetensorKeys } from './fixtures.js';

const tol = { atol: 1e-4, rtol: 1e-4 };
const DORA = fileURLToPath(new URL('../fixtures/lora/dora/', import.meta.url));
const expected = JSON.parse(readFileSync(join(DORA, 'expected.json'), 'utf8')) as {
  ids: number[][]; attentionMask: number[][]; labels: number[][]; logits: number[]; loss: number; mergedLogits: number[];
  grads: Record<string, number[]>; weightNorms: Record<string, number[]>;
};

const magnitudeKey = (layer: number, group: string, target: string) => `base_model.model.model.layers.${layer}.${group}.${target}.lora_magnitude_vector`;

describe('DoRA adapters (PEFT use_dora)', () => {
  before(async () => {
    await initWebGPU();
  });

  it('a loaded adapter gives the reference logits: unmerged, in cached decoding, merged, unmerged again, and as a merged folder', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lora-dora-merged-'));
    const model = await loadLlama(fixtureDir('gqa'));
    try {
      await loadAdapter(model, DORA);
      assert.equal(model.loraConfig?.useDora, true);
      assert.deepEqual(adaptedLinears(model).map(({ linear }) => linear.isDora), [true, true, true, true, true, true]);
      assertClose(await logitsOf(model, expected), expected.logits, tol, 'DoRA forward vs PyTorch');
      const V = model.config.vocabSize;
      const row0 = expected.logits.slice(0, expected.ids[0]!.length * V);
      for (const fused of [false, true]) {
        assertClose(await decodedLogits(model, [expected.ids[0]!], 2, fused), row0, tol, `cached decoding (fused products ${fused ? 'preferred' : 'off'}) vs PyTorch`);
      }
      mergeAdapter(model);
      assertClose(await logitsOf(model, expected), expected.mergedLogits, tol, 'merged W = (m / ||W + s B A||) (W + s B A) vs PyTorch');
      unmergeAdapter(model);
      assertClose(await logitsOf(model, expected), expected.logits, tol, 'unmerged again');
      await saveMergedModel(model, dir);
      const reloaded = await loadLlama(dir);
      assertClose(await logitsOf(reloaded, expected), expected.mergedLogits, tol, 'merged folder vs PyTorch');
      reloaded.dispose();
    } finally {
      model.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });

  for (const checkpointing of [false, true]) {
    it(`gives the gradients of A, B and m of PyTorch autograd with the weight norm detached${checkpointing ? ', with gradient checkpointing' : ''}`, async () => {
      const model = await loadLlama(fixtureDir('gqa'));
      model.gradientCheckpointing = checkpointing;
      try {
        await loadAdapter(model, DORA);
        const loss = lossWithGradients(model, expected);
        assertClose(await toArray(loss), [expected.loss], tol, 'loss');
        loss.dispose();
        const params = model.loraParameters();
        assert.equal(params.length, 18, 'A, B and m of six modules train');
        for (const { layer, target, linear } of adaptedLinears(model)) {
          const group = linear.name.split('.')[3]!;
          const lora = linear.lora!;
          for (const [key, t] of [[peftKey(layer, target, 'A'), lora.A], [peftKey(layer, target, 'B'), lora.B], [magnitudeKey(layer, group, target), lora.magnitude!]] as const) {
            assert.ok(t.grad !== null, `${key} has a gradient`);
            assertClose(await toArray(t.grad), expected.grads[key]!, { atol: 1e-5, rtol: 1e-3 }, `gradient of ${key}`);
          }
        }
      } finally {
        model.dispose();
      }
    });
  }

  it('on an f16 base: the reference logits unmerged and merged, to f16 precision', async () => {
    const model = await loadLlama(fixtureDir('gqa'), { dtype: 'f16' });
    try {
      await loadAdapter(model, DORA);
      const f16tol = { atol: 2e-2, rtol: 2e-2 };
      assertClose(await logitsOf(model, expected), expected.logits, f16tol, 'f16 DoRA forward vs PyTorch');
      mergeAdapter(model);
      assertClose(await logitsOf(model, expected), expected.mergedLogits, f16tol, 'f16 merged vs PyTorch');
      unmergeAdapter(model);
      assertClose(await logitsOf(model, expected), expected.logits, f16tol, 'f16 unmerged again');
    } finally {
      model.dispose();
    }
  });

  it('saves PEFT keys and config that load back to the same bytes and logits; reads magnitudes saved as ".weight" too', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lora-dora-save-'));
    const model = await loadLlama(fixtureDir('gqa'));
    const other = await loadLlama(fixtureDir('gqa'));
    try {
      await loadAdapter(model, DORA);
      await saveAdapter(model, dir, 'gqa');
      const saved = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      assert.equal(saved['use_dora'], true);
      assert.equal(saved['use_rslora'], true);
      assert.deepEqual(await safetensorKeys(join(dir, 'adapter_model.safetensors')), await safetensorKeys(join(DORA, 'adapter_model.safetensors')));
      await loadAdapter(other, dir);
      const first = await serializeAdapter(model, 'gqa');
      const again = await serializeAdapter(other, 'gqa');
      assert.deepEqual(again.weights, first.weights, 'save -> load -> save is byte-stable');
      assert.equal(again.config, first.config);
      assert.deepEqual(await logitsOf(other, expected), await logitsOf(model, expected));

      // The module's own state-dict name, lora_magnitude_vector.weight, is read as PEFT's loader reads it.
      const st = await openSafetensors(join(DORA, 'adapter_model.safetensors'));
      const tensors = [];
      try {
        for (const t of st.tensors) tensors.push({ name: t.name.endsWith('lora_magnitude_vector') ? `${t.name}.weight` : t.name, dtype: 'F32' as const, shape: t.shape, data: await st.readAs(t.name, 'f32') });
      } finally {
        await st.close();
      }
      const configText = await readFile(join(DORA, 'adapter_config.json'), 'utf8');
      await loadAdapterFromFiles(other, configText, 'adapter_config.json', bytesSource('adapter_model.safetensors', serializeSafetensors(tensors, { metadata: { format: 'pt' } })));
      assertClose(await logitsOf(other, expected), expected.logits, tol, 'magnitudes under ".weight" keys');
      // Without use_dora the magnitudes are refused by name.
      const plain = JSON.stringify({ ...JSON.parse(configText), use_dora: false });
      await assert.rejects(
        loadAdapterFromFiles(other, plain, 'adapter_config.json', bytesSource('adapter_model.safetensors', await readFile(join(DORA, 'adapter_model.safetensors')))),
        /lora_magnitude_vector.*use_dora: true/,
      );
    } finally {
      model.dispose();
      other.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('applyLora with useDora starts m at the row norms of W, so the model is the base until it trains', async () => {
    const model = await loadLlama(fixtureDir('gqa'));
    try {
      const params = applyLora(model, { r: 4, alpha: 8, useRslora: true, useDora: true, targetModules: ['q_proj', 'v_proj', 'down_proj'] }, { seed: 3 });
      assert.deepEqual(params.slice(0, 3).map((p) => p.shape), [[4, 32], [32, 4], [32]]);
      for (const { layer, target, linear } of adaptedLinears(model)) {
        const key = magnitudeKey(layer, linear.name.split('.')[3]!, target);
        assertClose(await toArray(linear.lora!.magnitude!), expected.weightNorms[key]!, { atol: 1e-6, rtol: 1e-6 }, `initial ${key}`);
      }
      const ref = readReference('gqa');
      assertClose(await logitsOf(model, expected), ref.logits, tol, 'fresh DoRA adapter vs base logits');
    } finally {
      model.dispose();
    }
  });
});
