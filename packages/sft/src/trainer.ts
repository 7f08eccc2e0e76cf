// The training loop of HuaTuo's recipe as the Hugging Face Trainer runs it: micro-batches whose
// gradients accumulate to the effective batch, global-norm clipping, AdamW with warm-up then linear
// decay, evaluation and checkpoints every N steps, the best checkpoint kept and loaded at the end.
// Runs resume exactly: data order, dropout seeds and optimizer state all come from the checkpoint.
// One loop for Node and the browser: its files go through run-files.ts (disk or IndexedDB).
import { AdamW, clipGradNorm, DeviceError, GradScaler, hasF16, runtimeStats, startScope, tensor, type FloatDType, type GradScalerOptions, type Tensor } from '@huatuo/tensor';
import { chunkOrder, collate, epochOrder, IGNORE_INDEX, type TokenizedExample } from './batch.js';
import {
  checkpointDir,
  listCheckpoints,
  pruneCheckpoints,
  readCheckpoint,
  writeCheckpoint,
  type CheckpointPayload,
  type TrainerState,
} from './checkpoint.js';
import { learningRateAt, resolvePrecision, trainingSchedule, type TrainConfig, type TrainingSchedule } from './config.js';
import { CheckpointError, ConfigError, TrainingError } from './errors.js';
import { writeLossCurve, appendMetrics, writeMetrics, type MetricsRow } from './metrics.js';
import { checkOutputDir, clearRun } from './output-dir.js';
import { runFiles } from './run-files.js';

/** A padded micro-batch on the device. */
export interface DeviceBatch {
  /** [B, T] i32 token ids. */
  inputIds: Tensor;
  /** [B, T] i32 targets, -100 where no loss is taken. */
  labels: Tensor;
  /** [B, T] i32, 1 on tokens and 0 on padding. */
  attentionMask: Tensor;
  /** Non-padding tokens in the batch. */
  tokens: number;
}

/** What the trainer needs from a model with LoRA adapters. */
export interface TrainableModel {
  /** Mean cross-entropy over the labels that are not -100 (logits shifted as a causal LM's). */
  loss(batch: DeviceBatch, options: { training: boolean; dropoutSeed: number }): Tensor;
  /** The trainable (LoRA) parameters, by PEFT key. */
  readonly trainableParameters: ReadonlyMap<string, Tensor>;
  /** Writes `adapter_config.json` and `adapter_model.safetensors` into `dir`. */
  saveAdapter(dir: string): Promise<void>;
  /** Loads a PEFT adapter folder's weights into the trainable parameters. */
  loadAdapter(dir: string): Promise<void>;
  /** The dtype its activations compute in (default f32): f16 trains with loss scaling. */
  readonly dtype?: FloatDType;
}

/** A progress event, for a progress bar or log lines. */
export interface ProgressEvent {
  /** 'resume': the run continues from `checkpoint`, whose step is `step`. */
  kind: 'resume' | 'step' | 'log' | 'eval' | 'save' | 'done';
  step: number;
  totalSteps: number;
  loss?: number;
  valLoss?: number;
  lr?: number;
  tokensPerSec?: number;
  elapsedSec: number;
  checkpoint?: string;
  /** On 'step' events of a loss-scaled (mixed precision) run: the scale this step's loss was multiplied by. */
  lossScale?: number;
  /** On 'step' events: true when the gradients held inf/NaN and the optimizer step was skipped (mixed precision). */
  skipped?: boolean;
}

/** Options of {@link train}. */
export interface TrainOptions {
  config: TrainConfig;
  model: TrainableModel;
  train: readonly TokenizedExample[];
  val: readonly TokenizedExample[];
  /** Examples per forward pass (the gradient accumulation makes up config.batchSize). */
  microBatchSize: number;
  /** A checkpoint folder to resume from, or 'latest' for the newest in the output folder. */
  resume?: string | null;
  /** Aborting saves a checkpoint at the end of the current step and stops. */
  signal?: AbortSignal;
  onProgress?: (event: ProgressEvent) => void;
  /** Stop after this many optimizer steps in total (for tests and short runs); the schedule is unchanged. */
  stopAfterStep?: number;
  /**
   * Start afresh in an output folder that holds another run: its adapter, metrics, loss curve and
   * checkpoints are removed before the first step (the Hugging Face Trainer's `overwrite_output_dir`).
   * Without it such a folder is refused unless resuming.
   */
  overwriteOutputDir?: boolean;
  /** Loss scaling of a mixed-precision run (torch.amp.GradScaler's arguments; default its defaults). */
  gradScaler?: Partial<Omit<GradScalerOptions, 'enabled'>>;
}

