// Exact resumption: a run interrupted (by stopAfterStep, by an AbortSignal, or by SIGKILL of the
// process) and resumed from its checkpoint has the same per-step training losses as a run that
// was never interrupted, with LoRA dropout active; checkpoints hold what a resume needs.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initWebGPU } from '@huatuo/tensor';
import { progressReporter } from '@huatuo/cli';
import { CheckpointError, ConfigError, listCheckpoints, readCheckpoint, train, type ProgressEvent, type TrainConfig, type TrainResult } from '@huatuo/sft';
import { smallConfig, smallRecords, smallRun, tmp, writeRecords } from './trainer-setup.js';

const childScript = fileURLToPath(new URL('./resume-child.ts', import.meta.url));
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

let dataPath: string;
/** Losses of the uninterrupted 20-step run, steps 1..20. */
let full: number[];

async function run(
  config: TrainConfig,
  options: { resume?: string; overwrite?: boolean; stopAfterStep?: number; microBatchSize?: number; signal?: AbortSignal; abortAfter?: { step: number; controller: AbortController }; events?: ProgressEvent[] } = {},
): Promise<TrainResult> {
  const { data, model, base } = await smallRun(config);
  try {
    return await train({
      config,
      model,
      train: data.train,
      val: data.val,
      microBatchSize: options.microBatchSize ?? 2,
      resume: options.resume ?? null,
      overwriteOutputDir: options.overwrite,
      stopAfterStep: options.stopAfterStep,
      signal: options.abortAfter?.controller.signal,
      onProgress: (e) => {
        options.events?.push(e);
        if (e.kind === 'step' && options.abortAfter && e.step === options.abortAfter.step) options.abortAfter.controller.abort();
      },
    });
  } finally {
    base.model.dispose();
  }
}

function losses(result: TrainResult, from: number, to: number): number[] {
  const out: number[] = [];
  for (let s = from; s <= to; s++) {
    const l = result.stepLosses.get(s);
    assert.ok(l !== undefined, `step ${s} has a loss (steps run: ${[...result.stepLosses.keys()].join(', ')})`);
    out.push(l);
  }
  return out;
}

before(async () => {
  await initWebGPU();
  dataPath = writeRecords(tmp(), smallRecords(12));
  const result = await run(smallConfig(dataPath, tmp()));
  assert.equal(result.state.totalSteps, 20, 'the small recipe runs 20 optimizer steps');
  full = losses(result, 1, 20);
  assert.ok(full.every(Number.isFinite), `finite losses: ${full.join(', ')}`);
});

test('training 10 steps, stopping, and resuming from checkpoint-10 gives the losses of 20 uninterrupted steps, step for step', async () => {
  const out = tmp();
  const config = smallConfig(dataPath, out);
  const first = await run(config, { stopAfterStep: 10 });
  assert.deepEqual(losses(first, 1, 10), full.slice(0, 10), 'the first 10 steps repeat the uninterrupted run');
  assert.equal(first.stepLosses.size, 10);
  assert.ok(existsSync(join(out, 'checkpoint-10')), `checkpoint-10 written (have ${readdirSync(out).join(', ')})`);
  const resumed = await run(config, { resume: join(out, 'checkpoint-10') });
  assert.deepEqual([...resumed.stepLosses.keys()], [11, 12, 13, 14, 15, 16, 17, 18, 19, 20], 'the resumed run starts at step 11');
  assert.deepEqual(losses(resumed, 11, 20), full.slice(10), 'steps 11..20 equal the uninterrupted run exactly');
  assert.equal(resumed.state.step, 20);
});

