// A step whose micro-batches hold no answer token (records cut before their answer). In transformers (4.28 and
// 4.57.6) each micro-batch's loss is NaN (CrossEntropyLoss's mean over no token; with num_items_in_batch, 0 / 0),
// which _inner_training_loop's logging_nan_inf_filter (on by default) replaces in the logged tr_loss by
// tr_loss / (1 + global_step - _globalstep_last_logged), micro-batch by micro-batch; the step still counts.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { add, contiguous, crossEntropy, embedding, hasF16, initWebGPU, keep, linear, mul, slice, tensor, type Tensor } from '@huatuo/tensor';
import {
  attachLora, loadBaseModel, prepareData, readCheckpoint, resolveConfig, train, trainingSchedule,
  type DeviceBatch, type ProgressEvent, type TokenizedExample, type TrainableModel, type TrainConfig,
} from '@huatuo/sft';
import { pythonRound, stepBatches } from '@huatuo/sft/internal';
import { SMALL_MODEL, smallConfig, smallRecords, tmp, writeRecords } from './trainer-setup.js';

let dataPath: string;

before(async () => {
  await initWebGPU();
  dataPath = writeRecords(tmp(), smallRecords(12));
});

/**
 * Trains the small LLaMA (base in `dtype`) in micro-batches of 2 (accumulation 2), step 2's records without answer
 * tokens (every label -100); returns the result, the logged losses, the step events and q_proj's lora_B.
 */
async function runWithEmptySecondStep(
  config: TrainConfig,
  options: { dtype?: 'f32' | 'f16'; gradScaler?: { initScale: number; growthInterval: number }; stopAfterStep?: number; resume?: string } = {},
) {
  const { dtype = 'f32', ...trainOptions } = options;
  const base = await loadBaseModel(null, undefined, { demoConfig: SMALL_MODEL, dtype });
  try {
    const data = await prepareData(config, base);
    const model = attachLora(base, config);
    const batchesOf = stepBatches(data.train.length, config, trainingSchedule(config, data.train.length, 2), 2);
    const cut = new Set(batchesOf(1).chunks.flat());
    const examples: TokenizedExample[] = data.train.map((e, i) => (cut.has(i) ? { ...e, labels: e.labels.map(() => -100) } : e));
    const logged: number[] = [];
    const steps: ProgressEvent[] = [];
    const result = await train({
      config,
      model,
      train: examples,
      val: [],
      microBatchSize: 2,
      onProgress: (e) => (e.kind === 'log' ? logged.push(e.loss!) : e.kind === 'step' && steps.push(e)),
      ...trainOptions,
    });
    const loraB = await model.trainableParameters.get('base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight')!.toArray();
    return { result, logged, steps, loraB };
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

// The Trainer still takes such a step: backward of the NaN losses leaves every LoRA parameter a zero gradient
// (not None, not NaN), clip_grad_norm_ sees norm 0 (logged as grad_norm 0.0), AdamW steps (its moments decay, its
// step count and bias corrections advance, weight decay applies), the GradScaler counts a finite step.
// test/fixtures/sft/empty-step.json holds torch's steps of a LoRA-like model small enough to write out
// (scripts/fixtures/make-empty-step-fixture.py): logits = E[ids] W^T + s (E[ids] A^T) B^T, A and B trained.

interface FixtureRow {
  inputIds: number[];
  labels: number[];
}
interface FixtureCase {
  name: string;
  lossNormalization: 'micro-batch' | 'tokens';
  weightDecay: number;
  learningRates: number[];
  gradNorms: number[];
  after: { A: number[]; B: number[] }[];
  logs: Record<string, { step: number; meanLoss: number; loss: number; grad_norm: number }[]>;
}
const fixture = JSON.parse(readFileSync(fileURLToPath(new URL('../fixtures/sft/empty-step.json', import.meta.url)), 'utf8')) as {
  model: { vocab: number; hidden: number; rank: number; scaling: number };
  init: Record<'E' | 'W' | 'A' | 'B', number[]>;
  optimizer: { lr: number; betas: [number, number]; eps: number; maxGradNorm: number };
  steps: FixtureRow[][][];
  cases: FixtureCase[];
};

/** The fixture's model: E and W frozen, lora_A [r, C] and lora_B [V, r] trained; adapters saved as JSON. */
class TinyLoraModel implements TrainableModel {
  private readonly E: Tensor;
  private readonly W: Tensor;
  trainableParameters = new Map<string, Tensor>();

  constructor() {
    const { vocab: V, hidden: C, rank: R } = fixture.model;
    this.E = keep(tensor(Float32Array.from(fixture.init.E), [V, C]));
    this.W = keep(tensor(Float32Array.from(fixture.init.W), [V, C]));
    this.setWeights({ A: fixture.init.A, B: fixture.init.B });
  }

  private setWeights(w: { A: number[]; B: number[] }): void {
    const { vocab: V, hidden: C, rank: R } = fixture.model;
    for (const p of this.trainableParameters.values()) p.dispose();
    this.trainableParameters = new Map([
      ['lora_A', keep(tensor(Float32Array.from(w.A), [R, C], { requiresGrad: true }))],
      ['lora_B', keep(tensor(Float32Array.from(w.B), [V, R], { requiresGrad: true }))],
    ]);
  }

  loss(batch: DeviceBatch): Tensor {
    const T = batch.inputIds.shape[1]!;
    const h = embedding(batch.inputIds, this.E); // [B, T, C]
    const lora = linear(linear(h, this.trainableParameters.get('lora_A')!), this.trainableParameters.get('lora_B')!); // [B, T, V]
    const logits = add(linear(h, this.W), mul(lora, fixture.model.scaling));
    return crossEntropy(contiguous(slice(logits, 1, 0, T - 1)), contiguous(slice(batch.labels, 1, 1, T)), { ignoreIndex: -100 });
  }

  async weights(): Promise<{ A: number[]; B: number[] }> {
    const read = async (key: string) => [...((await this.trainableParameters.get(key)!.toArray()) as Float32Array)];
    return { A: await read('lora_A'), B: await read('lora_B') };
  }

  async saveAdapter(dir: string): Promise<void> {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'adapter.json'), JSON.stringify(await this.weights()));
  }

  async loadAdapter(dir: string): Promise<void> {
    this.setWeights(JSON.parse(readFileSync(join(dir, 'adapter.json'), 'utf8')) as { A: number[]; B: number[] });
  }

  dispose(): void {
    for (const t of [this.E, this.W, ...this.trainableParameters.values()]) t.dispose();
  }
}

