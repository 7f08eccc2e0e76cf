// Gradient accumulation's loss normalization on a small LLaMA: with --loss-normalization tokens the
// gradients accumulated over micro-batches of uneven answer lengths equal those of one batch holding
// them all (transformers' num_items_in_batch, counted after the shift in each padded micro-batch),
// while micro-batch averages each micro-batch's mean;
// a run's checkpoints record the choice and a resume with the other is refused; a clipped step reads
// its loss and gradient norm back in one wait for the GPU, with the overflow flag in mixed precision.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AdamW, clipGradNorm, GradScaler, hasF16, initWebGPU, runtimeStats, startScope } from '@huatuo/tensor';
import { attachLora, CheckpointError, loadBaseModel, prepareData, train, type TokenizedExample, type TrainConfig, type TrainResult } from '@huatuo/sft';
import { accumulateGradients, optimizerStep } from '@huatuo/sft/internal';
import { SMALL_MODEL, smallConfig, smallRecords, smallRun, tmp, writeRecords } from './trainer-setup.js';

let dataPath: string;
let runData: string;

before(async () => {
  await initWebGPU();
  const long = 'drink plenty of water, rest in a dark and quiet room, avoid screens, and see a doctor if the pain lasts more than three days or comes with a fever';
  const records = [
    { instruction: 'Q0 headache?', input: '', output: 'rest' },
    { instruction: 'Q1 fever?', input: '', output: 'sleep' },
    { instruction: 'Q2 migraine?', input: '', output: long },
    { instruction: 'Q3 dizziness?', input: '', output: `${long}; sit down first` },
  ];
  dataPath = writeRecords(tmp(), records);
  runData = writeRecords(tmp(), smallRecords(12));
});

/** The answer tokens of an example that the shifted loss counts. */
function answerTokens(e: TokenizedExample): number {
  return e.labels.slice(1).filter((l) => l !== -100).length;
}

/** The LoRA gradients, by PEFT key, after the micro-batches `chunks` of one step are accumulated. */
async function gradients(
  normalization: 'micro-batch' | 'tokens',
  chunks: number[][],
  trainOnInputs = false,
): Promise<{ grads: Map<string, Float32Array>; loss: number; weight: number; examples: TokenizedExample[] }> {
  const config = smallConfig(dataPath, tmp(), { valSetSize: 0, cutoffLen: 128, loraDropout: 0, lossNormalization: normalization, trainOnInputs });
  const { base, data, model } = await smallRun(config);
  try {
    // Short answers first, so that the micro-batches below are uneven in answer tokens.
    const examples = [...data.train].sort((a, b) => answerTokens(a) - answerTokens(b));
    const { parts: [weightedSum], weight } = accumulateGradients({ config, model, examples, chunks, accumulation: chunks.length, step: 0 }, 1);
    const grads = new Map<string, Float32Array>();
    for (const [key, p] of model.trainableParameters) {
      assert.ok(p.grad, `${key} has a gradient`);
      grads.set(key, (await p.grad.toArray()) as Float32Array);
    }
    return { grads, loss: (await weightedSum!.item()) / weight, weight, examples };
  } finally {
    base.model.dispose();
  }
}

/** The largest |a - b| over every gradient, relative to the largest |b|. */
function relativeDifference(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let diff = 0;
  let scale = 0;
  for (const [key, ref] of b) {
    const got = a.get(key)!;
    for (let i = 0; i < ref.length; i++) {
      diff = Math.max(diff, Math.abs(got[i]! - ref[i]!));
      scale = Math.max(scale, Math.abs(ref[i]!));
    }
  }
  assert.ok(scale > 0, 'the reference gradients are not all zero');
  return diff / scale;
}

test('with --loss-normalization tokens, micro-batches of uneven answer lengths accumulate the gradients of one batch holding them all; micro-batch weighs each micro-batch alike', async () => {
  const whole = await gradients('tokens', [[0, 1, 2, 3]]);
  const counts = whole.examples.map(answerTokens);
  assert.ok(counts[0]! + counts[1]! < (counts[2]! + counts[3]!) / 4, `the micro-batches are uneven in answer tokens: ${counts.join(', ')}`);

  const byTokens = await gradients('tokens', [[0, 1], [2, 3]]);
  const tokensDiff = relativeDifference(byTokens.grads, whole.grads);
  assert.ok(tokensDiff < 1e-5, `tokens: accumulated gradients differ from one batch's by ${tokensDiff} relative`);
  assert.ok(Math.abs(byTokens.loss - whole.loss) < 1e-5 * whole.loss, `tokens: the step's loss ${byTokens.loss} is the mean over its answer tokens, ${whole.loss}`);

  const byMicroBatch = await gradients('micro-batch', [[0, 1], [2, 3]]);
  const microDiff = relativeDifference(byMicroBatch.grads, whole.grads);
  assert.ok(microDiff > 0.05, `micro-batch: accumulated gradients differ from one batch's (by ${microDiff} relative)`);

  // micro-batch: the mean of the two micro-batches' means, each micro-batch alone giving its own.
  const first = await gradients('micro-batch', [[0, 1]]);
  const second = await gradients('micro-batch', [[2, 3]]);
  assert.ok(Math.abs(byMicroBatch.loss - (first.loss + second.loss) / 2) < 1e-5 * byMicroBatch.loss, `micro-batch: the step's loss ${byMicroBatch.loss} is the mean of ${first.loss} and ${second.loss}`);
  const halves = new Map([...first.grads].map(([key, g]) => [key, g.map((v, i) => (v + second.grads.get(key)![i]!) / 2)]));
  const halvesDiff = relativeDifference(byMicroBatch.grads, halves);
  assert.ok(halvesDiff < 1e-4, `micro-batch: the gradients are the mean of each micro-batch's (differ by ${halvesDiff} relative)`);
});

