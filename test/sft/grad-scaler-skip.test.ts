// The trainer's mixed-precision step queues AdamW before it reads the overflow flag, loss and norm back:
// the kernels skip on the GPU when the flag is set (torch's fused AdamW with found_inf) and the step
// counts are taken back on the host, so every step, state dict and checkpoint is bit for bit that of
// reading the flag first and stepping only when it is clear.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AdamW, GradScaler, hasF16, initWebGPU, runtimeStats, type OptimizerStateDict } from '@huatuo/tensor';
import { attachLora, loadBaseModel, prepareData, readCheckpoint, runFiles, writeCheckpoint, type TrainerState } from '@huatuo/sft';
import { optimizerStep } from '@huatuo/sft/internal';
import { dispatchOrder } from '../tensor/optim-order.js';
import { SMALL_MODEL, smallConfig, tmp, writeRecords } from './trainer-setup.js';

let dataPath: string;

before(async () => {
  await initWebGPU();
  // The records of train-step.test.ts's clipped mixed-precision steps, whose f16 gradients overflow from 2^21.
  const long = 'drink plenty of water, rest in a dark and quiet room, avoid screens, and see a doctor if the pain lasts more than three days or comes with a fever';
  const records = [
    { instruction: 'Q0 headache?', input: '', output: 'rest' },
    { instruction: 'Q1 fever?', input: '', output: 'sleep' },
    { instruction: 'Q2 migraine?', input: '', output: long },
    { instruction: 'Q3 dizziness?', input: '', output: `${long}; sit down first` },
  ];
  dataPath = writeRecords(tmp(), records);
});

const STEPS = 8;

test('8 clipped mixed-precision steps from a scale of 2^21 queue AdamW before the one readback and give the losses, norms, scales, skips, weights, moments, step counts and checkpoints of stepping after reading the flag, bit for bit', async (t) => {
  if (!hasF16()) return t.skip('the adapter lacks shader-f16');
  const config = smallConfig(dataPath, tmp(), { valSetSize: 0, cutoffLen: 128, loraDropout: 0, maxGradNorm: 0.05, precision: 'mixed' });
  const chunks = [[0, 1], [2, 3]];
  const mixedRun = async (readThenStep: boolean) => {
    const base = await loadBaseModel(null, undefined, { demoConfig: SMALL_MODEL, dtype: 'f16' });
    const data = await prepareData(config, base);
    const model = attachLora(base, config);
    const params = [...model.trainableParameters.values()];
    const optimizer = new AdamW(params, { lr: config.learningRate });
    // Without stepUnlessFound, GradScaler reads the flag and then calls step() only when it is clear.
    if (readThenStep) Object.defineProperty(optimizer, 'stepUnlessFound', { value: undefined });
    // Growing after every finite step, the scale overflows again after steps are taken.
    return { base, data, model, params, optimizer, scaler: new GradScaler({ initScale: 2 ** 21, growthInterval: 1 }), out: tmp() };
  };
  const state: TrainerState = { step: 0, totalSteps: STEPS, microBatchSize: 2, gradientAccumulation: 2, history: [], bestValLoss: null, bestStep: null, recipeKey: 'k' };
  const writeAdapter = (dir: string) => runFiles.writeFile(join(dir, 'adapter_model.safetensors'), new Uint8Array(8));
  const files = ['optimizer.json', 'optimizer.safetensors'];

  const queued = await mixedRun(false);
  const reference = await mixedRun(true);
  const stepped: boolean[] = [];
  try {
    for (let step = 0; step < STEPS; step++) {
      const inputs = { config, examples: queued.data.train, chunks, accumulation: 2, step };
      const readbacks = runtimeStats().readbacks;
      const { result: outcome, order } = await dispatchOrder(['adamw'], () => optimizerStep({ ...inputs, model: queued.model, optimizer: queued.optimizer, scaler: queued.scaler, params: queued.params }));
      assert.equal(runtimeStats().readbacks - readbacks, 1, `step ${step}: one readback`);
      assert.deepEqual(order, [...queued.params.map(() => 'adamw'), 'read'], `step ${step} (stepped: ${outcome.stepped}): every parameter's AdamW kernel is queued before the readback`);
      const expected = await optimizerStep({ ...inputs, examples: reference.data.train, model: reference.model, optimizer: reference.optimizer, scaler: reference.scaler, params: reference.params });
      assert.deepEqual(outcome, expected, `step ${step}: loss, norm, scale and skip`);
      stepped.push(outcome.stepped);
      for (const [i, p] of queued.params.entries()) assert.deepEqual(await p.toArray(), await reference.params[i]!.toArray(), `step ${step}: parameter ${i}`);
      const dict: OptimizerStateDict = await queued.optimizer.stateDict();
      assert.deepEqual(dict, await reference.optimizer.stateDict(), `step ${step}: the optimizer's state dict`);
      assert.deepEqual(queued.scaler.stateDict(), reference.scaler.stateDict(), `step ${step}: the scaler's state`);
      const taken = stepped.filter((s) => s).length;
      assert.deepEqual(dict.state.map((s) => s?.step ?? 0), dict.state.map(() => taken), `step ${step}: AdamW counts the ${taken} steps taken`);

      const [mine, theirs] = await Promise.all(
        [queued, reference].map(async (r) => (await writeCheckpoint(r.out, step + 1, { state: { ...state, step: step + 1 }, optimizer: await r.optimizer.stateDict() }, writeAdapter)).dir),
      );
      for (const f of files) assert.ok(readFileSync(join(mine!, f)).equals(readFileSync(join(theirs!, f))), `checkpoint-${step + 1}: ${f} byte for byte`);
      assert.deepEqual((await readCheckpoint(mine!)).optimizer, dict, `checkpoint-${step + 1} reads back the state dict`);
    }
  } finally {
    queued.base.model.dispose();
    reference.base.model.dispose();
  }
  console.log(`stepped: ${stepped.join(', ')}`);
  assert.equal(stepped[0], false, 'the first step overflows: a checkpoint after it holds no AdamW state');
  const firstTaken = stepped.indexOf(true);
  assert.ok(firstTaken > 0 && stepped.slice(firstTaken).includes(false), `a step after a taken one overflows: ${stepped.join(', ')}`);
});
