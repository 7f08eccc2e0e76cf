// trainer_state.json carries transformers' TrainerState fields (transformers 4.57.6's trainer_callback.py
// and trainer.py) beside the run's own: epoch fractions, global_step, log_history entries in the
// Trainer's shapes and roundings, best_model_checkpoint (named once its folder exists, a checkpoint set aside by an
// interrupted save included); resumed runs continue log_history once, and checkpoints written before the fields were
// recorded resume with log_history derived from their history.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initWebGPU } from '@huatuo/tensor';
import { resolveConfig, train, trainingSchedule, type HfTrainerState, type TrainConfig, type TrainerState, type TrainResult } from '@huatuo/sft';
import { pythonRound, stepBatches, trainerStateJson } from '@huatuo/sft/internal';
import { smallConfig, smallRecords, smallRun, tmp, writeRecords } from './trainer-setup.js';

type State = TrainerState & HfTrainerState;
type Entry = Record<string, number>;

const roundFixture = fileURLToPath(new URL('../fixtures/sft/python-round.json', import.meta.url));

/** The fields of transformers 4.57.6's TrainerState dataclass. */
const HF_KEYS = new Set(['epoch', 'global_step', 'max_steps', 'logging_steps', 'eval_steps', 'save_steps', 'train_batch_size', 'num_train_epochs', 'num_input_tokens_seen', 'total_flos', 'log_history', 'best_metric', 'best_global_step', 'best_model_checkpoint', 'is_local_process_zero', 'is_world_process_zero', 'is_hyper_param_search', 'trial_name', 'trial_params', 'stateful_callbacks']);

let dataPath: string;

/**
 * 10 training records in micro-batches of 2 with accumulation 2 and --epoch-remainder step (transformers
 * 4.57): 5 micro-batches an epoch read by 3 steps (2, 2 and 1), 6 steps in 2 epochs; logs every 2 steps,
 * evaluations and checkpoints every 3.
 */
function config(outputDir: string, overrides: Record<string, unknown> = {}): TrainConfig {
  return smallConfig(dataPath, outputDir, { epochRemainder: 'step', numEpochs: 2, loggingSteps: 2, evalSteps: 3, saveSteps: 3, ...overrides });
}

/** A run of `c`; `abortAfterStep`: stopped (a checkpoint saved, as Ctrl-C saves one) after that step. */
async function run(c: TrainConfig, options: { resume?: string; stopAfterStep?: number; abortAfterStep?: number } = {}): Promise<TrainResult> {
  const { data, model, base } = await smallRun(c);
  const abort = new AbortController();
  try {
    return await train({
      config: c,
      model,
      train: data.train,
      val: data.val,
      microBatchSize: 2,
      resume: options.resume ?? null,
      stopAfterStep: options.stopAfterStep,
      signal: abort.signal,
      onProgress: (e) => e.kind === 'step' && e.step === options.abortAfterStep && abort.abort(),
    });
  } finally {
    base.model.dispose();
  }
}

const readState = (dir: string) => JSON.parse(readFileSync(join(dir, 'trainer_state.json'), 'utf8')) as State;
const logsOf = (state: State) => state.log_history as unknown as Entry[];
/** Whether `rate` is round(count / runtime, 3) for the runtime that rounded to `runtime` (4 decimals). */
const rateOf = (rate: number, count: number, runtime: number) => Math.abs(rate - count / runtime) <= 5e-4 + (count / runtime) * (5e-5 / runtime) * 1.01;
const kinds = (history: readonly Entry[]) => history.map((e) => [e.step, 'loss' in e ? 'train' : 'eval_loss' in e ? 'eval' : 'end']);

before(async () => {
  await initWebGPU();
  dataPath = writeRecords(tmp(), smallRecords(12));
});

