// An epoch's leftover micro-batches (--epoch-remainder), against the Hugging Face Trainer's loop.
// transformers 4.28 (_inner_training_loop; HuaTuo trained with its 4.28.0.dev0): num_update_steps_per_epoch =
// max(len_dataloader // gradient_accumulation_steps, 1), max_steps = ceil(num_train_epochs * that); the
// micro-batch counter total_batched_samples runs across epochs and a step is taken when it is a multiple of
// the accumulation, or at an epoch's end when steps_in_epoch <= gradient_accumulation_steps; model.zero_grad()
// follows a step only, so an epoch's leftover gradients carry into the next epoch's first step; every loss
// is divided by gradient_accumulation_steps; training stops when global_step reaches max_steps.
// transformers 4.57.6 (set_initial_training_values, _inner_training_loop, training_step): num_update_steps_per_epoch =
// max(ceil(len_dataloader / gradient_accumulation_steps), 1); each epoch ends with a step of its
// steps_in_epoch % gradient_accumulation_steps remainder micro-batches (do_sync_step at (step + 1) ==
// steps_in_epoch), each loss divided by current_gradient_accumulation_steps = len(batch_samples).
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initWebGPU } from '@huatuo/tensor';
import { CheckpointError, chunkOrder, DEFAULT_CONFIG, epochOrder, learningRateAt, resolveConfig, train, trainingSchedule, type ProgressEvent, type TrainConfig, type TrainResult } from '@huatuo/sft';
import { accumulateGradients, stepBatches } from '@huatuo/sft/internal';
import { smallConfig, smallRecords, smallRun, tmp, writeRecords } from './trainer-setup.js';

/** transformers' get_linear_schedule_with_warmup: base_lr * lr_lambda(step). */
function hfLinear(step: number, total: number, warmup: number, peak: number): number {
  const factor = step < warmup ? step / Math.max(1, warmup) : Math.max(0, (total - step) / Math.max(1, total - warmup));
  return peak * factor;
}

/** Each step's micro-batches and loss divisor, and the micro-batches at [epoch, index] pairs to compare them with. */
function plan(config: TrainConfig, nTrain: number, microBatchSize: number) {
  const schedule = trainingSchedule(config, nTrain, microBatchSize);
  const batchesOf = stepBatches(nTrain, config, schedule, microBatchSize);
  const steps = Array.from({ length: schedule.totalSteps }, (_, s) => batchesOf(s));
  const at = (pairs: [number, number][][]) => pairs.map((step) => step.map(([epoch, index]) => chunkOrder(epochOrder(nTrain, config.seed, epoch), microBatchSize)[index]));
  return { chunks: steps.map((s) => s.chunks), divisors: steps.map((s) => s.lossDivisor), total: schedule.totalSteps, warmup: schedule.warmupSteps, at };
}

const recipe = (overrides: Record<string, unknown>) => resolveConfig({ batchSize: 4, microBatchSize: 2, numEpochs: 3, learningRate: 3e-4, seed: 7, ...overrides });

test('carry (transformers 4.28): 5 micro-batches per epoch with accumulation 2 give floor(5 / 2) = 2 steps per epoch, 6 in all, the leftover going into the next epoch\'s first step', () => {
  const { chunks, divisors, total, warmup, at } = plan(recipe({ epochRemainder: 'carry' }), 10, 2);
  assert.equal(total, 6);
  assert.equal(warmup, 1, 'ceil(6 x 0.1)');
  assert.deepEqual(chunks, at([
    [[0, 0], [0, 1]],
    [[0, 2], [0, 3]],
    [[0, 4], [1, 0]],
    [[1, 1], [1, 2]],
    [[1, 3], [1, 4]],
    [[2, 0], [2, 1]],
  ]));
  assert.deepEqual(divisors, [2, 2, 2, 2, 2, 2], 'every loss divided by gradient_accumulation_steps');
  const schedule = trainingSchedule(recipe({ epochRemainder: 'carry' }), 10, 2);
  assert.deepEqual(
    Array.from({ length: 6 }, (_, s) => learningRateAt(s, schedule, 3e-4)),
    Array.from({ length: 6 }, (_, s) => hfLinear(s, 6, 1, 3e-4)),
  );
});

