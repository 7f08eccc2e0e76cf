// A tiny Mistral checkpoint (model_type "mistral", sliding_window 3, shorter than every sequence;
// head_dim 16 with 4 heads on hidden_size 32) against the PyTorch reference of test/fixtures/llama/mistral-window: logits and loss of a padded
// batch, the KV cache decoding past the window, LoRA logits and gradients, greedy and beam generation,
// and a merged save that stays a Mistral config.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initWebGPU, toArray } from '@huatuo/tensor';
import { LlamaModel, loadAdapter, loadLlama, saveMergedModel } from '@huatuo/llama';
import { assertClose } from '../tensor/helpers.js';
import { checkAdapted, checkGeneration, checkLogits, decodedLogits, fixtureDir, readReference, referenceForward } from './fixtures.js';

const NAME = 'mistral-window';
const tol = { atol: 1e-4, rtol: 1e-4 };

describe('a Mistral checkpoint with a sliding window against the PyTorch reference', () => {
  const ref = readReference(NAME);
  before(async () => {
    await initWebGPU();
  });

  it('loads as a mistral config and gives the reference logits and loss; without the window they differ', async () => {
    const model = await loadLlama(fixtureDir(NAME));
    try {
      assert.equal(model.config.modelType, 'mistral');
      assert.equal(model.config.slidingWindow, 3);
      assert.equal(model.config.headDim, 16); // 4 heads of 16 on a hidden size of 32
      assert.deepEqual(model.layers[0]!.qProj.parts[0]!.shape, [64, 32]);
      const { logits, loss } = referenceForward(model, ref);
      await checkLogits(logits, ref, `${NAME} logits`);
      assertClose([(await toArray(loss))[0]!], [ref.loss], tol, `${NAME} loss`);
      const full = new LlamaModel({ ...model.config, slidingWindow: null }, model.dtype, model.embedParts, model.layers, model.norm, model.lmHead);
      const unwindowed = referenceForward(full, ref);
      const [a, b] = [await toArray(unwindowed.logits), ref.logits];
      assert.ok(a.some((v, i) => Math.abs(v - b[i]!) > 1e-2), 'full causal attention must give other logits than the window');
      for (const t of [logits, loss, unwindowed.logits, unwindowed.loss]) t.dispose();
    } finally {
      model.dispose();
    }
  });

  it('gives the reference logits through the KV cache, one token at a time past the window', async () => {
    const model = await loadLlama(fixtureDir(NAME));
    const row = ref.ids[0]!;
    try {
      assertClose(await decodedLogits(model, [row], 2), ref.logits.slice(0, row.length * model.config.vocabSize), tol, 'cached vs reference');
    } finally {
      model.dispose();
    }
  });

  it('gives the reference adapted logits, loss and LoRA gradients (training through the window)', async () => {
    const model = await loadLlama(fixtureDir(NAME));
    try {
      await loadAdapter(model, join(fixtureDir(NAME), 'adapter'));
      await checkAdapted(model, ref, NAME, (l) => [['q_proj', l.qProj], ['k_proj', l.kProj], ['v_proj', l.vProj], ['o_proj', l.oProj]]);
    } finally {
      model.dispose();
    }
  });

  it('greedy decoding of left-padded prompts and 4-beam search give the reference ids', async () => {
    const model = await loadLlama(fixtureDir(NAME));
    try {
      await checkGeneration(model, ref);
    } finally {
      model.dispose();
    }
  });

  it('a merged save writes a MistralForCausalLM config.json with the sliding window', async () => {
    const model = await loadLlama(fixtureDir(NAME));
    const dir = await mkdtemp(join(tmpdir(), 'mistral-merged-'));
    try {
      await loadAdapter(model, join(fixtureDir(NAME), 'adapter'));
      await saveMergedModel(model, dir);
      const json = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      assert.deepEqual([json['model_type'], json['architectures'], json['sliding_window']], ['mistral', ['MistralForCausalLM'], 3]);
      const back = await loadLlama(dir);
      assert.equal(back.config.slidingWindow, 3);
      back.dispose();
    } finally {
      model.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
