// The training loop of HuaTuo's recipe as the Hugging Face Trainer runs it: optimizer steps over
// accumulated micro-batches (train-step.ts), logging, evaluation and checkpoints every N steps, the
// best checkpoint loaded at the end; exact resumes (resume.ts). One loop for Node and the browser.
import { AdamW, DeviceError, GradScaler, readyAttention, runtimeStats } from '@huatuo/tensor';
import { checkpointDir, checkpointOrAside, finishCheckpointReplacements, listCheckpoints, pruneCheckpoints, readCheckpoint, removeAllButBestCheckpoint, writeCheckpoint, writeTrainerState, type TrainerState } from './checkpoint.js';
import { controlAtSave, derivedHfState, evalLog, hfRunFields, newHfState, noteBestAtEvaluation, noteBestAtSave, pythonRound, stepFlow, trainEndLog, trainerFlow, trainLog, type HfTrainerState } from './hf-trainer-state.js';
import { learningRateAt, trainingSchedule } from './schedule.js';
import { TrainingError } from './errors.js';
import { evaluate } from './evaluate.js';
import { writeLossCurve, appendMetrics, writeMetrics, type MetricsRow } from './metrics.js';
import { stepBatches } from './micro-batches.js';
import { checkOutputDir, clearRun, resumesRunIn } from './output-dir.js';
import { lrScheduleState, readResumePoint, recipeKey, recordedRecipe, type RunRecipe } from './resume.js';
import { runFiles } from './run-files.js';
import { lossScaling, optimizerStep } from './train-step.js';
import type { TrainOptions, TrainResult } from './train-types.js';

/**
 * What the Trainer adds to its logged tr_loss for a step's `losses` (StepOutcome.losses: null for a NaN one),
 * `stepsSinceLog` steps after its last log, tr_loss being `lossSinceLog`: in their order, each loss, or in place of
 * a NaN what logging_nan_inf_filter (on by default, 4.28 and 4.57.6 alike) adds, tr_loss / (1 + global_step -
 * _globalstep_last_logged) of tr_loss as it stands then (0 right after a log, until a loss is added).
 */
function nanFilteredLoss(lossSinceLog: number, stepsSinceLog: number, losses: readonly (number | null)[]): number {
  let added = 0;
  for (const loss of losses) added += loss ?? (lossSinceLog + added) / (1 + stepsSinceLog);
  return added;
}