test("pythonRound rounds as Python's round(x, 4) and round(x, 3), exact decimal ties to the even digit", () => {
  const cases = JSON.parse(readFileSync(roundFixture, 'utf8')) as { x: number; round4: number; round3: number }[];
  for (const { x, round4, round3 } of cases) {
    assert.equal(pythonRound(x, 4), round4, `round(${x}, 4)`);
    assert.equal(pythonRound(x, 3), round3, `round(${x}, 3)`);
  }
});

test("each step's epoch is the Trainer's epoch + (micro-batches read in it) / steps_in_epoch, for each --epoch-remainder", () => {
  // 10 records in micro-batches of 2: 5 an epoch, accumulation 2, 2 epochs.
  const epochs = (epochRemainder: string) => {
    const c = resolveConfig({ batchSize: 4, microBatchSize: 2, numEpochs: 2, epochRemainder });
    const schedule = trainingSchedule(c, 10, 2);
    const batchesOf = stepBatches(10, c, schedule, 2);
    return Array.from({ length: schedule.totalSteps }, (_, s) => batchesOf(s).epoch);
  };
  // transformers 4.57: the epoch's fifth micro-batch is a step of its own.
  assert.deepEqual(epochs('step'), [0.4, 0.8, 1, 1.4, 1.8, 2]);
  // transformers 4.28: the fifth is carried into the next epoch's first step, which ends after epoch 1's first micro-batch.
  assert.deepEqual(epochs('carry'), [0.4, 0.8, 1.2, 1.6]);
  assert.deepEqual(epochs('drop'), [0.4, 0.8, 1.4, 1.8]);
});