test("with --train-on-inputs, --loss-normalization tokens divides by the labels the shifted loss counts in each left-padded micro-batch (transformers' num_items_in_batch for a causal LM, labels[..., 1:]), where a padded row's first token is one", async () => {
  const chunks = [[0, 1], [2, 3]];
  const step = await gradients('tokens', chunks, true);
  assert.ok(step.examples.every((e) => e.labels[0] !== -100), "every example learns from its first token's label");
  const multiple = smallConfig(dataPath, tmp(), {}).padToMultipleOf;
  // Each row's labels 1..T-1 of the micro-batch padded on the left to T: an example's own labels 1.., and its first when padding precedes it.
  const counted = chunks.map((chunk) => {
    const rows = chunk.map((i) => step.examples[i]!);
    const T = Math.ceil(Math.max(...rows.map((e) => e.inputIds.length)) / multiple) * multiple;
    return rows.reduce((n, e) => n + answerTokens(e) + (e.inputIds.length < T ? 1 : 0), 0);
  });
  const unpadded = step.examples.reduce((n, e) => n + answerTokens(e), 0);
  assert.ok(counted[0]! + counted[1]! > unpadded, `some row is padded: ${counted.join(' + ')} labels after the shift, ${unpadded} without padding`);
  assert.equal(step.weight, counted[0]! + counted[1]!, "the step's num_items_in_batch");

  // The step's loss and gradients are those of the sum of its token losses over that count: each
  // micro-batch's mean (alone) weighed by its labels.
  const alone = [await gradients('tokens', [chunks[0]!], true), await gradients('tokens', [chunks[1]!], true)];
  const [w0, w1] = [counted[0]!, counted[1]!];
  assert.deepEqual(alone.map((a) => a.weight), counted);
  const expectedLoss = (alone[0]!.loss * w0 + alone[1]!.loss * w1) / (w0 + w1);
  assert.ok(Math.abs(step.loss - expectedLoss) < 1e-6 * expectedLoss, `the step's loss ${step.loss} is ${expectedLoss}`);
  const mixed = new Map([...alone[0]!.grads].map(([key, g]) => [key, g.map((v, i) => (v * w0 + alone[1]!.grads.get(key)![i]! * w1) / (w0 + w1))]));
  const diff = relativeDifference(step.grads, mixed);
  assert.ok(diff < 1e-5, `the gradients differ from the micro-batches' weighed by their labels by ${diff} relative`);
});

test('a step with --max-grad-norm reads its loss and gradient norm back together, in one readback, the values each gives read alone', async () => {
  const config = smallConfig(dataPath, tmp(), { valSetSize: 0, cutoffLen: 128, loraDropout: 0, maxGradNorm: 0.05 });
  const chunks = [[0, 1], [2, 3]];
  const alone = await smallRun(config);
  const scope = startScope();
  let expected: { loss: number; gradNorm: number };
  try {
    const params = [...alone.model.trainableParameters.values()];
    const { parts: [weightedSum], weight } = accumulateGradients({ config, model: alone.model, examples: alone.data.train, chunks, accumulation: 2, step: 0 }, 1);
    const norm = clipGradNorm(params, config.maxGradNorm);
    expected = { loss: (await weightedSum!.item()) / weight, gradNorm: await norm.item() };
  } finally {
    scope.end();
    alone.base.model.dispose();
  }

  const { base, data, model } = await smallRun(config);
  try {
    const params = [...model.trainableParameters.values()];
    const optimizer = new AdamW(params, { lr: config.learningRate });
    const readbacks = runtimeStats().readbacks;
    const outcome = await optimizerStep({ config, model, optimizer, scaler: new GradScaler({ enabled: false }), params, examples: data.train, chunks, accumulation: 2, step: 0 });
    assert.equal(runtimeStats().readbacks - readbacks, 1, 'readbacks in one clipped f32 step');
    assert.ok(expected.gradNorm > config.maxGradNorm, `the step clips (grad norm ${expected.gradNorm})`);
    assert.equal(outcome.loss, expected.loss, 'the loss');
    assert.equal(outcome.gradNorm, expected.gradNorm, 'the gradient norm');
  } finally {
    base.model.dispose();
  }
});