/** What {@link train} returns. */
export interface TrainResult {
  state: TrainerState;
  /** Training loss of every optimizer step run in this call, by step. */
  stepLosses: Map<number, number>;
  /** Folder of the checkpoint loaded at the end (the best by validation loss), if any. */
  bestCheckpoint: string | null;
  interrupted: boolean;
  adapterDir: string;
}

/** Seed of the dropout masks of one micro-batch: the same step always draws the same masks. */
function dropoutSeed(seed: number, step: number, micro: number): number {
  return (Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(step + 1, 0x85ebca6b) ^ Math.imul(micro + 1, 0xc2b2ae35)) >>> 0;
}

async function recipeKey(config: TrainConfig, nTrain: number, microBatchSize: number): Promise<string> {
  const keyed = {
    cutoffLen: config.cutoffLen,
    loraR: config.loraR,
    loraAlpha: config.loraAlpha,
    loraTargetModules: config.loraTargetModules,
    batchSize: config.batchSize,
    microBatchSize,
    numEpochs: config.numEpochs,
    learningRate: config.learningRate,
    seed: config.seed,
    nTrain,
    // Absent unless set, so the checkpoints of runs without --max-steps keep their key.
    ...(config.maxSteps > 0 ? { maxSteps: config.maxSteps } : {}),
  };
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(JSON.stringify(keyed))));
  return [...digest.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

function toDevice(examples: readonly TokenizedExample[], config: TrainConfig): DeviceBatch {
  const b = collate(examples, { padId: config.padId, padToMultipleOf: config.padToMultipleOf, paddingSide: config.paddingSide });
  const shape = [b.batchSize, b.seqLen];
  let tokens = 0;
  for (const m of b.attentionMask) tokens += m;
  return {
    inputIds: tensor(b.inputIds, shape),
    labels: tensor(b.labels, shape),
    attentionMask: tensor(b.attentionMask, shape),
    tokens,
  };
}

/** Whether an example has a label the shifted loss counts (labels 1..T-1 that are not -100). */
function hasTarget(example: TokenizedExample): boolean {
  for (let t = 1; t < example.labels.length; t++) if (example.labels[t] !== IGNORE_INDEX) return true;
  return false;
}

/** Micro-batches of the whole run in order: epoch by epoch, leftovers that do not fill a step dropped. */
function stepBatches(nTrain: number, config: TrainConfig, schedule: TrainingSchedule, microBatchSize: number) {
  const accumulation = schedule.gradientAccumulationSteps;
  return (step: number): number[][] => {
    const epoch = Math.floor(step / schedule.stepsPerEpoch);
    const within = step % schedule.stepsPerEpoch;
    const chunks = chunkOrder(epochOrder(nTrain, config.seed, epoch), microBatchSize);
    return chunks.slice(within * accumulation, (within + 1) * accumulation);
  };
}

/** Validation loss: per-batch mean losses averaged with batch-size weights (as the HF Trainer reports). */
export async function evaluate(model: TrainableModel, val: readonly TokenizedExample[], config: TrainConfig, microBatchSize: number): Promise<number> {
  let total = 0;
  let count = 0;
  for (const chunk of chunkOrder(val.map((_, i) => i), microBatchSize)) {
    if (!chunk.some((i) => hasTarget(val[i]!))) continue; // no answer token: no loss to average
    const scope = startScope();
    try {
      const batch = toDevice(chunk.map((i) => val[i]!), config);
      const loss = await model.loss(batch, { training: false, dropoutSeed: 0 }).item();
      total += loss * chunk.length;
      count += chunk.length;
    } finally {
      scope.end();
    }
  }
  return count === 0 ? NaN : total / count;
}

/** Whether the model's dtype is the one the config's precision asks for; true when losses need scaling (f16). */
function lossScaling(config: TrainConfig, model: TrainableModel): boolean {
  const dtype = model.dtype ?? 'f32';
  if (config.precision === 'auto') return dtype === 'f16';
  const want = resolvePrecision(config.precision, hasF16()) === 'mixed' ? 'f16' : 'f32';
  if (dtype !== want) {
    throw new ConfigError('--precision', `${config.precision} trains a model computing in ${want}, but this one computes in ${dtype}; load the base in ${want} or choose --precision ${dtype === 'f16' ? 'mixed' : 'f32'}`);
  }
  return dtype === 'f16';
}

/**
 * The checkpoint a run resumes from ('latest': the newest in the output folder), read and checked
 * against the run's recipe; what the real run reads, so `--dry-run` can check it too.
 */
export async function readResumePoint(resume: string, config: TrainConfig, nTrain: number, microBatchSize: number): Promise<{ dir: string; payload: CheckpointPayload }> {
  const dir = resume === 'latest' ? (await listCheckpoints(config.outputDir)).pop()?.dir : resume;
  if (!dir) throw new CheckpointError(`--resume latest: no checkpoint in ${config.outputDir}`);
  const payload = await readCheckpoint(dir);
  if (payload.state.recipeKey !== (await recipeKey(config, nTrain, microBatchSize))) {
    throw new CheckpointError(
      `${dir} was written by a run with other recipe values (data size, batch, micro-batch, LoRA, epochs, max steps, lr or seed); resume with the same flags`,
    );
  }
  return { dir, payload };
}

/** Runs (or resumes) training and leaves the final adapter in `config.outputDir`. */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const { config, model, microBatchSize } = options;
  const scaler = new GradScaler({ ...options.gradScaler, enabled: lossScaling(config, model) });
  const schedule = trainingSchedule(config, options.train.length, microBatchSize);
  const accumulation = schedule.gradientAccumulationSteps;
  const key = await recipeKey(config, options.train.length, microBatchSize);
  let state: TrainerState = {
    step: 0,
    totalSteps: schedule.totalSteps,
    microBatchSize,
    gradientAccumulation: accumulation,
    history: [],
    bestValLoss: null,
    bestStep: null,
    recipeKey: key,
  };

  // Another run's checkpoints would be counted by the pruner and its metrics appended to.
  if (!options.resume) {
    await checkOutputDir(runFiles, config.outputDir, { resume: false, overwrite: options.overwriteOutputDir ?? false });
    if (options.overwriteOutputDir) await clearRun(runFiles, config.outputDir);
  }

  // The checkpoint's adapter is loaded before the optimizer is built: loading replaces the
  // parameter tensors, and the optimizer must hold (and restore the moments of) the new ones.
  let saved: Awaited<ReturnType<typeof readCheckpoint>> | null = null;
  let resumedFrom = '';
  if (options.resume) {
    const point = await readResumePoint(options.resume, config, options.train.length, microBatchSize);
    const dir = point.dir;
    saved = point.payload;
    await model.loadAdapter(dir);
    resumedFrom = dir;
  }
  const params = [...model.trainableParameters.values()];
  const optimizer = new AdamW(params, {
    lr: config.learningRate,
    betas: [config.adamBeta1, config.adamBeta2],
    eps: config.adamEpsilon,
    weightDecay: config.weightDecay,
  });
  const metricsPath = runFiles.join(config.outputDir, 'metrics.jsonl');
  if (saved) {
    optimizer.loadStateDict(saved.optimizer as never);
    state = saved.state;
    if (scaler.enabled && state.gradScaler) scaler.loadStateDict(state.gradScaler);
    // The interrupted run may have logged steps past its checkpoint; they run again, so
    // metrics.jsonl goes back to the checkpoint's history (replaced whole, atomically).
    await writeMetrics(metricsPath, state.history);
    options.onProgress?.({ kind: 'resume', step: state.step, totalSteps: schedule.totalSteps, elapsedSec: 0, checkpoint: resumedFrom });
  }

  const batchesOf = stepBatches(options.train.length, config, schedule, microBatchSize);
  const stepLosses = new Map<number, number>();
  const started = performance.now();
  let tokensSinceLog = 0;
  let timeAtLog = performance.now();
  let interrupted = false;
  const lastStep = Math.min(schedule.totalSteps, options.stopAfterStep ?? Infinity);
  const elapsed = () => (performance.now() - started) / 1000;

  const save = async (): Promise<string> => {
    const dir = await writeCheckpoint(config.outputDir, state.step, { state, optimizer: await optimizer.stateDict() }, (d) => model.saveAdapter(d));
    await pruneCheckpoints(config.outputDir, config.saveTotalLimit, state.bestStep);
    options.onProgress?.({ kind: 'save', step: state.step, totalSteps: schedule.totalSteps, elapsedSec: elapsed(), checkpoint: dir });
    return dir;
  };

  // A lost device can surface in a step, an evaluation or a save: each says where the run stood.
  let activity = '';
  try {
    while (state.step < lastStep) {
      const step = state.step;
      activity = `at step ${step + 1} of ${schedule.totalSteps}`;
      const lr = learningRateAt(step, schedule, config.learningRate);
      optimizer.setLr(lr);
      const scope = startScope();
      const lossScale = scaler.getScale();
      let stepped = true;
      let stepLoss: number;
      try {
        let lossSum: Tensor | null = null;
        let counted = 0;
        batchesOf(step).forEach((chunk, micro) => {
          const examples = chunk.map((i) => options.train[i]!);
          // A micro-batch of records cut before their answer has no label to take a loss on (its
          // mean would be 0/0 = NaN); such records add no loss, as the data warnings say.
          if (!examples.some(hasTarget)) return;
          const batch = toDevice(examples, config);
          tokensSinceLog += batch.tokens;
          const loss = model.loss(batch, { training: true, dropoutSeed: dropoutSeed(config.seed, step, micro) });
          loss.mul(lossScale / accumulation).backward();
          lossSum = lossSum ? lossSum.add(loss) : loss;
          counted++;
        });
        if (lossSum) {
          // Clipping sees the true gradients; a step whose gradients overflowed is skipped and the scale backs off.
          scaler.unscale(optimizer);
          if (config.maxGradNorm > 0) clipGradNorm(params, config.maxGradNorm);
          stepped = await scaler.step(optimizer);
          scaler.update();
          optimizer.zeroGrad();
        }
        // The mean over the micro-batches that had answer tokens; 0 (and no update) when none had.
        stepLoss = lossSum ? (await (lossSum as Tensor).item()) / counted : 0;
      } finally {
        scope.end();
      }
      if (!Number.isFinite(stepLoss)) {
        const last = (await listCheckpoints(config.outputDir)).pop();
        throw new TrainingError(
          `the training loss became ${stepLoss} at step ${step + 1}; stopped without saving this step. ` +
            (last ? `The last good checkpoint is ${last.dir}: resume from it with a lower --learning-rate.` : 'No checkpoint was written yet: lower --learning-rate.'),
        );
      }
      state.step = step + 1;
      if (scaler.enabled) state.gradScaler = scaler.stateDict();
      stepLosses.set(state.step, stepLoss);
      const scaling = scaler.enabled ? { lossScale, skipped: !stepped } : {};
      options.onProgress?.({ kind: 'step', step: state.step, totalSteps: schedule.totalSteps, loss: stepLoss, lr, elapsedSec: elapsed(), ...scaling });

      if (state.step % config.loggingSteps === 0 || state.step === schedule.totalSteps) {
        const now = performance.now();
        const tokensPerSec = (tokensSinceLog * 1000) / Math.max(1, now - timeAtLog);
        tokensSinceLog = 0;
        timeAtLog = now;
        const row: MetricsRow = { step: state.step, loss: stepLoss, lr, tokensPerSec, gpuBytes: runtimeStats().bytesInUse };
        state.history.push(row);
        await appendMetrics(metricsPath, row);
        options.onProgress?.({ kind: 'log', step: state.step, totalSteps: schedule.totalSteps, loss: stepLoss, lr, tokensPerSec, elapsedSec: elapsed() });
      }
      const evalNow = options.val.length > 0 && (state.step % config.evalSteps === 0 || state.step === schedule.totalSteps);
      if (evalNow) {
        activity = `in the evaluation after step ${state.step} of ${schedule.totalSteps}`;
        const valLoss = await evaluate(model, options.val, config, microBatchSize);
        state.history.push({ step: state.step, valLoss });
        await appendMetrics(metricsPath, { step: state.step, valLoss });
        if (state.bestValLoss === null || valLoss < state.bestValLoss) {
          state.bestValLoss = valLoss;
          state.bestStep = state.step;
        }
        await writeLossCurve(runFiles.join(config.outputDir, 'loss.svg'), state.history);
        options.onProgress?.({ kind: 'eval', step: state.step, totalSteps: schedule.totalSteps, valLoss, elapsedSec: elapsed() });
      }
      const saveNow = state.step % config.saveSteps === 0 || state.step === schedule.totalSteps;
      activity = `while saving the checkpoint of step ${state.step} of ${schedule.totalSteps}`;
      if (saveNow) await save();
      if (options.signal?.aborted) {
        if (!saveNow) await save();
        interrupted = true;
        break;
      }
    }
  } catch (e) {
    if (e instanceof DeviceError) {
      const last = (await listCheckpoints(config.outputDir)).pop();
      throw new TrainingError(
        `the GPU device failed ${activity} (${e.message}); ` + (last ? `resume with --resume ${last.dir}` : 'no checkpoint was written yet; start again'),
      );
    }
    throw e;
  }

  await writeLossCurve(runFiles.join(config.outputDir, 'loss.svg'), state.history);
  let bestCheckpoint: string | null = null;
  const finished = state.step >= schedule.totalSteps;
  if (finished && config.loadBestModelAtEnd && state.bestStep !== null) {
    const dir = checkpointDir(config.outputDir, state.bestStep);
    if (await runFiles.exists(dir)) {
      await model.loadAdapter(dir);
      bestCheckpoint = dir;
    }
  }
  // The final adapter sits at the top of the output folder, as PEFT's save_pretrained leaves it.
  if (!interrupted) {
    await model.saveAdapter(config.outputDir);
  }
  options.onProgress?.({ kind: 'done', step: state.step, totalSteps: schedule.totalSteps, elapsedSec: elapsed() });
  return { state, stepLosses, bestCheckpoint, interrupted, adapterDir: config.outputDir };
}
