// A lost GPU device (GPUDevice.lost, here by destroying the runtime's device in the middle of a
// step) stops training with a TrainingError naming the step reached and the checkpoint to resume
// from. In its own file: the process has no usable device afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { initWebGPU } from '@huatuo/tensor';
import { listCheckpoints, readCheckpoint, train, TrainingError, type TrainableModel } from '@huatuo/sft';
// The runtime's GPUDevice is internal to @huatuo/tensor; the test reaches it to destroy it.
import { getRuntime } from '@huatuo/tensor/internal';
import { smallConfig, smallRecords, smallRun, tmp, writeRecords } from './trainer-setup.js';

test('destroying the device during step 5 stops the run with a TrainingError naming step 5 and --resume checkpoint-4', async () => {
  await initWebGPU();
  const out = tmp();
  const config = smallConfig(writeRecords(tmp(), smallRecords(12)), out, { saveSteps: 2, evalSteps: 2 });
  const { data, model } = await smallRun(config);
  let calls = 0;
  const losing: TrainableModel = {
    get trainableParameters() {
      return model.trainableParameters;
    },
    saveAdapter: (dir) => model.saveAdapter(dir),
    loadAdapter: (dir) => model.loadAdapter(dir),
    loss(batch, options) {
      const loss = model.loss(batch, options);
      if (options.training && Math.floor(calls++ / 2) + 1 === 5) getRuntime().device.destroy();
      return loss;
    },
  };
  await assert.rejects(train({ config, model: losing, train: data.train, val: data.val, microBatchSize: 2 }), (e: unknown) => {
    assert.ok(e instanceof TrainingError, `a TrainingError, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
    assert.match(e.message, /device/i);
    assert.match(e.message, /step 5 of 20/);
    assert.ok(e.message.includes(`--resume ${join(out, 'checkpoint-4')}`), `names the checkpoint to resume from: ${e.message}`);
    return true;
  });
  assert.deepEqual((await listCheckpoints(out)).map((c) => c.step), [2, 4]);
  assert.equal((await readCheckpoint(join(out, 'checkpoint-4'))).state.step, 4);
});