test('step (transformers 4.57.6): the same epochs give ceil(5 / 2) = 3 steps per epoch, 9 in all, each epoch ending with a step of its one leftover micro-batch divided by 1', () => {
  const config = recipe({ epochRemainder: 'step' });
  const { chunks, divisors, total, warmup, at } = plan(config, 10, 2);
  assert.equal(total, 9);
  assert.equal(warmup, 1, 'ceil(9 x 0.1)');
  const epoch = (e: number): [number, number][][] => [[[e, 0], [e, 1]], [[e, 2], [e, 3]], [[e, 4]]];
  assert.deepEqual(chunks, at([...epoch(0), ...epoch(1), ...epoch(2)]));
  assert.deepEqual(divisors, [2, 2, 1, 2, 2, 1, 2, 2, 1], 'current_gradient_accumulation_steps = len(batch_samples)');
  const schedule = trainingSchedule(config, 10, 2);
  assert.deepEqual(
    Array.from({ length: 9 }, (_, s) => learningRateAt(s, schedule, 3e-4)),
    Array.from({ length: 9 }, (_, s) => hfLinear(s, 9, 1, 3e-4)),
  );
});

test('drop leaves each epoch\'s leftover micro-batch out: 2 steps per epoch, 6 in all', () => {
  const { chunks, divisors, at } = plan(recipe({ epochRemainder: 'drop' }), 10, 2);
  const epoch = (e: number): [number, number][][] => [[[e, 0], [e, 1]], [[e, 2], [e, 3]]];
  assert.deepEqual(chunks, at([...epoch(0), ...epoch(1), ...epoch(2)]));
  assert.deepEqual(divisors, [2, 2, 2, 2, 2, 2]);
});

test('an epoch of fewer micro-batches than the accumulation: 4.28 steps at its end and then on the run\'s micro-batch count, 4.57.6 once per epoch', () => {
  // 3 micro-batches per epoch, accumulation 4, 2 epochs: max(3 // 4, 1) = 1 step per epoch, 2 in all.
  const carry = plan(recipe({ batchSize: 8, numEpochs: 2, epochRemainder: 'carry' }), 6, 2);
  assert.equal(carry.total, 2);
  // total_batched_samples: 1, 2, 3 (epoch end, steps_in_epoch 3 <= 4: a step), then 4 % 4 == 0: a step of one micro-batch, and max_steps is reached.
  assert.deepEqual(carry.chunks, carry.at([[[0, 0], [0, 1], [0, 2]], [[1, 0]]]));
  assert.deepEqual(carry.divisors, [4, 4]);
  const step = plan(recipe({ batchSize: 8, numEpochs: 2, epochRemainder: 'step' }), 6, 2);
  assert.equal(step.total, 2);
  assert.deepEqual(step.chunks, step.at([[[0, 0], [0, 1], [0, 2]], [[1, 0], [1, 1], [1, 2]]]));
  assert.deepEqual(step.divisors, [3, 3]);
});

test("HuaTuo's data: 8,158 records at micro-batch 8 (accumulation 16) run 630 steps with carry and drop, 640 with step; at its own micro-batch 128 (no accumulation) 640 with each", () => {
  for (const [epochRemainder, total] of [['carry', 630], ['drop', 630], ['step', 640]] as const) {
    assert.equal(trainingSchedule({ ...DEFAULT_CONFIG, epochRemainder }, 8158, 8).totalSteps, total, epochRemainder);
    assert.equal(trainingSchedule({ ...DEFAULT_CONFIG, epochRemainder }, 8158, 128).totalSteps, 640, `${epochRemainder} at 128`);
  }
  assert.equal(DEFAULT_CONFIG.epochRemainder, 'step');
  // With carry every step reads 16 micro-batches; the run reads 630 x 16 = 10,080 of the 10 epochs' 10,200, in order.
  const config = { ...DEFAULT_CONFIG, epochRemainder: 'carry' as const, seed: 42 };
  const schedule = trainingSchedule(config, 8158, 8);
  const batchesOf = stepBatches(8158, config, schedule, 8);
  const epoch0 = chunkOrder(epochOrder(8158, 42, 0), 8);
  const epoch1 = chunkOrder(epochOrder(8158, 42, 1), 8);
  assert.deepEqual(batchesOf(62).chunks, epoch0.slice(992, 1008));
  assert.deepEqual(batchesOf(63).chunks, [...epoch0.slice(1008), ...epoch1.slice(0, 4)], 'step 64 reads epoch 1\'s last 12 micro-batches and epoch 2\'s first 4');
  assert.deepEqual(batchesOf(629).chunks, chunkOrder(epochOrder(8158, 42, 9), 8).slice(884, 900), 'the last step reads micro-batches 10,064 to 10,079 of the run: epoch 10\'s 885th to 900th');
});

