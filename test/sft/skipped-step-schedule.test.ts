// Mixed-precision steps whose f16 gradients overflow are skipped, and the learning-rate schedule counts
// the optimizer steps taken, as the Trainer's scheduler (transformers steps it only where the optimizer
// ran) and torch's AdamW (stepped only by GradScaler.step on finite gradients) do; checkpoints keep the count.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hasF16, initWebGPU } from '@huatuo/tensor';
import { attachLora, CheckpointError, learningRateAt, loadBaseModel, prepareData, train, trainingSchedule, type ProgressEvent, type TrainConfig, type TrainerState } from '@huatuo/sft';
import { parseTrainerStateJson } from '@huatuo/sft/internal';
import { SMALL_MODEL, smallConfig, smallRecords, tmp, writeRecords } from './trainer-setup.js';

const STEPS = 8;
const PEAK = 3e-3;
// The small model's scaled f16 gradients overflow above about 2^19 (the bound depends on the batch and the
// weights), so the first steps are skipped as the scale backs off, and some later ones at 2^19.
const INIT_SCALE = 2 ** 21;

let dataPath: string;
/** The uninterrupted run: every step's event, a checkpoint after every step, the final adapter. */
let whole: { out: string; events: ProgressEvent[]; state: TrainerState };

before(async () => {
  await initWebGPU();
  dataPath = writeRecords(tmp(), smallRecords(12));
  if (!hasF16()) return;
  const out = tmp();
  const { events, state } = await run(recipe(out));
  whole = { out, events, state };
});

/**
 * Linear decay after a 2-step warm-up over 8 steps, so neighbouring steps' rates differ; a checkpoint after
 * every step, and the final adapter the last step's (a resumed run in another folder lacks the earlier checkpoints).
 */
const recipe = (out: string): TrainConfig => ({
  ...smallConfig(dataPath, out, { maxSteps: STEPS, evalSteps: 1, saveSteps: 1, warmupSteps: 2, learningRate: PEAK, precision: 'mixed' }),
  loadBestModelAtEnd: false,
});

async function run(config: TrainConfig, resume?: string) {
  const base = await loadBaseModel(null, undefined, { demoConfig: SMALL_MODEL, dtype: 'f16' });
  try {
    const data = await prepareData(config, base);
    const model = attachLora(base, config);
    const events: ProgressEvent[] = [];
    const onProgress = (e: ProgressEvent) => e.kind === 'step' && events.push(e);
    const result = await train({ config, model, train: data.train, val: data.val, microBatchSize: 2, gradScaler: { initScale: INIT_SCALE }, resume: resume ?? null, onProgress });
    return { events, state: result.state };
  } finally {
    base.model.dispose();
  }
}

/** The schedule's rate after `taken` optimizer steps (10 training records, micro-batch 2). */
function rateAt(taken: number): number {
  return learningRateAt(taken, trainingSchedule(recipe(whole.out), 10, 2), PEAK);
}

/** The optimizer steps taken before each step of `events`, counted from `from`. */
function takenBefore(events: readonly ProgressEvent[], from = 0): number[] {
  let taken = from;
  return events.map((e) => {
    const before = taken;
    if (!e.skipped) taken++;
    return before;
  });
}

/** A checkpoint's state, read as the Trainer's files are read (json.dumps's NaN included; with carry no grad_norm is logged). */
const trainerState = (dir: string) => parseTrainerStateJson(readFileSync(join(dir, 'trainer_state.json'), 'utf8')) as TrainerState;

test('a step skipped for overflowing f16 gradients leaves the learning rate where it was: each step has the schedule rate of the optimizer steps taken before it, and AdamW counts only those', async (t) => {
  if (!hasF16()) return t.skip('the adapter lacks shader-f16');
  const { events, out, state } = whole;
  const skipped = events.map((e) => e.skipped === true);
  console.log(`loss scales (log2) of the steps: ${events.map((e) => `${Math.log2(e.lossScale!)}${e.skipped ? ' (skipped)' : ''}`).join(', ')}`);
  const firstTaken = skipped.indexOf(false);
  assert.ok(firstTaken >= 1, 'the first step overflows');
  assert.ok(skipped.slice(firstTaken).includes(true), 'a step after the first taken one overflows too');
  assert.ok(skipped.slice(skipped.lastIndexOf(true) + 1).length > 0, 'steps are taken after the last skipped one');

  const taken = takenBefore(events);
  assert.deepEqual(
    events.map((e) => e.lr),
    taken.map(rateAt),
  );
  assert.notDeepEqual(taken.map(rateAt), events.map((_, i) => rateAt(i)), 'the rates by step index differ, so the check tells them apart');
  const takenInAll = skipped.filter((s) => !s).length;
  assert.equal(state.lrSchedulerSteps, takenInAll);

  for (let step = 1; step <= STEPS; step++) {
    const dir = join(out, `checkpoint-${step}`);
    const takenThen = skipped.slice(0, step).filter((s) => !s).length;
    assert.equal(trainerState(dir).lrSchedulerSteps, takenThen, `checkpoint-${step} records the optimizer steps taken`);
    // torch's AdamW counts its own steps (bias correction); GradScaler.step skips optimizer.step() on inf/NaN.
    const optimizer = JSON.parse(readFileSync(join(dir, 'optimizer.json'), 'utf8')) as { state: ({ step: number } | null)[] };
    assert.deepEqual(
      optimizer.state.map((s) => s?.step ?? 0),
      optimizer.state.map(() => takenThen),
      `checkpoint-${step}: AdamW's step count of every parameter is the optimizer steps taken`,
    );
  }

  // As transformers 4.28 logs a step (the run's --epoch-remainder carry): its loss goes into tr_loss whether or not
  // the optimizer ran, and its learning_rate is the scheduler's get_last_lr() after the scheduler stepped for the
  // step, which it does only where the optimizer ran (optimizer_was_run): the rate of the optimizer steps taken so far.
  const rows = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { step: number; loss?: number; lr?: number })
    .filter((r) => r.loss !== undefined);
  assert.deepEqual(
    rows.map((r) => [r.step, r.loss, r.lr]),
    events.map((e, i) => [e.step, e.loss, rateAt(taken[i]! + (e.skipped ? 0 : 1))]),
  );
});