/** The recipe's optimizer settings on 16 records in micro-batches of 2, accumulation 2: the fixture's 4 steps in one epoch. */
function fixtureConfig(c: FixtureCase, outputDir: string, loggingSteps: number): TrainConfig {
  return resolveConfig({
    dataPath: 'fixture.jsonl',
    outputDir,
    valSetSize: 0,
    batchSize: 4,
    microBatchSize: 2,
    numEpochs: 1,
    learningRate: fixture.optimizer.lr,
    adamBeta1: fixture.optimizer.betas[0],
    adamBeta2: fixture.optimizer.betas[1],
    adamEpsilon: fixture.optimizer.eps,
    maxGradNorm: fixture.optimizer.maxGradNorm,
    weightDecay: c.weightDecay,
    lossNormalization: c.lossNormalization,
    warmupRatio: 0,
    lrSchedulerType: 'linear',
    loggingSteps,
    evalSteps: 1,
    saveSteps: 1,
  });
}

/** The fixture's rows placed where the trainer's data order reads them: step s's micro-batch m is the fixture's. */
function fixtureExamples(config: TrainConfig): TokenizedExample[] {
  const rows = fixture.steps.flat(2);
  const examples = new Array<TokenizedExample>(rows.length);
  const batchesOf = stepBatches(rows.length, config, trainingSchedule(config, rows.length, 2), 2);
  fixture.steps.forEach((micro, s) => {
    const { chunks } = batchesOf(s);
    micro.forEach((chunk, m) =>
      chunk.forEach((row, k) => {
        examples[chunks[m]![k]!] = { inputIds: row.inputIds, labels: row.labels, promptLength: row.labels.findIndex((l) => l !== -100), fullLength: row.inputIds.length, eosAppended: false };
      }),
    );
  });
  return examples;
}

async function trainTiny(config: TrainConfig, options: { stopAfterStep?: number; resume?: string } = {}) {
  const model = new TinyLoraModel();
  try {
    const events: ProgressEvent[] = [];
    const result = await train({ config, model, train: fixtureExamples(config), val: [], microBatchSize: 2, onProgress: (e) => events.push(e), ...options });
    return { result, events, weights: await model.weights() };
  } finally {
    model.dispose();
  }
}

/** The largest |a - b| over the weights. */
function weightDifference(a: { A: number[]; B: number[] }, b: { A: number[]; B: number[] }): number {
  let diff = 0;
  for (const key of ['A', 'B'] as const) a[key].forEach((v, i) => (diff = Math.max(diff, Math.abs(v - b[key][i]!))));
  return diff;
}