test('a mixed-precision step with --max-grad-norm reads the overflow flag, loss and gradient norm in one readback, overflowing or not, with the values, scales and weights of the steps read one by one', async (t) => {
  if (!hasF16()) return t.skip('the adapter lacks shader-f16');
  const config = smallConfig(dataPath, tmp(), { valSetSize: 0, cutoffLen: 128, loraDropout: 0, maxGradNorm: 0.05, precision: 'mixed' });
  const chunks = [[0, 1], [2, 3]];
  // From 2^21 (as skipped-step-schedule.test.ts starts) the scaled f16 gradients of these records overflow
  // four times as the scale halves; the fifth and sixth steps are taken.
  const STEPS = 6;
  const mixedRun = async () => {
    const base = await loadBaseModel(null, undefined, { demoConfig: SMALL_MODEL, dtype: 'f16' });
    const data = await prepareData(config, base);
    const model = attachLora(base, config);
    const params = [...model.trainableParameters.values()];
    return { base, data, model, params, optimizer: new AdamW(params, { lr: config.learningRate }), scaler: new GradScaler({ initScale: 2 ** 21 }) };
  };

  const alone = await mixedRun();
  const expected: { loss: number; gradNorm: number; lossScale: number; stepped: boolean }[] = [];
  let expectedWeights: Float32Array[];
  try {
    for (let step = 0; step < STEPS; step++) {
      const { optimizer, scaler, params } = alone;
      const scope = startScope();
      try {
        const lossScale = scaler.getScale();
        const { parts: [weightedSum], weight } = accumulateGradients({ config, model: alone.model, examples: alone.data.train, chunks, accumulation: 2, step }, lossScale);
        scaler.unscale(optimizer);
        const norm = clipGradNorm(params, config.maxGradNorm);
        const stepped = await scaler.step(optimizer);
        scaler.update();
        optimizer.zeroGrad();
        expected.push({ loss: (await weightedSum!.item()) / weight, gradNorm: await norm.item(), lossScale, stepped });
      } finally {
        scope.end();
      }
    }
    expectedWeights = await Promise.all(alone.params.map((p) => p.toArray() as Promise<Float32Array>));
  } finally {
    alone.base.model.dispose();
  }
  const stepped = expected.map((e) => e.stepped);
  assert.ok(stepped[0] === false && stepped[STEPS - 1] === true, `the first step overflows and the last is taken: ${stepped.join(', ')}`);

  const { base, data, model, params, optimizer, scaler } = await mixedRun();
  try {
    for (let step = 0; step < STEPS; step++) {
      const readbacks = runtimeStats().readbacks;
      const outcome = await optimizerStep({ config, model, optimizer, scaler, params, examples: data.train, chunks, accumulation: 2, step });
      assert.equal(runtimeStats().readbacks - readbacks, 1, `readbacks in clipped mixed step ${step} (stepped: ${expected[step]!.stepped})`);
      const { loss, gradNorm, lossScale, stepped } = outcome;
      assert.deepEqual({ loss, gradNorm, lossScale, stepped }, expected[step], `step ${step}`);
    }
    for (const [i, p] of params.entries()) assert.deepEqual(await p.toArray(), expectedWeights[i], `parameter ${i} after ${STEPS} steps`);
    assert.deepEqual(scaler.stateDict(), alone.scaler.stateDict());
  } finally {
    base.model.dispose();
  }
});

async function run(config: TrainConfig, options: { resume?: string; stopAfterStep?: number } = {}): Promise<TrainResult> {
  const { data, model, base } = await smallRun(config);
  try {
    return await train({ config, model, train: data.train, val: data.val, microBatchSize: 2, resume: options.resume ?? null, stopAfterStep: options.stopAfterStep });
  } finally {
    base.model.dispose();
  }
}

test('a run with --loss-normalization tokens records it in its checkpoints and resumes only with it, as one uninterrupted run', async () => {
  const out = tmp();
  const config = smallConfig(runData, out, { lossNormalization: 'tokens' });
  const full = await run(config, { stopAfterStep: 6 });
  const state = JSON.parse(readFileSync(join(out, 'checkpoint-5', 'trainer_state.json'), 'utf8')) as { lossNormalization?: string };
  assert.equal(state.lossNormalization, 'tokens');

  const dir = join(out, 'checkpoint-5');
  await assert.rejects(run(smallConfig(runData, out), { resume: dir }), (e: unknown) => {
    assert.ok(e instanceof CheckpointError, `a CheckpointError, got ${String(e)}`);
    assert.match(e.message, /checkpoint-5 was written by a run with --loss-normalization tokens/);
    assert.match(e.message, /resume with --loss-normalization tokens/);
    return true;
  });
  const resumed = await run(config, { resume: dir, stopAfterStep: 6 });
  assert.equal(resumed.stepLosses.get(6), full.stepLosses.get(6), 'step 6 after the resume equals the uninterrupted run');
});