test("a run's trainer_state.json holds transformers' TrainerState fields with the Trainer's values, its log_history the run's logged losses and rates", async () => {
  const out = tmp();
  const result = await run(config(out));
  const history = result.state.history;
  const trainRow = (step: number) => history.find((r) => r.step === step && r.loss !== undefined)!;
  const evalRow = (step: number) => history.find((r) => r.step === step && r.valLoss !== undefined)!;

  const at3 = readState(join(out, 'checkpoint-3'));
  assert.equal(at3.step, 3, "the run's own fields stay");
  assert.deepEqual([...HF_KEYS].filter((k) => !(k in at3)), [], 'every field of the Trainer is written');
  assert.deepEqual(
    [at3.global_step, at3.epoch, at3.max_steps, at3.logging_steps, at3.eval_steps, at3.save_steps, at3.train_batch_size, at3.num_train_epochs],
    [3, 1, 6, 2, 3, 3, 2, 2],
    'step 3 ends the first epoch: 0 + 5 / 5',
  );
  assert.deepEqual([at3.num_input_tokens_seen, at3.is_local_process_zero, at3.is_world_process_zero, at3.is_hyper_param_search], [0, true, true, false]);
  assert.deepEqual(at3.stateful_callbacks, {
    TrainerControl: { args: { should_training_stop: false, should_epoch_stop: false, should_save: true, should_evaluate: false, should_log: false }, attributes: {} },
  });
  assert.deepEqual(kinds(logsOf(at3)), [[2, 'train'], [3, 'eval']]);
  // Python's types, as the Trainer's save_to_json writes them (trainer-state-json.test.ts checks the format): the epoch
  // 0 + 5 / 5 and total_flos are floats, global_step an int.
  const at3Text = readFileSync(join(out, 'checkpoint-3', 'trainer_state.json'), 'utf8');
  assert.match(at3Text, /^ {2}"epoch": 1\.0,$/m);
  assert.match(at3Text, /^ {2}"total_flos": \d+\.0,$/m);
  assert.match(at3Text, /^ {2}"global_step": 3,$/m);

  const at6 = readState(join(out, 'checkpoint-6'));
  assert.equal(at6.stateful_callbacks.TrainerControl?.args.should_training_stop, true);
  const logs = logsOf(at6);
  assert.deepEqual(kinds(logs), [[2, 'train'], [3, 'eval'], [4, 'train'], [6, 'train'], [6, 'eval']]);
  // epoch + (micro-batches read in the epoch) / 5: steps 2, 3, 4, 6 end after micro-batches 4, 5, 2 and 5.
  assert.deepEqual(logs.map((e) => e.epoch), [0.8, 1, 1.4, 2, 2]);
  for (const e of logs.filter((e) => 'loss' in e)) {
    assert.deepEqual(Object.keys(e), ['epoch', 'grad_norm', 'learning_rate', 'loss', 'step'], 'keys sorted, as save_to_json writes them');
    const row = trainRow(e.step!);
    assert.equal(e.loss, pythonRound(row.loss!, 4), `step ${e.step}: the logged loss rounded to 4 decimals`);
    assert.notEqual(e.loss, row.loss, 'the run keeps its loss unrounded');
    assert.equal(e.learning_rate, row.lr);
    assert.ok(e.grad_norm! > 0 && Number.isFinite(e.grad_norm), `grad_norm ${e.grad_norm}`);
  }
  for (const e of logs.filter((e) => 'eval_loss' in e)) {
    assert.deepEqual(Object.keys(e), ['epoch', 'eval_loss', 'eval_runtime', 'eval_samples_per_second', 'eval_steps_per_second', 'step']);
    assert.equal(e.eval_loss, evalRow(e.step!).valLoss);
    assert.equal(e.eval_runtime, pythonRound(e.eval_runtime!, 4));
    // 2 records in 1 batch of 2.
    assert.ok(rateOf(e.eval_samples_per_second!, 2, e.eval_runtime!) && rateOf(e.eval_steps_per_second!, 1, e.eval_runtime!), JSON.stringify(e));
  }

  const evals = logs.filter((e) => 'eval_loss' in e);
  const best = evals.reduce((a, b) => (b.eval_loss! < a.eval_loss! ? b : a));
  const final = readState(out);
  for (const s of [at6, final]) {
    assert.deepEqual([s.best_metric, s.best_global_step, s.best_model_checkpoint], [best.eval_loss, best.step, join(out, `checkpoint-${best.step}`)]);
  }
  assert.deepEqual([at3.best_metric, at3.best_global_step, at3.best_model_checkpoint], [evals[0]!.eval_loss, 3, join(out, 'checkpoint-3')]);

  // The output folder's state ends with train()'s log, which no checkpoint holds (the Trainer's save_state).
  assert.deepEqual(final.log_history.slice(0, -1), at6.log_history);
  const end = logsOf(final).at(-1)!;
  assert.deepEqual(Object.keys(end), ['epoch', 'step', 'total_flos', 'train_loss', 'train_runtime', 'train_samples_per_second', 'train_steps_per_second']);
  assert.deepEqual([end.total_flos, end.epoch, end.step], [final.total_flos, 2, 6]);
  assert.ok(at3.total_flos > 0 && at3.total_flos < final.total_flos, 'total_flos grows with the micro-batches read (total-flos.test.ts checks its value)');
  const lossSum = [...result.stepLosses.values()].reduce((a, b) => a + b, 0);
  assert.equal(end.train_loss, lossSum / 6, 'the mean of the step losses, unrounded');
  // 10 records x 2 epochs and 6 steps over the runtime.
  assert.ok(rateOf(end.train_samples_per_second!, 20, end.train_runtime!) && rateOf(end.train_steps_per_second!, 6, end.train_runtime!), JSON.stringify(end));
});

/** lr-schedule.json's case of transformers' get_cosine_schedule_with_warmup over 7 steps, 3 of warm-up (scripts/fixtures/make-lr-schedule-fixture.py). */
function cosineSevenSteps(): { peak: number; warmupRatio: number; rates: number[] } {
  const { cases } = JSON.parse(readFileSync(fileURLToPath(new URL('../fixtures/sft/lr-schedule.json', import.meta.url)), 'utf8')) as {
    cases: { lrSchedulerType: string; totalSteps: number; lrSchedulerKwargs: object; peak: number; warmupRatio: number; lrs: number[]; roundedLibmLrs: Record<string, number> }[];
  };
  const c = cases.find((c) => c.lrSchedulerType === 'cosine' && c.totalSteps === 7 && Object.keys(c.lrSchedulerKwargs).length === 0)!;
  // The rate after n scheduler steps, base_lr * lr_lambda(n); where glibc's cos misrounds, the correctly rounded one's.
  return { peak: c.peak, warmupRatio: c.warmupRatio, rates: c.lrs.map((lr, n) => c.roundedLibmLrs[n] ?? lr) };
}

