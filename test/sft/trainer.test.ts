// The trainer on a small LLaMA: a non-finite loss stops the run naming the step and the last good
// checkpoint (left intact), the adapter written at the end loads in @huatuo/llama and reproduces
// the trained model, checkpoints are pruned to K with the best kept among them, and a log line's loss
// averages the steps since the previous one, and a run frees its optimizer state when it ends.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initWebGPU, runtimeStats, tensor, type Tensor } from '@huatuo/tensor';
import { loadAdapter } from '@huatuo/llama';
import { listCheckpoints, readCheckpoint, train, TrainingError, type DeviceBatch, type TrainableModel } from '@huatuo/sft';
import { smallConfig, smallRecords, smallRun, tmp, writeRecords } from './trainer-setup.js';

let dataPath: string;

before(async () => {
  await initWebGPU();
  dataPath = writeRecords(tmp(), smallRecords(12));
});

/** The model with its training loss multiplied by NaN from optimizer step `nanStep` on. */
function nanFrom(model: TrainableModel, nanStep: number, accumulation: number): TrainableModel {
  let calls = 0;
  return {
    get trainableParameters() {
      return model.trainableParameters;
    },
    saveAdapter: (dir) => model.saveAdapter(dir),
    loadAdapter: (dir) => model.loadAdapter(dir),
    loss(batch: DeviceBatch, options) {
      const loss = model.loss(batch, options);
      if (!options.training) return loss;
      const step = Math.floor(calls++ / accumulation) + 1;
      return step >= nanStep ? loss.mul(NaN) : loss;
    },
  };
}

async function assertFiniteAdapter(dir: string): Promise<void> {
  const { base } = await smallRun(smallConfig(dataPath, tmp()));
  try {
    await loadAdapter(base.model, dir);
    for (const layer of base.model.layers) {
      for (const lin of [layer.qProj, layer.vProj]) {
        for (const t of [lin.lora!.A, lin.lora!.B]) {
          const values = (await t.toArray()) as Float32Array;
          assert.ok(values.every(Number.isFinite), `${dir}: ${lin.name} LoRA weights are finite`);
        }
      }
    }
  } finally {
    base.model.dispose();
  }
}

test('a NaN loss at step 5 stops the run with a TrainingError naming step 5 and checkpoint-4, which stays intact', async () => {
  const out = tmp();
  const config = smallConfig(dataPath, out, { saveSteps: 2, evalSteps: 2 });
  const { data, model, base } = await smallRun(config);
  const steps: number[] = [];
  try {
    await assert.rejects(
      train({ config, model: nanFrom(model, 5, 2), train: data.train, val: data.val, microBatchSize: 2, onProgress: (e) => e.kind === 'step' && steps.push(e.step) }),
      (e: unknown) => {
        assert.ok(e instanceof TrainingError, `a TrainingError, got ${String(e)}`);
        assert.match(e.message, /NaN/);
        assert.match(e.message, /step 5\b/);
        assert.ok(e.message.includes(join(out, 'checkpoint-4')), `names the last good checkpoint: ${e.message}`);
        return true;
      },
    );
  } finally {
    base.model.dispose();
  }
  assert.deepEqual(steps, [1, 2, 3, 4], 'no step is reported past the last finite loss');
  assert.deepEqual((await listCheckpoints(out)).map((c) => c.step), [2, 4], 'nothing was saved for the NaN step');
  assert.ok(!existsSync(join(out, 'adapter_model.safetensors')), 'no final adapter is written by a failed run');
  const saved = await readCheckpoint(join(out, 'checkpoint-4'));
  assert.equal(saved.state.step, 4);
  await assertFiniteAdapter(join(out, 'checkpoint-4'));
});

test('an infinite loss at the first step stops the run saying no checkpoint was written yet and to lower --learning-rate', async () => {
  // A learning rate of 1e30 does not overflow this model (the final RMSNorm rescales the huge
  // LoRA outputs), so the loss itself is made infinite.
  const out = tmp();
  const config = smallConfig(dataPath, out);
  const { data, model, base } = await smallRun(config);
  const infinite: TrainableModel = {
    get trainableParameters() {
      return model.trainableParameters;
    },
    saveAdapter: (dir) => model.saveAdapter(dir),
    loadAdapter: (dir) => model.loadAdapter(dir),
    loss: (batch, options) => model.loss(batch, options).mul(Infinity),
  };
  try {
    await assert.rejects(train({ config, model: infinite, train: data.train, val: data.val, microBatchSize: 2 }), (e: unknown) => {
      assert.ok(e instanceof TrainingError, `a TrainingError, got ${String(e)}`);
      assert.match(e.message, /became Infinity at step 1\b/);
      assert.match(e.message, /No checkpoint was written yet/);
      assert.match(e.message, /--learning-rate/);
      return true;
    });
  } finally {
    base.model.dispose();
  }
  assert.deepEqual(await listCheckpoints(out), []);
});