test('a run resumed from a checkpoint written after skipped steps continues the count: the same rates and the same adapter, bit for bit, as the uninterrupted run', async (t) => {
  if (!hasF16()) return t.skip('the adapter lacks shader-f16');
  const skipped = whole.events.map((e) => e.skipped === true);
  // After the first skipped steps (no optimizer step taken yet), and after the first skip that follows a taken step.
  const afterFirstSkip = 1;
  const afterLaterSkip = skipped.findIndex((s, i) => s && skipped.slice(0, i).includes(false)) + 1;
  for (const from of [afterFirstSkip, afterLaterSkip]) {
    const checkpoint = join(whole.out, `checkpoint-${from}`);
    assert.ok(trainerState(checkpoint).lrSchedulerSteps! < from, `checkpoint-${from} was written after a skipped step`);
    const out = tmp();
    const resumed = await run(recipe(out), checkpoint);
    const expected = whole.events.slice(from);
    assert.deepEqual(
      resumed.events.map((e) => [e.step, e.lossScale, e.skipped, e.lr, e.loss]),
      expected.map((e) => [e.step, e.lossScale, e.skipped, e.lr, e.loss]),
      `resumed from checkpoint-${from}`,
    );
    assert.equal(resumed.state.lrSchedulerSteps, whole.state.lrSchedulerSteps);
    assert.ok(readFileSync(join(out, 'adapter_model.safetensors')).equals(readFileSync(join(whole.out, 'adapter_model.safetensors'))), `the adapter resumed from checkpoint-${from} is the uninterrupted run's`);
  }
});

test("a checkpoint written before the count was recorded resumes at its step's rate, as the code that wrote it went on", async (t) => {
  if (!hasF16()) return t.skip('the adapter lacks shader-f16');
  const from = whole.events.findIndex((e, i) => e.skipped && whole.events.slice(0, i).some((p) => !p.skipped)) + 1;
  const checkpoint = join(tmp(), `checkpoint-${from}`);
  cpSync(join(whole.out, `checkpoint-${from}`), checkpoint, { recursive: true });
  const { lrSchedulerSteps, ...older } = trainerState(checkpoint);
  assert.ok(lrSchedulerSteps! < from);
  writeFileSync(join(checkpoint, 'trainer_state.json'), JSON.stringify(older));
  const resumed = await run(recipe(tmp()), checkpoint);
  // The code before the count took every rate from the step index: the steps skipped before the checkpoint are not known.
  assert.deepEqual(
    resumed.events.map((e) => e.lr),
    takenBefore(resumed.events, from).map(rateAt),
  );
  assert.equal(resumed.events[0]!.lr, rateAt(from));
});

test('a checkpoint whose count of optimizer steps is not a whole number from 0 to its step is refused, naming the file', async (t) => {
  if (!hasF16()) return t.skip('the adapter lacks shader-f16');
  for (const bad of [3, -1, 1.5, '2']) {
    const checkpoint = join(tmp(), 'checkpoint-2');
    cpSync(join(whole.out, 'checkpoint-2'), checkpoint, { recursive: true });
    writeFileSync(join(checkpoint, 'trainer_state.json'), JSON.stringify({ ...trainerState(checkpoint), lrSchedulerSteps: bad }));
    const out = tmp();
    await assert.rejects(run(recipe(out), checkpoint), (e: unknown) => {
      assert.ok(e instanceof CheckpointError, String(e));
      assert.match(e.message, /trainer_state\.json's lrSchedulerSteps is .* an integer from 0 to the checkpoint's step 2/);
      return true;
    });
  }
});
