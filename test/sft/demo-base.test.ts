// The demo base's pretraining stand-in: every weight trains (embedding, norms, projections and
// lm_head change) and the language-modelling loss on a few texts falls far below chance.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initWebGPU, toArray } from '@huatuo/tensor';
import { baseParameters, loadBaseModel, pretrainBase } from '@huatuo/sft';
import { SMALL_MODEL } from './trainer-setup.js';

before(async () => {
  await initWebGPU();
});

test('pretraining the demo base trains every weight and takes the loss on its texts far below ln V', async () => {
  const base = await loadBaseModel(null, undefined, { demoConfig: SMALL_MODEL });
  const tok = base.tokenizer;
  const tokenizer = { encode: (t: string, o?: { addBos?: boolean; addEos?: boolean }) => tok.encode(t, o), bosId: tok.bosId, eosId: tok.eosId, padId: 0 };
  const texts = ['感冒了多喝水，注意休息。', '头痛时先休息，必要时就医。', '发烧超过三天应及时就医。', '高血压患者要少吃盐。'];
  const params = baseParameters(base.model);
  const before = await Promise.all(params.map((p) => toArray(p)));
  const history = await pretrainBase(base.model, tokenizer, texts, { steps: 30, batchSize: 4, microBatchSize: 2, learningRate: 1e-2, warmupSteps: 3, cutoffLen: 64, seed: 1 });
  const first = history[0]!.loss!;
  const last = history[history.length - 1]!.loss!;
  assert.ok(Math.abs(first - Math.log(32000)) < 0.3, `the first loss ${first} is chance level, ln 32000 = ${Math.log(32000).toFixed(3)}`);
  assert.ok(last < 0.5 * first, `the loss falls from ${first} to ${last}`);
  const after = await Promise.all(params.map((p) => toArray(p)));
  params.forEach((p, i) => {
    assert.ok(!p.requiresGrad, 'the weights are frozen again afterwards');
    assert.ok(after[i]!.some((v, j) => v !== before[i]![j]), `weight ${i} [${p.shape.join(', ')}] changed`);
  });
  base.model.dispose();
});
