// When the trainer logs, evaluates and saves, and which checkpoint is the best, as the Hugging Face Trainer's
// DefaultFlowCallback, _maybe_log_save_evaluate and _save_checkpoint decide: test/fixtures/sft/trainer-flow.json,
// from transformers 4.57.6's own code and 4.28.1's restated (scripts/fixtures/make-trainer-flow-fixture.py).
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initWebGPU } from '@huatuo/tensor';
import { train, type HfTrainerState, type TrainConfig, type TrainerState } from '@huatuo/sft';
import { noteBestAtEvaluation, noteBestAtSave, stepFlow, type TrainerFlow } from '@huatuo/sft/internal';
import { smallConfig, smallRecords, smallRun, tmp, writeRecords } from './trainer-setup.js';

type Event = [kind: 'log' | 'eval', step: number] | [kind: 'save', step: number, bestMetric: number | null, bestModelCheckpoint: string | null];
interface Outcome {
  events: Event[];
  bestMetric: number | null;
  bestModelCheckpoint: string | null;
  bestGlobalStep?: number | null;
}
interface FlowCase {
  maxSteps: number;
  stepsPerEpoch: number;
  loggingSteps: number;
  evalSteps: number;
  saveSteps: number;
  evalLosses: number[] | null;
  loadBestModelAtEnd: boolean;
  transformers4_57: Outcome;
  transformers4_28: Outcome;
}

const fixture = JSON.parse(readFileSync(fileURLToPath(new URL('../fixtures/sft/trainer-flow.json', import.meta.url)), 'utf8')) as { cases: FlowCase[] };

/** The events of a run of `c` as the trainer's loop drives stepFlow and the best-model bookkeeping, checkpoints named by step. */
async function replay(c: FlowCase, epochRemainder: 'step' | 'carry', flow: TrainerFlow): Promise<Outcome> {
  const state = { global_step: 0, best_metric: null, best_global_step: null, best_model_checkpoint: null } as unknown as HfTrainerState;
  const saved = new Set<string>();
  const events: Event[] = [];
  const config = { loggingSteps: c.loggingSteps, evalSteps: c.evalSteps, saveSteps: c.saveSteps, epochRemainder };
  for (let step = 1; step <= c.maxSteps; step++) {
    state.global_step = step;
    const asked = stepFlow(step, c.maxSteps, config, c.evalLosses !== null);
    if (asked.log) events.push(['log', step]);
    let stepEvalLoss: number | null = null;
    if (asked.evaluate) {
      events.push(['eval', step]);
      stepEvalLoss = c.evalLosses![step - 1]!;
      if (c.loadBestModelAtEnd) noteBestAtEvaluation(state, stepEvalLoss, flow);
    }
    if (asked.save) {
      await noteBestAtSave(state, (s) => `checkpoint-${s}`, c.loadBestModelAtEnd ? stepEvalLoss : null, flow, async (dir) => saved.has(dir));
      saved.add(`checkpoint-${step}`);
      events.push(['save', step, state.best_metric, state.best_model_checkpoint]);
    }
  }
  return { events, bestMetric: state.best_metric, bestModelCheckpoint: state.best_model_checkpoint, bestGlobalStep: state.best_global_step };
}

const describe = (c: FlowCase) =>
  `max_steps ${c.maxSteps}, logging/eval/save steps ${c.loggingSteps}/${c.evalSteps}/${c.saveSteps}, ${c.evalLosses ? 'evaluated' : 'no validation set'}, load_best_model_at_end ${c.loadBestModelAtEnd}`;

test("each step's log, evaluation and save, and the best checkpoint at each save and at the end, are transformers 4.57.6's (--epoch-remainder step) and 4.28.1's (carry)", async () => {
  assert.equal(fixture.cases.length, 60);
  for (const c of fixture.cases) {
    const { bestGlobalStep, ...of457 } = await replay(c, 'step', '4.57');
    assert.deepEqual({ ...of457, bestGlobalStep }, c.transformers4_57, `4.57.6, ${describe(c)}`);
    const { bestGlobalStep: stepOf428, ...of428 } = await replay(c, 'carry', '4.28');
    assert.deepEqual(of428, c.transformers4_28, `4.28.1, ${describe(c)}`);
    // 4.28.1's TrainerState has no best_global_step: here it names the step of best_model_checkpoint.
    assert.equal(stepOf428 === null ? null : `checkpoint-${stepOf428}`, c.transformers4_28.bestModelCheckpoint);
  }
});