test("the logged learning_rate: the logged step's rate in transformers 4.57 (--epoch-remainder step), the scheduler's get_last_lr() after it stepped for that step in 4.28 (carry)", async () => {
  const { peak, warmupRatio, rates } = cosineSevenSteps();
  const logged = async (epochRemainder: string) => {
    const out = tmp();
    const c = config(out, { epochRemainder, maxSteps: 7, lrSchedulerType: 'cosine', warmupRatio, learningRate: peak, evalSteps: 7, saveSteps: 7 });
    const { state } = await run({ ...c, loadBestModelAtEnd: false });
    const logs = logsOf(readState(out)).filter((e) => 'loss' in e);
    const rows = state.history.filter((r) => r.loss !== undefined);
    assert.deepEqual(rows.map((r) => [r.step, r.lr]), logs.map((e) => [e.step, e.learning_rate]), 'metrics.jsonl logs the same rate');
    return logs.map((e) => [e.step, e.learning_rate]);
  };
  // 4.57.6 reads the rate before lr_scheduler.step(): the rate of the logged step, step - 1 scheduler steps in. The
  // last step, 7, is not a multiple of the logging steps: neither Trainer logs it.
  assert.deepEqual(await logged('step'), [2, 4, 6].map((step) => [step, rates[step - 1]]));
  // 4.28 reads it after: the next step's rate.
  assert.deepEqual(await logged('carry'), [2, 4, 6].map((step) => [step, rates[step]]));
});

test("the logged epoch: transformers 4.28 (--epoch-remainder carry) logs round(epoch, 2), 4.57 (step) the epoch as it is; TrainerState's own epoch is not rounded", async () => {
  // 6 training records in micro-batches of 2: 3 an epoch, so epochs in thirds.
  const sixRecords = writeRecords(tmp(), smallRecords(8));
  const logged = async (epochRemainder: string) => {
    const out = tmp();
    const c = { ...smallConfig(sixRecords, out, { epochRemainder, numEpochs: 2, loggingSteps: 1, evalSteps: 1, saveSteps: 1 }), loadBestModelAtEnd: false };
    const schedule = trainingSchedule(c, 6, 2);
    const batchesOf = stepBatches(6, c, schedule, 2);
    await run(c);
    const epochs = Array.from({ length: schedule.totalSteps }, (_, s) => batchesOf(s).epoch);
    return { epochs, logs: logsOf(readState(out)), first: readState(join(out, 'checkpoint-1')).epoch };
  };
  // carry: floor(3 / 2) = 1 step an epoch; epoch + (step + 1) / steps_in_epoch, as the Trainer adds them.
  const carry = await logged('carry');
  assert.deepEqual(carry.epochs, [0 + 2 / 3, 1 + 1 / 3]);
  assert.deepEqual(carry.logs.map((e) => [e.step, e.epoch]), [[1, 0.67], [1, 0.67], [2, 1.33], [2, 1.33], [2, 1.33]], 'the training, evaluation and end logs');
  assert.equal(carry.first, 2 / 3);
  // step: ceil(3 / 2) = 2 steps an epoch.
  const step = await logged('step');
  assert.deepEqual(step.epochs, [0 + 2 / 3, 0 + 3 / 3, 1 + 2 / 3, 1 + 3 / 3]);
  assert.deepEqual(step.logs.filter((e) => 'loss' in e).map((e) => e.epoch), step.epochs);
  assert.equal(step.first, 2 / 3);
});