test('resuming from another folder\'s checkpoint into a folder holding a third run is refused and leaves that run as it was; with overwriteOutputDir it is replaced', async () => {
  const source = tmp();
  await run(smallConfig(dataPath, source), { stopAfterStep: 10 });
  const other = tmp();
  await run(smallConfig(dataPath, other), { stopAfterStep: 5 });
  const names = readdirSync(other).sort();
  const weights = readFileSync(join(other, 'checkpoint-5', 'adapter_model.safetensors'));
  await assert.rejects(
    run(smallConfig(dataPath, other), { resume: join(source, 'checkpoint-10') }),
    (e: unknown) => e instanceof ConfigError && e.flag === '--output-dir' && /already holds a training run/.test(e.message) && /--overwrite-output-dir/.test(e.message),
  );
  assert.deepEqual(readdirSync(other).sort(), names, 'the run in the folder keeps its files');
  assert.deepEqual(readFileSync(join(other, 'checkpoint-5', 'adapter_model.safetensors')), weights, 'and its checkpoint');
  const resumed = await run(smallConfig(dataPath, other), { resume: join(source, 'checkpoint-10'), overwrite: true });
  assert.deepEqual(losses(resumed, 11, 20), full.slice(10), 'steps 11..20 continue the source run exactly');
  const steps = (await listCheckpoints(other)).map((c) => c.step);
  assert.ok(steps.length > 0 && steps.every((s) => s > 10), `only the resumed run's checkpoints remain: ${steps.join(', ')}`);
});

test('an AbortSignal between checkpoints saves the step reached, and --resume latest continues from it with identical losses', async () => {
  const out = tmp();
  const config = smallConfig(dataPath, out);
  const first = await run(config, { abortAfter: { step: 7, controller: new AbortController() } });
  assert.equal(first.interrupted, true);
  assert.equal(first.state.step, 7);
  assert.deepEqual((await listCheckpoints(out)).map((c) => c.step), [5, 7], 'the save steps plus the step where the abort came');
  const saved = await readCheckpoint(join(out, 'checkpoint-7'));
  assert.equal(saved.state.step, 7);
  assert.ok(!existsSync(join(out, 'adapter_model.safetensors')), 'an interrupted run leaves no final adapter at the top of the output folder');
  const resumed = await run(config, { resume: 'latest' });
  assert.deepEqual(losses(resumed, 8, 20), full.slice(7), 'steps 8..20 equal the uninterrupted run exactly');
});

test('a process killed with SIGKILL after a checkpoint resumes from it to the same losses as an uninterrupted run', async () => {
  const out = tmp();
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', childScript, dataPath, out], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' } });
  const childLosses = new Map<number, number>();
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let buffered = '';
  let killedAt: number | null = null;
  child.stdout.on('data', (d: Buffer) => {
    buffered += d.toString();
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      const e = JSON.parse(line) as { kind: string; step: number; loss?: number };
      if (e.kind === 'step') childLosses.set(e.step, e.loss!);
      if (e.kind === 'save' && e.step === 10 && killedAt === null) {
        killedAt = e.step;
        child.kill('SIGKILL');
      }
    }
  });
  const { signal } = await exit;
  assert.equal(signal, 'SIGKILL', `the child was killed, not finished (stderr: ${stderr.slice(-2000)})`);
  assert.equal(killedAt, 10);
  const kept = await listCheckpoints(out);
  const latest = kept.at(-1)!;
  assert.ok(latest.step >= 10 && latest.step < 20, `the newest complete checkpoint is from the killed run, got ${latest?.step}`);
  for (const [step, loss] of childLosses) assert.equal(loss, full[step - 1], `the child's step ${step} matches the uninterrupted run`);
  const resumed = await run(smallConfig(dataPath, out), { resume: 'latest' });
  assert.equal(Math.min(...resumed.stepLosses.keys()), latest.step + 1, 'no step after the checkpoint is skipped or repeated');
  assert.deepEqual(losses(resumed, latest.step + 1, 20), full.slice(latest.step), 'the resumed steps equal the uninterrupted run exactly');
});

/** Every file under `dir` with its bytes, to show that a refused resume changed nothing. */
function snapshot(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) out.set(join(entry.parentPath, entry.name), readFileSync(join(entry.parentPath, entry.name)));
  }
  return out;
}