let dataPath: string;
let shortEpochData: string;
before(async () => {
  await initWebGPU();
  dataPath = writeRecords(tmp(), smallRecords(12));
  shortEpochData = writeRecords(tmp(), smallRecords(8));
});

async function run(config: TrainConfig, options: { resume?: string; stopAfterStep?: number; events?: ProgressEvent[] } = {}): Promise<TrainResult> {
  const { data, model, base } = await smallRun(config);
  try {
    return await train({ config, model, train: data.train, val: data.val, microBatchSize: 2, resume: options.resume ?? null, stopAfterStep: options.stopAfterStep, onProgress: (e) => options.events?.push(e) });
  } finally {
    base.model.dispose();
  }
}

test('a run with --epoch-remainder step plans 3 steps per epoch and steps at the linear rates of 30; a carry run resumed across an epoch boundary repeats its losses; a resume with another choice is refused', async () => {
  // 10 training records, micro-batch 2, accumulation 2: 5 micro-batches per epoch.
  const events: ProgressEvent[] = [];
  const stepped = await run(smallConfig(dataPath, tmp(), { epochRemainder: 'step' }), { stopAfterStep: 4, events });
  assert.equal(stepped.state.totalSteps, 30);
  const lrs = events.filter((e) => e.kind === 'step').map((e) => e.lr);
  assert.deepEqual(lrs, [0, 1, 2, 3].map((s) => hfLinear(s, 30, 3, 3e-3)));

  const full = await run(smallConfig(dataPath, tmp()), { stopAfterStep: 10 });
  assert.equal(full.state.totalSteps, 20);
  const out = tmp();
  await run(smallConfig(dataPath, out), { stopAfterStep: 5 });
  const dir = join(out, 'checkpoint-5');
  const resumed = await run(smallConfig(dataPath, out), { resume: dir, stopAfterStep: 10 });
  for (let s = 6; s <= 10; s++) assert.equal(resumed.stepLosses.get(s), full.stepLosses.get(s), `step ${s}`);

  await assert.rejects(run(smallConfig(dataPath, out, { epochRemainder: 'step' }), { resume: dir }), (e: unknown) => {
    assert.ok(e instanceof CheckpointError, String(e));
    assert.match(e.message, /--epoch-remainder carry there, step here/);
    return true;
  });
});

test('the default, step: a run resumed from checkpoint-5 across the end of its second epoch (step 6 reads its one leftover micro-batch) repeats the uninterrupted losses', async () => {
  const config = (outputDir: string) => smallConfig(dataPath, outputDir, { epochRemainder: DEFAULT_CONFIG.epochRemainder });
  const uninterrupted = await run(config(tmp()), { stopAfterStep: 8 });
  assert.equal(uninterrupted.state.totalSteps, 30);
  const out = tmp();
  await run(config(out), { stopAfterStep: 5 });
  const resumed = await run(config(out), { resume: join(out, 'checkpoint-5'), stopAfterStep: 8 });
  assert.deepEqual([...resumed.stepLosses.keys()], [6, 7, 8]);
  for (let s = 6; s <= 8; s++) assert.equal(resumed.stepLosses.get(s), uninterrupted.stepLosses.get(s), `step ${s}`);
});

test('a checkpoint written before --epoch-remainder dropped the leftovers: resuming it with carry is refused, with drop it continues exactly', async () => {
  const uninterrupted = await run(smallConfig(dataPath, tmp(), { epochRemainder: 'drop' }), { stopAfterStep: 8 });
  const out = tmp();
  await run(smallConfig(dataPath, out, { epochRemainder: 'drop' }), { stopAfterStep: 5 });
  const dir = join(out, 'checkpoint-5');
  const statePath = join(dir, 'trainer_state.json');
  const state = JSON.parse(readFileSync(statePath, 'utf8')) as { recipe: Record<string, unknown> };
  delete state.recipe.epochRemainder;
  writeFileSync(statePath, JSON.stringify(state));
  await assert.rejects(run(smallConfig(dataPath, out), { resume: dir }), (e: unknown) => e instanceof CheckpointError && /--epoch-remainder drop there, carry here\. Resume with --epoch-remainder drop/.test(e.message));
  const resumed = await run(smallConfig(dataPath, out, { epochRemainder: 'drop' }), { resume: dir, stopAfterStep: 8 });
  for (let s = 6; s <= 8; s++) assert.equal(resumed.stepLosses.get(s), uninterrupted.stepLosses.get(s), `step ${s}`);
});

