// A tiny Mistral checkpoint (model_type "mistral", sliding_window 3, shorter than every sequence;
// head_dim 16 with 4 heads on hidden_size 32) against the PyTorch reference of test/fixtures/llama/mistral-window: logits and loss of a padded
// batch, the KV cache decoding past the window, LoRA logits and gradients, greedy and beam generation,
// and a merged save that stays a Mistral config.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cat, initWebGPU, noGrad, tensor, tidy, toArray, type Tensor } from '@huatuo/tensor';
import { KvCache, LlamaModel, generate, loadAdapter, loadLlama, peftKey, saveMergedModel } from '@huatuo/llama';
import { assertClose } from '../tensor/helpers.js';
import { checkLogits, fixtureDir, readReference } from './fixtures.js';

const NAME = 'mistral-window';
const tol = { atol: 1e-4, rtol: 1e-4 };

function ids2d(rows: number[][]): Tensor {
  return tensor(Int32Array.from(rows.flat()), [rows.length, rows[0]!.length]);
}

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
      const run = (m: LlamaModel) =>
        noGrad(() =>
          tidy(() => {
            const [ids, mask] = [ids2d(ref.ids), ids2d(ref.attentionMask)];
            return { logits: m.forward(ids, { attentionMask: mask }), loss: m.loss(ids, ids2d(ref.labels), mask) };
          }),
        );
      const { logits, loss } = run(model);
      await checkLogits(logits, ref, `${NAME} logits`);
      assertClose([(await toArray(loss))[0]!], [ref.loss], tol, `${NAME} loss`);
      const full = new LlamaModel({ ...model.config, slidingWindow: null }, model.dtype, model.embedParts, model.layers, model.norm, model.lmHead);
      const unwindowed = run(full);
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
    const cache = new KvCache(model.config, 1, row.length, 'f32');
    try {
      const steps: Tensor[] = [];
      noGrad(() => {
        steps.push(tidy(() => model.forward(ids2d([row.slice(0, 2)]), { cache })));
        for (let t = 2; t < row.length; t++) steps.push(tidy(() => model.forward(ids2d([row.slice(t, t + 1)]), { cache })));
      });
      const cached = tidy(() => cat(steps, 1));
      assertClose(await toArray(cached), ref.logits.slice(0, row.length * model.config.vocabSize), tol, 'cached vs reference');
      cached.dispose();
    } finally {
      cache.dispose();
      model.dispose();
    }
  });

  it('gives the reference adapted logits, loss and LoRA gradients (training through the window)', async () => {
    const model = await loadLlama(fixtureDir(NAME));
    try {
      await loadAdapter(model, join(fixtureDir(NAME), 'adapter'));
      const { logits, loss } = tidy(() => {
        const [ids, mask] = [ids2d(ref.ids), ids2d(ref.attentionMask)];
        const loss = model.loss(ids, ids2d(ref.labels), mask);
        loss.backward();
        return { loss, logits: noGrad(() => model.forward(ids, { attentionMask: mask })) };
      });
      await checkLogits(logits, ref.lora, `${NAME} adapted logits`);
      assertClose([(await toArray(loss))[0]!], [ref.lora.loss], tol, `${NAME} adapted loss`);
      let checked = 0;
      for (const layer of model.layers) {
        for (const [target, linear] of [['q_proj', layer.qProj], ['k_proj', layer.kProj], ['v_proj', layer.vProj], ['o_proj', layer.oProj]] as const) {
          for (const m of ['A', 'B'] as const) {
            const key = peftKey(layer.index, target, m);
            assertClose(await toArray(linear.lora![m].grad!), ref.lora.grads[key]!, { atol: 1e-5, rtol: 1e-3 }, `gradient of ${key}`);
            checked++;
          }
        }
      }
      assert.equal(checked, Object.keys(ref.lora.grads).length);
      logits.dispose();
      loss.dispose();
    } finally {
      model.dispose();
    }
  });

  it('greedy decoding of left-padded prompts and 4-beam search give the reference ids', async () => {
    const model = await loadLlama(fixtureDir(NAME));
    const g = ref.generation!;
    try {
      const greedy = await generate(model, null, g.prompts, { maxNewTokens: g.maxNewTokens });
      assert.deepEqual(greedy.map((o) => o.tokens), g.greedy);
      const beam = await generate(model, null, g.prompts, { maxNewTokens: g.beamMaxNewTokens, numBeams: g.numBeams });
      assert.deepEqual(beam.map((o) => o.tokens), g.beam);
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
