// The demonstration's stand-in base: training every weight on the full texts of a few demo
// records changes every weight and takes the language-modelling loss far below chance.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initWebGPU, toArray } from '@huatuo/tensor';
import { DEMO_DATA_PATH, MED_TEMPLATE, baseParameters, demoBaseTexts, loadBaseModel, loadRecords, pretrainDemoBase } from '@huatuo/sft';
import { SMALL_MODEL } from './trainer-setup.js';

before(async () => {
  await initWebGPU();
});

test('the demo texts are each record prompt followed by its answer', async () => {
  const { records } = await loadRecords(DEMO_DATA_PATH);
  const [text] = demoBaseTexts(records.slice(0, 1), MED_TEMPLATE);
  assert.ok(text!.startsWith(MED_TEMPLATE.promptNoInput.split('{')[0]!), text);
  assert.ok(text!.includes(records[0]!.instruction) && text!.endsWith(records[0]!.output), text);
});

test('pretraining the demo base on 2 demo records trains every weight and takes the loss far below ln V', async () => {
  const base = await loadBaseModel(null, undefined, { demoConfig: SMALL_MODEL });
  const { records } = await loadRecords(DEMO_DATA_PATH);
  const params = baseParameters(base.model);
  const before = await Promise.all(params.map((p) => toArray(p)));
  const history = await pretrainDemoBase(base, records.slice(0, 2), MED_TEMPLATE, { steps: 30, batchSize: 2, microBatchSize: 2, learningRate: 2e-2, warmupSteps: 3, cutoffLen: 256, seed: 1 });
  const first = history[0]!.loss!;
  const last = history[history.length - 1]!.loss!;
  assert.ok(Math.abs(first - Math.log(32000)) < 0.3, `the first loss ${first} is chance level, ln 32000 = ${Math.log(32000).toFixed(3)}`);
  assert.ok(last < 0.4 * first, `the loss falls from ${first} to ${last}`);
  const after = await Promise.all(params.map((p) => toArray(p)));
  params.forEach((p, i) => {
    assert.ok(!p.requiresGrad, 'the weights are frozen again afterwards');
    assert.ok(after[i]!.some((v, j) => v !== before[i]![j]), `weight ${i} [${p.shape.join(', ')}] changed`);
  });
  base.model.dispose();
});