test("with --epoch-remainder carry log_history's entries have transformers 4.28.1's keys: its training logs no grad_norm", async () => {
  // transformers 4.28.1's trainer.py: _maybe_log_save_evaluate logs loss and learning_rate, log() adds epoch and step;
  // evaluate() logs eval_loss and speed_metrics('eval', ...); train() ends with speed_metrics('train', ...), total_flos
  // and train_loss. grad_norm joined the training logs in a later transformers.
  const out = tmp();
  await run(config(out, { epochRemainder: 'carry' }));
  const keys = new Map(logsOf(readState(out)).map((e) => [kinds([e])[0]![1], Object.keys(e)]));
  assert.deepEqual(Object.fromEntries(keys), {
    train: ['epoch', 'learning_rate', 'loss', 'step'],
    eval: ['epoch', 'eval_loss', 'eval_runtime', 'eval_samples_per_second', 'eval_steps_per_second', 'step'],
    end: ['epoch', 'step', 'total_flos', 'train_loss', 'train_runtime', 'train_samples_per_second', 'train_steps_per_second'],
  });
  assert.doesNotMatch(readFileSync(join(out, 'checkpoint-3', 'trainer_state.json'), 'utf8'), /grad_norm/);
});

test('without --max-grad-norm the training logs have no grad_norm, and a run that does not load the best model at the end has no best_metric', async () => {
  const out = tmp();
  await run({ ...config(out, { maxGradNorm: 0 }), loadBestModelAtEnd: false }, { stopAfterStep: 3 });
  const state = readState(join(out, 'checkpoint-3'));
  assert.deepEqual(Object.keys(logsOf(state)[0]!), ['epoch', 'learning_rate', 'loss', 'step']);
  assert.deepEqual([state.best_metric, state.best_global_step, state.best_model_checkpoint], [null, null, null]);
});

test('a resumed run continues log_history from its checkpoint: the entries logged after it are not repeated', async () => {
  const out = tmp();
  // Stopping after step 4 leaves checkpoint-3 and a log of step 4, as a kill after step 4 would.
  await run(config(out), { stopAfterStep: 4 });
  assert.deepEqual(kinds(logsOf(readState(out))), [[2, 'train'], [3, 'eval'], [4, 'train'], [4, 'end']]);
  const resumed = await run(config(out), { resume: 'latest' });
  const logs = logsOf(readState(join(out, 'checkpoint-6')));
  assert.deepEqual(kinds(logs), [[2, 'train'], [3, 'eval'], [4, 'train'], [6, 'train'], [6, 'eval']]);
  assert.deepEqual(logs.slice(0, 2), readState(join(out, 'checkpoint-3')).log_history, "the checkpoint's entries as they were");
  // The Trainer's first log after a resume averages the steps since the resumed global_step: step 4 alone.
  assert.equal(logs[2]!.loss, pythonRound(resumed.stepLosses.get(4)!, 4));
  assert.deepEqual(kinds(logsOf(readState(out))), [...kinds(logs), [6, 'end']]);
});

test("a checkpoint written before transformers' fields were recorded resumes exactly, with log_history derived from its history", async () => {
  const reference = await run(config(tmp()));
  const out = tmp();
  await run(config(out), { stopAfterStep: 3 });
  const dir = join(out, 'checkpoint-3');
  const written = readState(dir);
  writeFileSync(join(dir, 'trainer_state.json'), JSON.stringify(Object.fromEntries(Object.entries(written).filter(([k]) => !HF_KEYS.has(k))), null, 1));

  const resumed = await run(config(out), { resume: dir });
  for (let s = 4; s <= 6; s++) assert.equal(resumed.stepLosses.get(s), reference.stepLosses.get(s), `step ${s} continues the run exactly`);
  const state = readState(join(out, 'checkpoint-6'));
  const [log2, eval3] = logsOf(state);
  const old = logsOf(written);
  assert.deepEqual(log2, { loss: old[0]!.loss, learning_rate: old[0]!.learning_rate, epoch: 0.8, step: 2 }, 'derived from the history: no grad_norm');
  assert.deepEqual(eval3, { eval_loss: old[1]!.eval_loss, epoch: 1, step: 3 }, 'derived from the history: no timings');
  assert.deepEqual(kinds(logsOf(state)), [[2, 'train'], [3, 'eval'], [4, 'train'], [6, 'train'], [6, 'eval']]);
  assert.deepEqual([state.global_step, state.epoch, state.max_steps], [6, 2, 6]);
  const best = logsOf(state).filter((e) => 'eval_loss' in e).reduce((a, b) => (b.eval_loss! < a.eval_loss! ? b : a));
  assert.deepEqual([state.best_metric, state.best_model_checkpoint], [best.eval_loss, join(out, `checkpoint-${best.step}`)]);
});