for (const c of fixture.cases) {
  test(`${c.name}: a step without answer tokens moves the weights as torch's Trainer does (AdamW on zero gradients), with its gradient norms (0.0 logged for it) and rates`, async () => {
    for (let step = 1; step <= 4; step++) {
      const out = tmp();
      const { result, events, weights } = await trainTiny(fixtureConfig(c, out, 1), { stopAfterStep: step });
      // Adam moves each weight by up to the rate (3e-4) a step, and on the empty step by about 0.9 of the step
      // before; torch's f32 sums differ from the GPU's in their last bits.
      const diff = weightDifference(weights, c.after[step - 1]!);
      assert.ok(diff <= 1e-7, `weights after step ${step} differ from torch's by ${diff}`);
      if (step < 4) continue;
      assert.deepEqual(events.filter((e) => e.kind === 'step').map((e) => e.lr), c.learningRates);
      const logs = result.state.log_history!.filter((l) => 'loss' in l) as { grad_norm: number }[];
      logs.forEach((l, i) => assert.ok(Math.abs(l.grad_norm - c.gradNorms[i]!) <= 1e-6 * c.gradNorms[i]!, `grad_norm of step ${i + 1}: ${l.grad_norm}, torch ${c.gradNorms[i]}`));
      assert.equal(logs[1]!.grad_norm, 0, 'the empty step clips a norm of 0');
      assert.match(readFileSync(join(out, 'trainer_state.json'), 'utf8'), /"grad_norm": 0\.0,/);
    }
  });

  test(`${c.name}: micro-batches without answer tokens add to the logged loss what the Trainer's NaN filter adds in their place, in the step's order`, async () => {
    for (const [every, expected] of Object.entries(c.logs)) {
      const { result, events } = await trainTiny(fixtureConfig(c, tmp(), Number(every)));
      const logged = events.filter((e) => e.kind === 'log');
      assert.deepEqual(logged.map((e) => e.step), expected.map((l) => l.step), `logging every ${every}`);
      logged.forEach((e, i) => {
        const want = expected[i]!.meanLoss;
        assert.ok(Math.abs(e.loss! - want) <= 1e-6 * want + 1e-7, `logging every ${every}, step ${e.step}: loss ${e.loss}, the Trainer ${want}`);
      });
      const history = result.state.log_history!.filter((l) => 'loss' in l) as { loss: number; step: number }[];
      assert.deepEqual(history.map((l) => [l.step, l.loss]), expected.map((l) => [l.step, l.loss]), `log_history's rounded losses, logging every ${every}`);
    }
  });
}

test('a run resumed from the checkpoint of a step without answer tokens, or of the step before it, ends with the uninterrupted run\'s adapter byte for byte; the checkpoint holds AdamW\'s step count', async () => {
  const config = (out: string) => smallConfig(dataPath, out, { maxSteps: 3, loggingSteps: 1, evalSteps: 1, saveSteps: 1 });
  const wholeDir = tmp();
  const whole = await runWithEmptySecondStep(config(wholeDir));
  const adapter = (dir: string) => readFileSync(join(dir, 'adapter_model.safetensors'));
  const saved = await readCheckpoint(join(wholeDir, 'checkpoint-2'));
  assert.deepEqual(new Set(saved.optimizer.state.map((s) => s?.step)), new Set([2]), 'AdamW stepped every parameter on the empty step');
  for (const from of [1, 2]) {
    const out = tmp();
    await runWithEmptySecondStep(config(out), { stopAfterStep: from });
    const resumed = await runWithEmptySecondStep(config(out), { resume: join(out, `checkpoint-${from}`) });
    assert.deepEqual([...resumed.result.stepLosses], [...whole.result.stepLosses].slice(from), `losses after resuming from checkpoint-${from}`);
    assert.ok(adapter(out).equals(adapter(wholeDir)), `the adapter resumed from checkpoint-${from} is the uninterrupted run's`);
  }
});

test('in mixed precision a step without answer tokens is a finite step for the loss scaler, and AdamW moves the weights', async (t) => {
  if (!hasF16()) return t.skip('the adapter lacks shader-f16');
  const config = () => smallConfig(dataPath, tmp(), { maxSteps: 3, loggingSteps: 1, evalSteps: 3, saveSteps: 3, precision: 'mixed' });
  // The scale doubles after every finite step.
  const gradScaler = { initScale: 2 ** 14, growthInterval: 1 };
  const run = await runWithEmptySecondStep(config(), { dtype: 'f16', gradScaler });
  assert.deepEqual(run.steps.map((e) => [e.step, e.lossScale, e.skipped]), [[1, 2 ** 14, false], [2, 2 ** 15, false], [3, 2 ** 16, false]]);
  assert.deepEqual(run.result.state.gradScaler, { scale: 2 ** 17, growthTracker: 0 });
  const afterFirst = (await runWithEmptySecondStep(config(), { dtype: 'f16', gradScaler, stopAfterStep: 1 })).loraB;
  const afterEmpty = (await runWithEmptySecondStep(config(), { dtype: 'f16', gradScaler, stopAfterStep: 2 })).loraB;
  assert.notDeepEqual(afterEmpty, afterFirst, "AdamW's moments from step 1 move lora_B on the empty step");
});