test("a run frees its optimizer's moments on the GPU when it returns and when it stops with an error", async () => {
  const config = smallConfig(dataPath, tmp(), { saveSteps: 2, evalSteps: 2 });
  const { data, model, base } = await smallRun(config);
  try {
    const params = [...model.trainableParameters.values()];
    const momentBytes = 2 * 4 * params.reduce((n, p) => n + p.size, 0);
    // The first run leaves what the model keeps for later forwards (rotary tables and the like).
    await train({ config, model, train: data.train, val: data.val, microBatchSize: 2 });
    const before = runtimeStats().bytesInUse;
    await train({ config: { ...config, outputDir: tmp() }, model, train: data.train, val: data.val, microBatchSize: 2 });
    const afterRun = runtimeStats().bytesInUse;
    await assert.rejects(train({ config: { ...config, outputDir: tmp() }, model: nanFrom(model, 3, 2), train: data.train, val: data.val, microBatchSize: 2 }), TrainingError);
    const afterFailure = runtimeStats().bytesInUse;
    assert.ok(momentBytes > 0);
    assert.equal(afterRun - before, 0, `bytes left in use by a finished run (its moments are ${momentBytes} bytes)`);
    assert.equal(afterFailure - afterRun, 0, `bytes left in use by a failed run (its moments are ${momentBytes} bytes)`);
  } finally {
    base.model.dispose();
  }
});

test('the adapter written at the end loads into a fresh base model in @huatuo/llama and reproduces the trained logits within 1e-6', async () => {
  const out = tmp();
  const config = smallConfig(dataPath, out, { numEpochs: 2, saveSteps: 1, evalSteps: 1, saveTotalLimit: 2, learningRate: 1e-2 });
  const { data, model, base } = await smallRun(config);
  const fresh = await smallRun(smallConfig(dataPath, tmp()));
  try {
    const result = await train({ config, model, train: data.train, val: data.val, microBatchSize: 2 });
    assert.equal(result.state.step, 4);
    for (const f of ['adapter_config.json', 'adapter_model.safetensors', 'metrics.jsonl', 'loss.svg']) assert.ok(existsSync(join(out, f)), `${f} written`);
    const peft = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(peft['peft_type'], 'LORA');
    assert.equal(peft['r'], 4);
    assert.equal(peft['lora_alpha'], 8);
    assert.deepEqual([...(peft['target_modules'] as string[])].sort(), ['q_proj', 'v_proj']);

    const ex = data.val[0]!;
    const ids = tensor(new Int32Array(ex.inputIds), [1, ex.inputIds.length]);
    const logitsOf = async (m: { forward(ids: Tensor): Tensor }) => (await m.forward(ids).toArray()) as Float32Array;
    const plain = await logitsOf(fresh.base.model);
    await loadAdapter(fresh.base.model, out);
    const trained = await logitsOf(model.llama);
    const loaded = await logitsOf(fresh.base.model);
    let changed = 0;
    let worst = 0;
    for (let i = 0; i < trained.length; i++) {
      changed = Math.max(changed, Math.abs(trained[i]! - plain[i]!));
      worst = Math.max(worst, Math.abs(trained[i]! - loaded[i]!));
    }
    assert.ok(changed > 1e-4, `training changed the logits (largest change ${changed})`);
    assert.ok(worst <= 1e-6, `the loaded adapter reproduces the trained logits: largest difference ${worst}`);

    // Pruning (--save-total-limit 2): the newest and the best (best_model_checkpoint), or the 2 newest when the best is one of them.
    const kept = (await listCheckpoints(out)).map((c) => c.step);
    const expected = result.state.bestStep! >= 3 ? [3, 4] : [result.state.bestStep!, 4];
    assert.deepEqual(kept, expected, `kept ${kept.join(', ')}, best ${result.state.bestStep}`);
    assert.equal(result.bestCheckpoint, join(out, `checkpoint-${result.state.bestStep}`));
  } finally {
    base.model.dispose();
    fresh.base.model.dispose();
  }
});