test('best_model_checkpoint names the best step\'s checkpoint when a save finds it set aside as checkpoint-N.old by an interrupted save of its step', async () => {
  const out = tmp();
  await run(config(out), { stopAfterStep: 3 });
  const dir = join(out, 'checkpoint-3');
  // Written before transformers' fields were recorded (best_model_checkpoint left for the next save to name), then set
  // aside as a save of step 3 over it leaves it when interrupted before its new checkpoint is in.
  const written = readState(dir);
  writeFileSync(join(dir, 'trainer_state.json'), JSON.stringify(Object.fromEntries(Object.entries(written).filter(([k]) => !HF_KEYS.has(k))), null, 1));
  renameSync(dir, `${dir}.old`);

  // Resumed from it and stopped after step 4 (no evaluation there), which saves checkpoint-4.
  const resumed = await run(config(out), { resume: 'latest', abortAfterStep: 4 });
  assert.deepEqual([resumed.interrupted, resumed.state.step], [true, 4]);
  const at4 = readState(join(out, 'checkpoint-4'));
  assert.deepEqual([at4.best_metric, at4.best_global_step, at4.best_model_checkpoint], [written.best_metric, 3, dir]);
  assert.ok(existsSync(join(dir, 'adapter_model.safetensors')) && !existsSync(`${dir}.old`), 'the save put checkpoint-3 back');
});

test('a run resumed with --epoch-remainder carry keeps the log_history entries of its checkpoint as they were written, grad_norm included, and appends 4.28\'s', async () => {
  // transformers 4.28.1's _inner_training_loop replaces its state by TrainerState.load_from_json(checkpoint's
  // trainer_state.json), log_history as it is, and log() appends each new entry: it rewrites no earlier one.
  const c = config(tmp(), { epochRemainder: 'carry', evalSteps: 2, saveSteps: 2 });
  const out = c.outputDir;
  // carry: floor(5 / 2) = 2 steps an epoch, 4 in all; checkpoints at 2 and 4.
  await run(c, { stopAfterStep: 2 });
  const dir = join(out, 'checkpoint-2');
  // As this trainer wrote a carry run's checkpoints before their training logs had 4.28's keys: with the step's grad_norm.
  const older = readState(dir);
  const olderLogs = logsOf(older).map((e, i) => ('loss' in e ? { ...e, grad_norm: 0.125 + i } : e));
  assert.deepEqual(kinds(olderLogs), [[2, 'train'], [2, 'eval']]);
  writeFileSync(join(dir, 'trainer_state.json'), trainerStateJson({ ...older, log_history: olderLogs }));

  await run(c, { resume: dir });
  const at4 = logsOf(readState(join(out, 'checkpoint-4')));
  assert.deepEqual(at4.slice(0, 2), olderLogs, "the checkpoint's entries as they were, grad_norm included");
  assert.deepEqual(kinds(at4), [[2, 'train'], [2, 'eval'], [4, 'train'], [4, 'eval']]);
  assert.deepEqual(Object.keys(at4[2]!), ['epoch', 'learning_rate', 'loss', 'step'], "the resumed run's own entries have 4.28's keys");
  assert.deepEqual(logsOf(readState(out)).slice(0, -1), at4, "the output folder's state holds the same, then train()'s last log");
});