test('a checkpoint records the values its steps depend on; a resume changing any of them is refused naming the flag, the saved and the new value, and changes no file', async () => {
  const out = tmp();
  await run(smallConfig(dataPath, out), { stopAfterStep: 5 });
  const dir = join(out, 'checkpoint-5');
  const state = JSON.parse(readFileSync(join(dir, 'trainer_state.json'), 'utf8')) as { recipe?: Record<string, unknown> };
  const { data, ...values } = state.recipe ?? {};
  assert.deepEqual(values, {
    learningRate: 3e-3, adamBeta1: 0.9, adamBeta2: 0.999, adamEpsilon: 1e-8, weightDecay: 0, maxGradNorm: 1, epochRemainder: 'carry', loraR: 4, loraAlpha: 8, loraDropout: 0.05,
    loraTargetModules: ['q_proj', 'v_proj'], loraUseRslora: false, loraUseDora: false, loraModulesToSave: [], batchSize: 4, numEpochs: 10, maxSteps: -1, seed: 42,
    cutoffLen: 64, valSetSize: 2, splitSeed: 2023, trainOnInputs: false, padToMultipleOf: 8, quantize: 'none', microBatchSize: 2, precision: 'f32',
  });
  assert.deepEqual({ ...(data as object), sha256: undefined }, { path: dataPath, template: 'med_template', trainRecords: 10, valRecords: 2, sha256: undefined });
  assert.match((data as { sha256: string }).sha256, /^[0-9a-f]{64}$/);
  const before = snapshot(out);

  const refused = async (overrides: Record<string, unknown>, flag: string, saved: string, wanted: string, microBatchSize?: number) =>
    assert.rejects(run(smallConfig(dataPath, out, overrides), { resume: dir, microBatchSize }), (e: unknown) => {
      assert.ok(e instanceof CheckpointError, `a CheckpointError, got ${String(e)}`);
      assert.ok(e.message.startsWith(`${dir} was written by a run with other values than this one`), e.message);
      assert.ok(e.message.includes(`${flag} ${saved} there, ${wanted} here`), `${flag}: ${e.message}`);
      assert.ok(e.message.includes(`Resume with ${flag} ${saved}, or start a new run with these values in another --output-dir`), e.message);
      return true;
    });
  await refused({ weightDecay: 0.01 }, '--weight-decay', '0', '0.01');
  await refused({ maxGradNorm: 0.5 }, '--max-grad-norm', '1', '0.5');
  await refused({ adamBeta1: 0.8 }, '--adam-beta1', '0.9', '0.8');
  await refused({ adamBeta2: 0.99 }, '--adam-beta2', '0.999', '0.99');
  await refused({ adamEpsilon: 1e-6 }, '--adam-epsilon', '1e-8', '0.000001');
  await refused({ loraDropout: 0.1 }, '--lora-dropout', '0.05', '0.1');
  await refused({ learningRate: 1e-3 }, '--learning-rate', '0.003', '0.001');
  await refused({ seed: 7 }, '--seed', '42', '7');
  await refused({ microBatchSize: 1 }, '--micro-batch', '2', '1', 1);
  await refused({ batchSize: 8 }, '--batch-size', '4', '8');

  // Two differences at once are both named, and both restored in the advice.
  await assert.rejects(run(smallConfig(dataPath, out, { weightDecay: 0.1, loraUseDora: true }), { resume: dir }), (e: unknown) => {
    assert.ok(e instanceof CheckpointError);
    assert.match(e.message, /--lora-use-dora false there, true here; --weight-decay 0 there, 0\.1 here\. Resume with --lora-use-dora false and --weight-decay 0,/);
    return true;
  });

  // The same number of records with one answer changed: the data differ, named with both files.
  const records = smallRecords(12);
  records[3] = { ...records[3]!, output: 'rest in a dark room 3' };
  const edited = writeRecords(tmp(), records);
  await assert.rejects(run(smallConfig(edited, out), { resume: dir }), (e: unknown) => {
    assert.ok(e instanceof CheckpointError);
    assert.ok(e.message.includes(`the data differ: ${dataPath} (template med_template): 10 training and 2 validation records, sha256 `), e.message);
    assert.ok(e.message.includes(`there, ${edited} (template med_template): 10 training and 2 validation records`), e.message);
    assert.match(e.message, /Resume with the checkpoint's --data file as it was, with its --template/);
    return true;
  });
  assert.deepEqual(snapshot(out), before, 'no file of the run changed');

  // The same records in another file are the same data: the run resumes and continues exactly.
  const moved = join(tmp(), 'moved.jsonl');
  copyFileSync(dataPath, moved);
  const resumed = await run(smallConfig(moved, out), { resume: dir, stopAfterStep: 7 });
  assert.deepEqual(losses(resumed, 6, 7), full.slice(5, 7));
});

test('a resume refused into a folder that --overwrite-output-dir would clear leaves that folder as it was', async () => {
  const source = tmp();
  await run(smallConfig(dataPath, source), { stopAfterStep: 5 });
  const other = tmp();
  await run(smallConfig(dataPath, other), { stopAfterStep: 5 });
  const before = snapshot(other);
  await assert.rejects(run(smallConfig(dataPath, other, { learningRate: 1e-3 }), { resume: join(source, 'checkpoint-5'), overwrite: true }), CheckpointError);
  assert.deepEqual(snapshot(other), before, 'the run in the folder keeps every file');
});

test('a checkpoint written before the recipe was recorded resumes: values it does not record are unknown, not a difference; its recipe key and micro-batch still refuse', async () => {
  // Runs of that time dropped an epoch's leftover micro-batch (here 5 micro-batches per epoch, accumulation 2).
  const older = (outputDir: string, overrides: Record<string, unknown> = {}) => smallConfig(dataPath, outputDir, { epochRemainder: 'drop', ...overrides });
  const reference = await run(older(tmp()), { stopAfterStep: 10 });
  const out = tmp();
  await run(older(out), { stopAfterStep: 5 });
  const dir = join(out, 'checkpoint-5');
  const statePath = join(dir, 'trainer_state.json');
  const { recipe: _, lrSchedule: __, lossNormalization: ___, ...written } = JSON.parse(readFileSync(statePath, 'utf8')) as Record<string, unknown>;
  writeFileSync(statePath, JSON.stringify(written, null, 1));

  // Its micro-batch and accumulation are recorded in every checkpoint: still named.
  await assert.rejects(run(older(out, { microBatchSize: 1 }), { resume: dir, microBatchSize: 1 }), (e: unknown) => e instanceof CheckpointError && e.message.includes('--micro-batch 2 there, 1 here'));
  // The learning rate is tied by the recipe key alone.
  await assert.rejects(run(older(out, { learningRate: 1e-3 }), { resume: dir }), (e: unknown) => e instanceof CheckpointError && /same flags/.test(e.message));

  // Weight decay was not recorded: unknown, so another value resumes (and is recorded from then on).
  const other = tmp();
  const decayed = await run(older(other, { weightDecay: 0.01 }), { resume: dir, stopAfterStep: 6 });
  assert.deepEqual([...decayed.stepLosses.keys()], [6]);
  assert.equal(decayed.state.recipe?.weightDecay, 0.01);

  const resumed = await run(older(out), { resume: dir, stopAfterStep: 10 });
  assert.deepEqual(losses(resumed, 6, 10), losses(reference, 6, 10), 'the same flags continue the run exactly');
  const state = JSON.parse(readFileSync(join(out, 'checkpoint-10', 'trainer_state.json'), 'utf8')) as { recipe?: { weightDecay?: number } };
  assert.equal(state.recipe?.weightDecay, 0, 'its later checkpoints record the recipe');
});

test('a run records its learning-rate schedule in its checkpoints; a resume continues it exactly and refuses another schedule type, warm-up or num_cycles', async () => {
  const schedule = { lrSchedulerType: 'cosine_with_restarts', lrSchedulerKwargs: { num_cycles: 2 }, warmupSteps: 3 };
  const stepLrs = (events: ProgressEvent[]) => new Map(events.filter((e) => e.kind === 'step').map((e) => [e.step, e.lr!]));
  const uninterruptedEvents: ProgressEvent[] = [];
  const uninterrupted = await run(smallConfig(dataPath, tmp(), schedule), { stopAfterStep: 8, events: uninterruptedEvents });
  const lrs = stepLrs(uninterruptedEvents);
  assert.deepEqual([lrs.get(1), lrs.get(4)], [0, 3e-3]);
  assert.ok(lrs.get(8)! < lrs.get(5)!, 'the first cosine decays');

  const out = tmp();
  await run(smallConfig(dataPath, out, schedule), { stopAfterStep: 5 });
  const dir = join(out, 'checkpoint-5');
  const state = JSON.parse(readFileSync(join(dir, 'trainer_state.json'), 'utf8')) as { lrSchedule?: unknown };
  assert.deepEqual(state.lrSchedule, { type: 'cosine_with_restarts', warmupSteps: 3, kwargs: { num_cycles: 2 } });
  const refused = async (overrides: Record<string, unknown>, pattern: RegExp) =>
    assert.rejects(run(smallConfig(dataPath, out, overrides), { resume: dir }), (e: unknown) => {
      assert.ok(e instanceof CheckpointError, `a CheckpointError, got ${String(e)}`);
      assert.match(e.message, /checkpoint-5 was written by a run with the learning-rate schedule --lr-scheduler-type cosine_with_restarts --warmup-steps 3 --lr-scheduler-kwargs '\{"num_cycles":2\}'/);
      assert.match(e.message, pattern);
      assert.match(e.message, /Resume with the checkpoint's --lr-scheduler-type and --lr-scheduler-kwargs and --warmup-steps 3 \(or a --warmup-ratio giving 3 steps\)/);
      return true;
    });
  await refused({}, /this run's is --lr-scheduler-type linear --warmup-steps 2\./);
  await refused({ ...schedule, warmupSteps: 4 }, /this run's is --lr-scheduler-type cosine_with_restarts --warmup-steps 4 /);
  await refused({ ...schedule, lrSchedulerKwargs: { num_cycles: 3 } }, /"num_cycles":3/);
  await refused({ ...schedule, lrSchedulerType: 'cosine', lrSchedulerKwargs: {} }, /this run's is --lr-scheduler-type cosine --warmup-steps 3 --lr-scheduler-kwargs '\{"num_cycles":0.5\}'/);

  // --warmup-ratio 0.15 gives ceil(20 * 0.15) = 3 steps too: the same schedule.
  const events: ProgressEvent[] = [];
  const resumed = await run(smallConfig(dataPath, out, { ...schedule, warmupSteps: 0, warmupRatio: 0.15 }), { resume: dir, stopAfterStep: 8, events });
  assert.deepEqual(losses(resumed, 6, 8), losses(uninterrupted, 6, 8), 'steps 6..8 after the resume equal the uninterrupted run');
  assert.deepEqual([...stepLrs(events)], [6, 7, 8].map((s) => [s, lrs.get(s)]), 'and so do their learning rates');
});

test('a resumed run says which checkpoint it continues from, and metrics.jsonl then holds every step once (the rows logged after the checkpoint are dropped)', async () => {
  const out = tmp();
  const config = smallConfig(dataPath, out);
  const rows = () => readFileSync(join(out, 'metrics.jsonl'), 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { step: number; loss?: number; valLoss?: number });
  // Stopping after step 7 leaves checkpoint-5 and rows of steps 6 and 7, as a kill after step 7 would.
  await run(config, { stopAfterStep: 7 });
  assert.deepEqual((await listCheckpoints(out)).map((c) => c.step), [5]);
  assert.equal(Math.max(...rows().map((r) => r.step)), 7);

  const events: ProgressEvent[] = [];
  await run(config, { resume: 'latest', events });
  const resume = events.find((e) => e.kind === 'resume');
  assert.ok(resume, `a resume event (got ${[...new Set(events.map((e) => e.kind))].join(', ')})`);
  assert.equal(resume.checkpoint, join(out, 'checkpoint-5'));
  assert.equal(resume.step, 5);
  assert.equal(events[0], resume, 'reported before the first step');
  let printed = '';
  progressReporter({ write: (s: string) => (printed += s) }, false)(resume);
  assert.equal(printed, `resumed from ${join(out, 'checkpoint-5')} at step 5/20\n`);

  const all = rows();
  const lossSteps = all.filter((r) => r.loss !== undefined).map((r) => r.step);
  assert.deepEqual(lossSteps, Array.from({ length: 20 }, (_, i) => i + 1), 'one training-loss row per step, none repeated');
  assert.deepEqual(all.filter((r) => r.valLoss !== undefined).map((r) => r.step), [5, 10, 15, 20], 'one validation row per evaluation');
  for (const r of all) if (r.loss !== undefined) assert.equal(r.loss, full[r.step - 1], `step ${r.step}'s logged loss is the uninterrupted run's`);
});