test('an unfinished checkpoint-N.tmp folder left by a crash is ignored by listing and by --resume latest, which removes it; a checkpoint-N without its trainer_state.json (another tool\'s) is ignored and kept', async () => {
  const out = tmp();
  const config = smallConfig(dataPath, out, { saveSteps: 2, evalSteps: 2 });
  const first = await smallRun(config);
  try {
    await train({ config, model: first.model, train: first.data.train, val: first.data.val, microBatchSize: 2, stopAfterStep: 2 });
  } finally {
    first.base.model.dispose();
  }
  mkdirSync(join(out, 'checkpoint-9.tmp'));
  writeFileSync(join(out, 'checkpoint-9.tmp', 'adapter_config.json'), '{');
  // A folder of another tool by a checkpoint's name: PEFT's adapter files, no trainer_state.json.
  mkdirSync(join(out, 'checkpoint-8'));
  writeFileSync(join(out, 'checkpoint-8', 'adapter_config.json'), '{}');
  assert.deepEqual((await listCheckpoints(out)).map((c) => c.step), [2], 'only complete checkpoints are listed');
  const second = await smallRun(config);
  try {
    const r = await train({ config, model: second.model, train: second.data.train, val: second.data.val, microBatchSize: 2, resume: 'latest', stopAfterStep: 3 });
    assert.deepEqual([...r.stepLosses.keys()], [3], 'resumed from checkpoint-2');
  } finally {
    second.base.model.dispose();
  }
  // The resume in its own output folder removed the unfinished copy, and left the folder it did not write.
  assert.deepEqual(readdirSync(out).filter((n) => n.startsWith('checkpoint-')).sort(), ['checkpoint-2', 'checkpoint-8']);
  assert.deepEqual(readdirSync(join(out, 'checkpoint-8')), ['adapter_config.json']);
});

test('maxSteps runs that many optimizer steps past the epochs given, the data order continuing into later epochs and the learning rate decaying to 0 at the last', async () => {
  const config = smallConfig(dataPath, tmp(), { numEpochs: 1, maxSteps: 5, warmupRatio: 0.2 });
  const { data, model, base } = await smallRun(config);
  const lrs = new Map<number, number>();
  try {
    const result = await train({ config, model, train: data.train, val: data.val, microBatchSize: 2, onProgress: (e) => e.kind === 'step' && lrs.set(e.step, e.lr!) });
    assert.equal(result.state.totalSteps, 5, 'one epoch is 2 steps; --max-steps makes it 5');
    assert.deepEqual([...result.stepLosses.keys()], [1, 2, 3, 4, 5]);
    assert.ok([...result.stepLosses.values()].every(Number.isFinite));
    // warm-up ceil(5 * 0.2) = 1 step, then linear decay over the remaining 4: steps 1..5 use lr(0..4).
    assert.deepEqual([...lrs.values()], [0, 3e-3, 3e-3 * 0.75, 3e-3 * 0.5, 3e-3 * 0.25]);
    assert.ok(existsSync(join(config.outputDir, 'adapter_model.safetensors')), 'a finished run writes its adapter');
  } finally {
    base.model.dispose();
  }
});

test("a log line's loss is the mean of the step losses since the previous log line, as the Trainer logs tr_loss", async () => {
  const config = smallConfig(dataPath, tmp(), { loggingSteps: 2 });
  const { data, model, base } = await smallRun(config);
  const logged = new Map<number, number>();
  try {
    const result = await train({ config, model, train: data.train, val: data.val, microBatchSize: 2, stopAfterStep: 4, onProgress: (e) => e.kind === 'log' && logged.set(e.step, e.loss!) });
    const step = (s: number) => result.stepLosses.get(s)!;
    assert.notEqual(step(1), step(2), 'the steps have different losses');
    assert.deepEqual([...logged], [[2, (step(1) + step(2)) / 2], [4, (step(3) + step(4)) / 2]]);
    const rows = readFileSync(join(config.outputDir, 'metrics.jsonl'), 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { step: number; loss?: number });
    assert.deepEqual(rows.filter((r) => r.loss !== undefined).map((r) => [r.step, r.loss]), [...logged]);
  } finally {
    base.model.dispose();
  }
});