/** Runs (or resumes) training and leaves the final adapter in `config.outputDir`. */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const { config, model, microBatchSize } = options;
  const scaler = new GradScaler({ ...options.gradScaler, enabled: lossScaling(config, model) });
  const schedule = trainingSchedule(config, options.train.length, microBatchSize);
  const accumulation = schedule.gradientAccumulationSteps;
  const key = await recipeKey(config, options.train.length, microBatchSize);
  const run: RunRecipe = { config, train: options.train, val: options.val, microBatchSize, precision: scaler.enabled ? 'mixed' : 'f32' };
  const recipe = await recordedRecipe(run);
  const batchesOf = stepBatches(options.train.length, config, schedule, microBatchSize);
  let state: TrainerState & HfTrainerState = {
    ...newHfState(config, schedule),
    step: 0,
    lrSchedulerSteps: 0,
    totalSteps: schedule.totalSteps,
    microBatchSize,
    gradientAccumulation: accumulation,
    history: [],
    bestValLoss: null,
    bestStep: null,
    recipeKey: key,
    lossNormalization: config.lossNormalization,
    lrSchedule: lrScheduleState(schedule),
    recipe,
  };

  // The checkpoint is read and checked before anything in the output folder changes: a refused resume loses nothing.
  const point = options.resume ? await readResumePoint(options.resume, run, recipe) : null;
  // Another run's checkpoints would be counted by the pruner and its metrics appended to.
  if (!resumesRunIn(runFiles, config.outputDir, options.resume)) {
    await checkOutputDir(runFiles, config.outputDir, { resume: false, overwrite: options.overwriteOutputDir ?? false });
    if (options.overwriteOutputDir) await clearRun(runFiles, config.outputDir);
  }

  // The checkpoint's adapter is loaded before the optimizer is built: loading replaces the
  // parameter tensors, and the optimizer must hold (and restore the moments of) the new ones.
  let saved: Awaited<ReturnType<typeof readCheckpoint>> | null = null;
  let resumedFrom = '';
  if (point) {
    saved = point.payload;
    await model.loadAdapter(point.dir);
    resumedFrom = point.dir;
  }
  // What earlier saves could not remove goes now (a checkpoint set aside by an interrupted save stays until the next save puts it back).
  const leftovers = point && resumesRunIn(runFiles, config.outputDir, options.resume) ? await finishCheckpointReplacements(config.outputDir, { restore: false }) : [];
  const params = [...model.trainableParameters.values()];
  const optimizer = new AdamW(params, {
    lr: config.learningRate,
    betas: [config.adamBeta1, config.adamBeta2],
    eps: config.adamEpsilon,
    weightDecay: config.weightDecay,
  });
  // The moments live on the GPU until the run returns or fails; the trained parameters are the model's.
  try {
    const metricsPath = runFiles.join(config.outputDir, 'metrics.jsonl');
    if (saved) {
      optimizer.loadStateDict(saved.optimizer);
      // Checkpoints written before transformers' fields were recorded get them from their history.
      const hf = saved.state.log_history === undefined ? derivedHfState(saved.state, config, schedule, (step) => batchesOf(step - 1).epoch) : newHfState(config, schedule);
      // log_history goes on as the checkpoint wrote it, entries of other keys (an older carry checkpoint's grad_norm) included,
      // as the Trainer's TrainerState.load_from_json reads it and log() only appends (4.28 and 4.57.6).
      state = { ...hf, ...saved.state, ...hfRunFields(config, schedule) };
      // Checkpoints written before the count was recorded took each rate from the step index (checked in readResumePoint).
      state.lrSchedulerSteps ??= state.step;
      // The same as the checkpoint's (checked), recorded also where an older checkpoint lacked them.
      state.lrSchedule = lrScheduleState(schedule);
      state.lossNormalization = config.lossNormalization;
      state.recipe = recipe;
      if (scaler.enabled && state.gradScaler) scaler.loadStateDict(state.gradScaler);
      // The interrupted run may have logged steps past its checkpoint; they run again, so
      // metrics.jsonl goes back to the checkpoint's history (replaced whole, atomically).
      await writeMetrics(metricsPath, state.history);
      options.onProgress?.({ kind: 'resume', step: state.step, totalSteps: schedule.totalSteps, elapsedSec: 0, checkpoint: resumedFrom, ...(leftovers.length > 0 ? { warnings: leftovers } : {}) });
    }

    // The attention kernels the steps use are created (or refused) now: otherwise the first steps could
    // run other kernels than the later ones, by compile timing, and a resumed run other ones than the original.
    if (model.headDim !== undefined) await readyAttention({ headDim: model.headDim, dtypes: [model.dtype ?? 'f32'], backward: true });
    const stepLosses = new Map<number, number>();
    // The Trainer's current_flos: 6 x input_ids.numel() x num_parameters(exclude_embeddings=True) added per
    // micro-batch (floating_point_ops), moved into total_flos at each log, save and the end (store_flos).
    const flopParameters = model.nonEmbeddingParameters ?? 0;
    let currentFlos = 0;
    const storeFlos = () => {
      state.total_flos += currentFlos;
      currentFlos = 0;
    };
    const started = performance.now();
    let tokensSinceLog = 0;
    // A log line's loss is the mean of the step losses since the previous one (the Trainer's tr_loss over
    // the steps since _globalstep_last_logged), counted from the start of this call as the Trainer counts after a resume.
    let lossSinceLog = 0;
    let stepsSinceLog = 0;
    let timeAtLog = performance.now();
    let interrupted = false;
    const lastStep = Math.min(schedule.totalSteps, options.stopAfterStep ?? Infinity);
    // What a log records: transformers 4.28 (--epoch-remainder carry) logs the scheduler's get_last_lr() after it stepped
    // for the step, the next step's rate, the epoch rounded to 2 decimals (log()'s round(self.state.epoch, 2)) and no
    // grad_norm (its _maybe_log_save_evaluate logs loss and learning_rate only); 4.57 the rate the step used, read
    // before the scheduler steps, the epoch as it is and the step's grad_norm.
    const flow = trainerFlow(config);
    const logs428 = flow === '4.28';
    const loggedRate = (stepRate: number) => (logs428 ? learningRateAt(state.lrSchedulerSteps ?? state.step, schedule, config.learningRate) : stepRate);
    const loggedEpoch = (epoch: number) => (logs428 ? pythonRound(epoch, 2) : epoch);
    const elapsed = () => (performance.now() - started) / 1000;

    /** Saves the step's checkpoint; `stepEvalLoss`: the validation loss of this step's evaluation where the Trainer's save would see it. */
    const save = async (stepEvalLoss: number | null): Promise<string> => {
      storeFlos();
      // A checkpoint set aside by an interrupted save of its step (checkpoint-N.old) exists as writeCheckpoint puts it back before this one is written.
      const bestLoss = config.loadBestModelAtEnd ? stepEvalLoss : null;
      await noteBestAtSave(state, (step) => checkpointDir(config.outputDir, step), bestLoss, flow, async (dir) => runFiles.exists(await checkpointOrAside(dir)));
      state.stateful_callbacks = { TrainerControl: controlAtSave(state.step, state.max_steps) };
      const saved = await writeCheckpoint(config.outputDir, state.step, { state, optimizer: await optimizer.stateDict() }, (d) => model.saveAdapter(d));
      const dir = saved.dir;
      const warnings = [...saved.warnings, ...(await pruneCheckpoints(config.outputDir, config.saveTotalLimit, state.best_model_checkpoint))];
      options.onProgress?.({ kind: 'save', step: state.step, totalSteps: schedule.totalSteps, elapsedSec: elapsed(), checkpoint: dir, ...(warnings.length > 0 ? { warnings } : {}) });
      return dir;
    };

    // A lost device can surface in a step, an evaluation or a save: each says where the run stood.
    let activity = '';
    try {
      while (state.step < lastStep) {
        const step = state.step;
        activity = `at step ${step + 1} of ${schedule.totalSteps}`;
        // The rate of the optimizer steps taken so far, as the Trainer's scheduler, which a step skipped by loss scaling does not advance.
        const scheduled = state.lrSchedulerSteps ?? step;
        const lr = learningRateAt(scheduled, schedule, config.learningRate);
        optimizer.setLr(lr);
        const { chunks, lossDivisor, epoch } = batchesOf(step);
        const outcome = await optimizerStep({
          config,
          model,
          optimizer,
          scaler,
          params,
          examples: options.train,
          chunks,
          accumulation: lossDivisor,
          step,
        });
        const { lossScale, stepped, tokens, gradNorm, inputSizes } = outcome;
        // Micro-batches without answer tokens have NaN losses in the Trainer (a mean over no token; 0 over
        // num_items_in_batch 0 in a step without any), which its logging_nan_inf_filter replaces.
        const stepLoss = nanFilteredLoss(lossSinceLog, stepsSinceLog, outcome.losses);
        tokensSinceLog += tokens;
        for (const size of inputSizes) currentFlos += 6 * size * flopParameters;
        lossSinceLog += stepLoss;
        stepsSinceLog++;
        if (!Number.isFinite(stepLoss)) {
          const last = (await listCheckpoints(config.outputDir)).pop();
          throw new TrainingError(
            `the training loss became ${stepLoss} at step ${step + 1}; stopped without saving this step. ` +
              (last ? `The last good checkpoint is ${last.dir}: resume from it with a lower --learning-rate.` : 'No checkpoint was written yet: lower --learning-rate.'),
          );
        }
        state.step = step + 1;
        state.global_step = state.step;
        state.epoch = epoch;
        state.lrSchedulerSteps = stepped ? scheduled + 1 : scheduled;
        if (scaler.enabled) state.gradScaler = scaler.stateDict();
        stepLosses.set(state.step, stepLoss);
        const scaling = scaler.enabled ? { lossScale, skipped: !stepped } : {};
        options.onProgress?.({ kind: 'step', step: state.step, totalSteps: schedule.totalSteps, loss: stepLoss, lr, elapsedSec: elapsed(), ...scaling });

        // The Trainer's DefaultFlowCallback: no log or evaluation at the last step unless it is a multiple; 4.57.6 saves there.
        const asked = stepFlow(state.step, schedule.totalSteps, config, options.val.length > 0);
        if (asked.log) {
          const now = performance.now();
          const tokensPerSec = (tokensSinceLog * 1000) / Math.max(1, now - timeAtLog);
          const loggedLoss = lossSinceLog / stepsSinceLog;
          tokensSinceLog = 0;
          lossSinceLog = 0;
          stepsSinceLog = 0;
          timeAtLog = now;
          storeFlos();
          const logLr = loggedRate(lr);
          const row: MetricsRow = { step: state.step, loss: loggedLoss, lr: logLr, tokensPerSec, gpuBytes: runtimeStats().bytesInUse };
          state.history.push(row);
          state.log_history.push(trainLog(loggedLoss, logs428 ? null : gradNorm, logLr, loggedEpoch(epoch), state.step));
          await appendMetrics(metricsPath, row);
          options.onProgress?.({ kind: 'log', step: state.step, totalSteps: schedule.totalSteps, loss: loggedLoss, lr: logLr, tokensPerSec, elapsedSec: elapsed() });
        }
        let stepEvalLoss: number | null = null;
        if (asked.evaluate) {
          activity = `in the evaluation after step ${state.step} of ${schedule.totalSteps}`;
          const evalStarted = performance.now();
          const valLoss = await evaluate(model, options.val, config, microBatchSize);
          state.history.push({ step: state.step, valLoss });
          state.log_history.push(evalLog(valLoss, (performance.now() - evalStarted) / 1000, options.val.length, microBatchSize, loggedEpoch(epoch), state.step));
          stepEvalLoss = valLoss;
          // load_best_model_at_end's metric_for_best_model defaults to the evaluation loss, lower being better.
          if (config.loadBestModelAtEnd) noteBestAtEvaluation(state, valLoss, flow);
          await appendMetrics(metricsPath, { step: state.step, valLoss });
          if (state.bestValLoss === null || valLoss < state.bestValLoss) {
            state.bestValLoss = valLoss;
            state.bestStep = state.step;
          }
          await writeLossCurve(runFiles.join(config.outputDir, 'loss.svg'), state.history);
          options.onProgress?.({ kind: 'eval', step: state.step, totalSteps: schedule.totalSteps, valLoss, elapsedSec: elapsed() });
        }
        activity = `while saving the checkpoint of step ${state.step} of ${schedule.totalSteps}`;
        if (asked.save) await save(stepEvalLoss);
        if (options.signal?.aborted) {
          // A save the Trainer would not make: under 4.28 its step's evaluation does not choose the best model there, so that a resumed run's equals an uninterrupted one's.
          if (!asked.save) await save(null);
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
    const endWarnings: string[] = [];
    const finished = state.step >= schedule.totalSteps;
    // As the Trainer's _load_best_model: the checkpoint best_model_checkpoint names, which the last save set to the best
    // step's checkpoint where there is one, else left naming an earlier best's (or none).
    if (finished && config.loadBestModelAtEnd) {
      const best = state.best_model_checkpoint;
      if (best !== null && (await runFiles.exists(runFiles.join(best, 'adapter_model.safetensors')))) {
        await model.loadAdapter(best);
        bestCheckpoint = best;
      } else if (best !== null) {
        endWarnings.push(`could not load the best model: ${best} (trainer_state.json's best_model_checkpoint) holds no adapter_model.safetensors; the final adapter is the last step's`);
      }
      if (state.best_global_step !== null && best !== checkpointDir(config.outputDir, state.best_global_step)) {
        endWarnings.push(
          `the best validation loss (${state.best_metric}) came at step ${state.best_global_step}, where no checkpoint was saved in ${config.outputDir} ` +
            `(--save-steps ${config.saveSteps}, --eval-steps ${config.evalSteps}): ` +
            (best !== null ? `best_model_checkpoint still names ${best}, an earlier best, which is what the Trainer loads too` : "no earlier best was saved, so the final adapter is the last step's") +
            '. Give --save-steps the value of --eval-steps to save every step that is evaluated',
        );
      }
    }
    // The final adapter sits at the top of the output folder, as PEFT's save_pretrained leaves it.
    // The output folder's trainer_state.json ends with train()'s last log, as the Trainer's save_state writes it.
    if (!interrupted) {
      await model.saveAdapter(config.outputDir);
      const samples = config.maxSteps > 0 ? config.maxSteps * microBatchSize * accumulation : options.train.length * config.numEpochs;
      const lossSum = [...stepLosses.values()].reduce((a, b) => a + b, 0);
      storeFlos();
      state.log_history.push(trainEndLog(state, elapsed(), samples, lossSum, loggedEpoch(state.epoch ?? 0)));
      await writeTrainerState(config.outputDir, state);
      if (finished && config.saveTotalLimit === 1) endWarnings.push(...(await removeAllButBestCheckpoint(config.outputDir, state.best_model_checkpoint)));
    }
    options.onProgress?.({ kind: 'done', step: state.step, totalSteps: schedule.totalSteps, elapsedSec: elapsed(), ...(endWarnings.length > 0 ? { warnings: endWarnings } : {}) });
    return { state, stepLosses, bestCheckpoint, interrupted, adapterDir: config.outputDir };
  } finally {
    optimizer.dispose();
  }
}