let dataPath: string;
before(async () => {
  await initWebGPU();
  dataPath = writeRecords(tmp(), smallRecords(12));
});

/** A run of `c`: what it reported (log, eval, save by step), its checkpoints and its final trainer_state.json. */
async function run(c: TrainConfig) {
  const { data, model, base } = await smallRun(c);
  const events: [string, number][] = [];
  try {
    await train({ config: c, model, train: data.train, val: data.val, microBatchSize: 2, resume: null, onProgress: (e) => ['log', 'eval', 'save'].includes(e.kind) && events.push([e.kind, e.step]) });
  } finally {
    base.model.dispose();
  }
  const checkpoints = readdirSync(c.outputDir)
    .filter((name) => /^checkpoint-\d+$/.test(name))
    .map((name) => Number(name.slice('checkpoint-'.length)))
    .sort((a, b) => a - b);
  const state = JSON.parse(readFileSync(join(c.outputDir, 'trainer_state.json'), 'utf8')) as TrainerState & HfTrainerState;
  return { events, checkpoints, state };
}

const stepOf = (entry: object) => (entry as { step: number }).step;
const kindOf = (entry: object) => ('loss' in entry ? 'log' : 'eval_loss' in entry ? 'eval' : 'end');

test('a run whose last step is no multiple of --logging-steps and --eval-steps neither logs nor evaluates there; it saves there with transformers 4.57.6 (step), not with 4.28.1 (carry)', async () => {
  const c = fixture.cases.find((c) => c.maxSteps === 7 && c.stepsPerEpoch === 7 && c.evalLosses !== null && c.loadBestModelAtEnd)!;
  for (const [epochRemainder, expected] of [['step', c.transformers4_57], ['carry', c.transformers4_28]] as const) {
    const config = smallConfig(dataPath, tmp(), { epochRemainder, maxSteps: 7, loggingSteps: c.loggingSteps, evalSteps: c.evalSteps, saveSteps: c.saveSteps });
    const { events, checkpoints, state } = await run(config);
    assert.deepEqual(events, expected.events.map(([kind, step]) => [kind, step]), epochRemainder);
    assert.deepEqual(checkpoints, expected.events.filter(([kind]) => kind === 'save').map(([, step]) => step), epochRemainder);
    // log_history: the Trainer's logs and evaluations, then train()'s log at the last step.
    const history = state.log_history.map((e) => [kindOf(e), stepOf(e)]);
    assert.deepEqual(history, [...expected.events.filter(([kind]) => kind !== 'save').map(([kind, step]) => [kind, step]), ['end', 7]], epochRemainder);
    // metrics.jsonl's rows (the run's history) are the same logs and evaluations.
    assert.deepEqual(state.history.map((r) => [r.loss !== undefined ? 'log' : 'eval', r.step]), history.slice(0, -1), epochRemainder);
  }
});

test('with --epoch-remainder carry, as in transformers 4.28.1, only the evaluation of a saved step can make the best checkpoint', async () => {
  // Evaluations after every step, saves after steps 2 and 4 of 5.
  const config = smallConfig(dataPath, tmp(), { maxSteps: 5, loggingSteps: 1, evalSteps: 1, saveSteps: 2 });
  const { state, checkpoints } = await run(config);
  assert.deepEqual(checkpoints, [2, 4]);
  const evalLoss = new Map(state.log_history.filter((e) => 'eval_loss' in e).map((e) => [stepOf(e), (e as { eval_loss: number }).eval_loss]));
  assert.deepEqual([...evalLoss.keys()], [1, 2, 3, 4, 5]);
  const lowest = (steps: number[]) => steps.reduce((a, b) => (evalLoss.get(b)! < evalLoss.get(a)! ? b : a));
  // The case this checks: the lowest validation loss comes at a step without a checkpoint.
  assert.notEqual(lowest([1, 2, 3, 4, 5]) % 2, 0, `validation losses ${[...evalLoss.values()]}`);
  const best = lowest([2, 4]);
  assert.deepEqual([state.best_metric, state.best_global_step, state.best_model_checkpoint], [evalLoss.get(best), best, join(config.outputDir, `checkpoint-${best}`)]);
});
