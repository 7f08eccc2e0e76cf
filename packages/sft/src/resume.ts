// Resuming a run: the recipe a checkpoint records (and the older recipe key), and the checkpoint a
// run resumes from, read and checked against the run's recipe, every difference named with its flag.
import type { TokenizedExample } from './batch.js';
import {
  checkCheckpointFiles,
  checkpointOrAside,
  listCheckpoints,
  readCheckpoint,
  RECORDED_CONFIG_KEYS,
  type CheckpointPayload,
  type LrScheduleState,
  type RecordedData,
  type RecordedRecipe,
  type TrainerState,
} from './checkpoint.js';
import type { TrainConfig } from './config.js';
import { CONFIG_OPTIONS } from './config-flags.js';
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

/** What a run trains with, as far as its checkpoints record and a resume checks it. */
export interface RunRecipe {
  config: TrainConfig;
  train: readonly TokenizedExample[];
  val: readonly TokenizedExample[];
  /** The micro-batch the run uses (--micro-batch auto resolved). */
  microBatchSize: number;
  /** The precision the model computes in (--precision auto resolved). */
  precision: 'f32' | 'mixed';
}

/** SHA-256 (hex) of the tokenized training then validation records: their counts, then each one's ids and labels. */
async function recordsDigest(train: readonly TokenizedExample[], val: readonly TokenizedExample[]): Promise<string> {
  const all = [...train, ...val];
  const words = new Int32Array(all.reduce((n, e) => n + 2 + e.inputIds.length + e.labels.length, 2));
  let at = 0;
  words[at++] = train.length;
  words[at++] = val.length;
  for (const e of all) {
    for (const ids of [e.inputIds, e.labels]) {
      words[at++] = ids.length;
      words.set(ids, at);
      at += ids.length;
    }
  }
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', words));
  return [...digest].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** The recipe a run's checkpoints record. */
export async function recordedRecipe(run: RunRecipe): Promise<RecordedRecipe> {
  const { config } = run;
  const given = Object.fromEntries(RECORDED_CONFIG_KEYS.map((k) => [k, structuredClone(config[k])])) as Pick<TrainConfig, (typeof RECORDED_CONFIG_KEYS)[number]>;
  const data: RecordedData = { path: config.dataPath, template: config.template, trainRecords: run.train.length, valRecords: run.val.length, sha256: await recordsDigest(run.train, run.val) };
  return { ...given, microBatchSize: run.microBatchSize, precision: run.precision, data };
}

const FLAG_OF = new Map<string, string>([...CONFIG_OPTIONS.map((o) => [o.key as string, o.flag] as const), ['microBatchSize', '--micro-batch'], ['precision', '--precision']]);

/** A recorded value as a flag takes it; null for an empty list, which no flag value gives. */
function flagValue(value: unknown): string | null {
  if (Array.isArray(value)) return value.length > 0 ? value.join(',') : null;
  return String(value);
}

/** The records as messages name them: `data.jsonl (template med_template): 10 training and 2 validation records, sha256 0a1b2c3d4e5f...`. */
function describeData(d: Partial<RecordedData>): string {
  return `${d.path ?? 'the built-in sample'} (template ${d.template}): ${d.trainRecords} training and ${d.valRecords} validation records, sha256 ${d.sha256?.slice(0, 12)}...`;
}

/**
 * Refuses to resume with recipe values other than the checkpoint's, naming each flag with the saved
 * and the new value: the resumed steps would not be the interrupted run's. A value the checkpoint does
 * not record (one written before it was recorded) is unknown and not compared. The data are compared
 * by their tokenized records, so a data file moved elsewhere unchanged resumes.
 */
function checkRecipe(dir: string, state: TrainerState, wanted: RecordedRecipe, schedule: TrainingSchedule): void {
  const saved: Partial<RecordedRecipe> = { ...state.recipe };
  // Every run before --epoch-remainder dropped an epoch's leftover micro-batches; where there are none, the choices agree.
  if (schedule.microBatchesPerEpoch % schedule.gradientAccumulationSteps !== 0) saved.epochRemainder ??= 'drop';
  else delete saved.epochRemainder;
  // Every checkpoint records its micro-batch and accumulation.
  if (typeof state.microBatchSize === 'number') saved.microBatchSize ??= state.microBatchSize;
  if (typeof state.microBatchSize === 'number' && typeof state.gradientAccumulation === 'number') saved.batchSize ??= state.microBatchSize * state.gradientAccumulation;
  const differences: { what: string; restore: string }[] = [];
  for (const [key, flag] of FLAG_OF) {
    if (!(key in saved)) continue;
    const was = saved[key as keyof RecordedRecipe];
    const now = wanted[key as keyof RecordedRecipe];
    if (JSON.stringify(was) === JSON.stringify(now)) continue;
    const [wasText, nowText] = [flagValue(was), flagValue(now)];
    differences.push({ what: `${flag} ${wasText ?? '(none)'} there, ${nowText ?? '(none)'} here`, restore: wasText === null ? `no ${flag}` : `${flag} ${wasText}` });
  }
  if (saved.data && saved.data.sha256 !== wanted.data.sha256) {
    differences.push({
      what: `the data differ: ${describeData(saved.data)} there, ${describeData(wanted.data)} here`,
      restore: `the checkpoint's --data file as it was, with its --template (the records are compared as tokenized)`,
    });
  }
  if (differences.length === 0) return;
  throw new CheckpointError(
    `${dir} was written by a run with other values than this one, so the resumed steps would not continue it: ${differences.map((d) => d.what).join('; ')}. ` +
      `Resume with ${differences.map((d) => d.restore).join(' and ')}, or start a new run with these values in another --output-dir`,
  );
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
 * run opens a device or loads a model. A checkpoint set aside by an interrupted save of its step is found under its
 * `.old` name (see checkpointOrAside). Reads and changes nothing.
 * @throws CheckpointError saying what to pass instead.
 */
export async function findResumePoint(resume: string, outputDir: string): Promise<string> {
  if (resume !== 'latest') {
    const dir = await checkpointOrAside(resume);
    await checkCheckpointFiles(dir);
    return dir;
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
 * against the run's recipe; what the real run reads, so `--dry-run` can check it too. Reads and changes nothing else.
 * @throws CheckpointError naming each flag whose value differs from the checkpoint's, both values, and what to do.
 */
export async function readResumePoint(resume: string, run: RunRecipe, recipe?: RecordedRecipe): Promise<{ dir: string; payload: CheckpointPayload }> {
  const { config, microBatchSize } = run;
  const nTrain = run.train.length;
  const dir = await findResumePoint(resume, config.outputDir);
  const payload = await readCheckpoint(dir);
  const { step, lrSchedulerSteps } = payload.state;
  if (lrSchedulerSteps !== undefined && !(Number.isInteger(lrSchedulerSteps) && lrSchedulerSteps >= 0 && lrSchedulerSteps <= step)) {
    throw new CheckpointError(
      `${dir}: trainer_state.json's lrSchedulerSteps is ${JSON.stringify(lrSchedulerSteps)}; it counts the optimizer steps taken, an integer from 0 to the checkpoint's step ${step}. Choose another checkpoint`,
    );
  }
  // Checkpoints written before the option trained with the micro-batch normalization.
  const normalization = payload.state.lossNormalization ?? 'micro-batch';
  if (normalization !== config.lossNormalization) {
    throw new CheckpointError(
      `${dir} was written by a run with --loss-normalization ${normalization}, which sets how its gradients are averaged; resume with --loss-normalization ${normalization}, or start a new run with ${config.lossNormalization} in another --output-dir`,
    );
  }
  const schedule = trainingSchedule(config, nTrain, microBatchSize);
  checkRecipe(dir, payload.state, recipe ?? (await recordedRecipe(run)), schedule);
  // A checkpoint written before the recipe was recorded is tied to it by the key alone.
  if (payload.state.recipe === undefined && payload.state.recipeKey !== (await recipeKey(config, nTrain, microBatchSize))) {
    throw new CheckpointError(
      `${dir} was written by a run with other recipe values (data size, batch, micro-batch, LoRA, epochs, max steps, lr or seed); resume with the same flags`,
    );
  }
  checkLrSchedule(dir, payload.state.lrSchedule, schedule);
  return { dir, payload };
}
