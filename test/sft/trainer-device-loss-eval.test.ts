// A device lost during an evaluation (between the step and its checkpoint) is reported like one
// lost in a step: a TrainingError saying where the run stood and which checkpoint to resume from.
// In its own file: the process has no usable device afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { initWebGPU } from '@huatuo/tensor';
import { listCheckpoints, train, TrainingError, type TrainableModel } from '@huatuo/sft';
// The runtime's GPUDevice is internal to @huatuo/tensor; the test reaches it to destroy it.
import { getRuntime } from '@huatuo/tensor/internal';
import { smallConfig, smallRecords, smallRun, tmp, writeRecords } from './trainer-setup.js';

test('destroying the device in the evaluation after step 4 stops the run with a TrainingError naming it and --resume checkpoint-2', async () => {
  await initWebGPU();
  const out = tmp();
  const config = smallConfig(writeRecords(tmp(), smallRecords(12)), out, { saveSteps: 2, evalSteps: 2 });
  const { data, model } = await smallRun(config);
  let evalCalls = 0;
  const losing: TrainableModel = {
    get trainableParameters() {
      return model.trainableParameters;
    },
    saveAdapter: (dir) => model.saveAdapter(dir),
    loadAdapter: (dir) => model.loadAdapter(dir),
    loss(batch, options) {
      const loss = model.loss(batch, options);
      // One validation micro-batch per evaluation (2 records, micro-batch 2): the second is after step 4.
      if (!options.training && ++evalCalls === 2) getRuntime().device.destroy();
      return loss;
    },
  };
  await assert.rejects(train({ config, model: losing, train: data.train, val: data.val, microBatchSize: 2 }), (e: unknown) => {
    assert.ok(e instanceof TrainingError, `a TrainingError, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
    assert.match(e.message, /device/i);
    assert.match(e.message, /evaluation after step 4 of 20/);
    assert.ok(e.message.includes(`--resume ${join(out, 'checkpoint-2')}`), `names the checkpoint to resume from: ${e.message}`);
    return true;
  });
  assert.deepEqual((await listCheckpoints(out)).map((c) => c.step), [2]);
});
