// A step whose micro-batches hold no answer token (records cut before their answer). In transformers (4.28 and
// 4.57.6) each micro-batch's loss is NaN (CrossEntropyLoss's mean over no token; with num_items_in_batch, 0 / 0),
// which _inner_training_loop's logging_nan_inf_filter (on by default) replaces in the logged tr_loss by
// tr_loss / (1 + global_step - _globalstep_last_logged), micro-batch by micro-batch; the step still counts.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initWebGPU } from '@huatuo/tensor';
import { train, trainingSchedule, type TokenizedExample, type TrainConfig } from '@huatuo/sft';
import { pythonRound, stepBatches } from '@huatuo/sft/internal';
import { smallConfig, smallRecords, smallRun, tmp, writeRecords } from './trainer-setup.js';

let dataPath: string;

before(async () => {
  await initWebGPU();
  dataPath = writeRecords(tmp(), smallRecords(12));
});

/** Runs two steps of micro-batches of 2 (accumulation 2), step 2's records without answer tokens (every label -100). */
async function runWithEmptySecondStep(config: TrainConfig) {
  const { data, model, base } = await smallRun(config);
  try {
    const batchesOf = stepBatches(data.train.length, config, trainingSchedule(config, data.train.length, 2), 2);
    const cut = new Set(batchesOf(1).chunks.flat());
    const examples: TokenizedExample[] = data.train.map((e, i) => (cut.has(i) ? { ...e, labels: e.labels.map(() => -100) } : e));
    const logged: number[] = [];
    const result = await train({ config, model, train: examples, val: [], microBatchSize: 2, onProgress: (e) => e.kind === 'log' && logged.push(e.loss!) });
    return { result, logged };
  } finally {
    base.model.dispose();
  }
}

test("a step without answer tokens adds to the logged loss what the Trainer's NaN filter adds: tr_loss / (1 + steps since the last log) for each of its micro-batches", async () => {
  const { result, logged } = await runWithEmptySecondStep(smallConfig(dataPath, tmp(), { maxSteps: 2, loggingSteps: 2, evalSteps: 2, saveSteps: 2 }));
  const first = result.stepLosses.get(1)!;
  // tr_loss holds step 1's loss; each of step 2's two NaN micro-batches adds tr_loss / (1 + 1).
  let trLoss = first;
  for (let i = 0; i < 2; i++) trLoss += trLoss / (1 + 1);
  assert.ok(Math.abs(result.stepLosses.get(2)! - (trLoss - first)) <= 1e-12 * trLoss, `step 2 adds ${result.stepLosses.get(2)}, the Trainer ${trLoss - first}`);
  assert.equal(result.state.step, 2, 'the step counts');
  assert.equal(pythonRound(logged[0]!, 4), pythonRound(trLoss / 2, 4));
  const log = result.state.log_history![0] as { loss: number; step: number };
  assert.deepEqual([log.step, log.loss], [2, pythonRound(trLoss / 2, 4)]);
});

test('right after a log the filter adds 0: a step without answer tokens logs loss 0', async () => {
  const { result, logged } = await runWithEmptySecondStep(smallConfig(dataPath, tmp(), { maxSteps: 2, loggingSteps: 1, evalSteps: 2, saveSteps: 2 }));
  assert.ok(result.stepLosses.get(1)! > 0);
  assert.deepEqual([result.stepLosses.get(2), logged[1]], [0, 0]);
});
