// Resuming a run: the recipe key that ties a checkpoint to the recipe that wrote it, and the
// checkpoint a run resumes from, read and checked against that key.
import { checkCheckpointFiles, listCheckpoints, readCheckpoint, type CheckpointPayload, type LrScheduleState } from './checkpoint.js';
import type { TrainConfig } from './config.js';
import { CheckpointError } from './errors.js';
import { earlierRun } from './output-dir.js';
import { runFiles } from './run-files.js';
import { trainingSchedule, type TrainingSchedule } from './schedule.js';

/** A hash of the recipe values a resumed run must share with the run that wrote its checkpoint. */
export async function recipeKey(config: TrainConfig, nTrain: number, microBatchSize: number): Promise<string> {
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
    // Absent unless set, so the checkpoints of runs without --max-steps, --lora-use-rslora, --lora-use-dora, --lora-modules-to-save or
    // --loss-normalization tokens keep their key.
    ...(config.maxSteps > 0 ? { maxSteps: config.maxSteps } : {}),
    ...(config.loraUseRslora ? { loraUseRslora: true } : {}),
    ...(config.loraUseDora ? { loraUseDora: true } : {}),
    ...(config.loraModulesToSave.length > 0 ? { loraModulesToSave: config.loraModulesToSave } : {}),
    ...(config.lossNormalization !== 'micro-batch' ? { lossNormalization: config.lossNormalization } : {}),
  };
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(JSON.stringify(keyed))));
  return [...digest.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** The learning-rate schedule a run's checkpoints record. */
export function lrScheduleState(schedule: TrainingSchedule): LrScheduleState {
  return { type: schedule.lrSchedulerType, warmupSteps: schedule.warmupSteps, kwargs: schedule.lrSchedulerKwargs };
}

/** The schedule as flags, for messages: `--lr-scheduler-type cosine --warmup-steps 63 --lr-scheduler-kwargs '{"num_cycles":0.5}'`. */
function scheduleFlags(s: LrScheduleState): string {
  const kwargs = Object.keys(s.kwargs).length > 0 ? ` --lr-scheduler-kwargs '${JSON.stringify(s.kwargs)}'` : '';
  return `--lr-scheduler-type ${s.type}${s.type === 'constant' ? '' : ` --warmup-steps ${s.warmupSteps}`}${kwargs}`;
}

/**
 * Refuses to resume with a learning-rate schedule other than the checkpoint's: the resumed steps
 * would not be the interrupted run's. A checkpoint written before the schedule was recorded ran linear
 * with an unrecorded warm-up, which only its recipe key (learning rate, steps) ties.
 */
function checkLrSchedule(dir: string, saved: LrScheduleState | undefined, schedule: TrainingSchedule): void {
  const wanted = lrScheduleState(schedule);
  const same = saved
    ? saved.type === wanted.type && saved.warmupSteps === wanted.warmupSteps && JSON.stringify(Object.entries(saved.kwargs).sort()) === JSON.stringify(Object.entries(wanted.kwargs).sort())
    : wanted.type === 'linear';
  if (same) return;
  const was = saved ? scheduleFlags(saved) : '--lr-scheduler-type linear';
  const warmup = saved ? ` and --warmup-steps ${saved.warmupSteps} (or a --warmup-ratio giving ${saved.warmupSteps} steps)` : '';
  throw new CheckpointError(
    `${dir} was written by a run with the learning-rate schedule ${was}; this run's is ${scheduleFlags(wanted)}. Resume with the checkpoint's --lr-scheduler-type and --lr-scheduler-kwargs${warmup}, or start a new run in another --output-dir`,
  );
}

/**
 * The checkpoint folder `resume` names ('latest': the newest complete one in `outputDir`), refused
 * from the file names alone when there is none or it is incomplete: cheap enough to check before a
 * run opens a device or loads a model. Reads and changes nothing.
 * @throws CheckpointError saying what to pass instead.
 */
export async function findResumePoint(resume: string, outputDir: string): Promise<string> {
  if (resume !== 'latest') {
    await checkCheckpointFiles(resume);
    return resume;
  }
  const newest = (await listCheckpoints(outputDir)).pop();
  if (newest) return newest.dir;
  const earlier = await earlierRun(runFiles, outputDir);
  throw new CheckpointError(
    `--resume: the --output-dir ${outputDir} holds no complete checkpoint (checkpoint-N) to resume from; ` +
      (earlier.length > 0
        ? `its earlier run's files (${earlier.join(', ')}) are left as they are. Pass --resume <checkpoint-folder> to resume from a checkpoint elsewhere, or drop --resume and start afresh with --overwrite-output-dir (removing those files) or another --output-dir`
        : 'drop --resume to start a new run there, or pass --resume <checkpoint-folder> to resume from a checkpoint elsewhere'),
  );
}

/**
 * The checkpoint a run resumes from ('latest': the newest in the output folder), read and checked
 * against the run's recipe; what the real run reads, so `--dry-run` can check it too.
 */
export async function readResumePoint(resume: string, config: TrainConfig, nTrain: number, microBatchSize: number): Promise<{ dir: string; payload: CheckpointPayload }> {
  const dir = await findResumePoint(resume, config.outputDir);
  const payload = await readCheckpoint(dir);
  // Checkpoints written before the option trained with the micro-batch normalization.
  const normalization = payload.state.lossNormalization ?? 'micro-batch';
  if (normalization !== config.lossNormalization) {
    throw new CheckpointError(
      `${dir} was written by a run with --loss-normalization ${normalization}, which sets how its gradients are averaged; resume with --loss-normalization ${normalization}, or start a new run with ${config.lossNormalization} in another --output-dir`,
    );
  }
  if (payload.state.recipeKey !== (await recipeKey(config, nTrain, microBatchSize))) {
    throw new CheckpointError(
      `${dir} was written by a run with other recipe values (data size, batch, micro-batch, LoRA, epochs, max steps, lr or seed); resume with the same flags`,
    );
  }
  checkLrSchedule(dir, payload.state.lrSchedule, trainingSchedule(config, nTrain, microBatchSize));
  return { dir, payload };
}