/**
 * The sum of the mean losses of step `step`'s micro-batches (its dropout masks drawn as the trainer draws them)
 * on the initial adapter, or on the adapter of `checkpoint`.
 */
async function microBatchLosses(config: TrainConfig, step: number, checkpoint?: string): Promise<{ sum: number; count: number }> {
  const { data, model, base } = await smallRun(config);
  try {
    if (checkpoint) await model.loadAdapter(checkpoint);
    const schedule = trainingSchedule(config, data.train.length, 2);
    const { chunks } = stepBatches(data.train.length, config, schedule, 2)(step);
    const { parts: [weightedSum], weight } = accumulateGradients({ config, model, examples: data.train, chunks, accumulation: schedule.gradientAccumulationSteps, step }, 1);
    assert.equal(weight, chunks.length, 'every micro-batch has answer tokens');
    return { sum: await weightedSum!.item(), count: chunks.length };
  } finally {
    base.model.dispose();
  }
}

const close = (got: number | undefined, want: number, what: string) => assert.ok(got !== undefined && Math.abs(got - want) <= 1e-12 * Math.abs(want), `${what}: ${got}, expected ${want}`);

test("the reported loss of an epoch shorter than the accumulation: carry reports 4.28's tr_loss, each micro-batch's loss divided by the accumulation (3/4 of the mean at the epoch's end, a quarter of the next step's one micro-batch), step 4.57.6's mean", async () => {
  // 6 training records, micro-batch 2, accumulation 4: 3 micro-batches an epoch, one step an epoch, 2 in all.
  const config = (epochRemainder: string, outputDir = tmp()) => smallConfig(shortEpochData, outputDir, { batchSize: 8, numEpochs: 2, loggingSteps: 2, evalSteps: 1, saveSteps: 1, epochRemainder });
  const out = tmp();
  const events: ProgressEvent[] = [];
  const carry = await run(config('carry', out), { events });
  assert.equal(carry.state.totalSteps, 2);
  const first = await microBatchLosses(config('carry'), 0);
  assert.equal(first.count, 3);
  close(carry.stepLosses.get(1), first.sum / 4, 'step 1 (micro-batches 1-3 of epoch 1, each divided by 4)');
  const second = await microBatchLosses(config('carry'), 1, join(out, 'checkpoint-1'));
  assert.equal(second.count, 1);
  close(carry.stepLosses.get(2), second.sum / 4, "step 2 (epoch 2's first micro-batch, divided by 4)");
  // The Trainer's logged loss: tr_loss over the steps since the last log.
  const logged = events.filter((e) => e.kind === 'log');
  assert.deepEqual(logged.map((e) => e.step), [2]);
  close(logged[0]!.loss, (carry.stepLosses.get(1)! + carry.stepLosses.get(2)!) / 2, 'the log of step 2');
  assert.equal((carry.state.history.find((row) => 'loss' in row) as { loss: number }).loss, logged[0]!.loss);

  const step = await run(config('step'), {});
  close(step.stepLosses.get(1), first.sum / 3, 'step: step 1, its 3 micro-batches divided by their count');
});

test("step (4.57.6): an epoch's remainder step of one micro-batch reports its loss, divided by its count 1", async () => {
  // 10 training records, micro-batch 2, accumulation 2: step 3 reads epoch 1's fifth micro-batch alone.
  const out = tmp();
  const config = (outputDir: string) => smallConfig(dataPath, outputDir, { epochRemainder: 'step', evalSteps: 1, saveSteps: 1 });
  const result = await run(config(out), { stopAfterStep: 3 });
  const remainder = await microBatchLosses(config(tmp()), 2, join(out, 'checkpoint-2'));
  assert.equal(remainder.count, 1);
  close(result.stepLosses.get(3), remainder.sum, 'step 3');
});
