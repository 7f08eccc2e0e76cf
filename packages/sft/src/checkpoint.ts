// Checkpoints that survive interruption: each is a folder written under a temporary name and
// renamed into place, holding the PEFT adapter, the optimizer state and the trainer state, so a
// resumed run continues exactly where the interrupted one stopped. Folders are run files (disk or IndexedDB).
import { bytesSource, SafetensorsFile, serializeSafetensors, type TensorToWrite } from '@huatuo/llama';
import type { GradScalerState, OptimizerStateDict } from '@huatuo/tensor';
import type { LossNormalization, LrSchedulerType, TrainConfig } from './config.js';
import { CheckpointError } from './errors.js';
import { parseTrainerStateJson, trainerStateJson, type HfTrainerState } from './hf-trainer-state.js';
import { runFiles as files } from './run-files.js';

/**
 * Where the run stood when a checkpoint was written: the run's own fields, which a resume reads, and
 * transformers' TrainerState fields (snake_case) for tools written for the Trainer's trainer_state.json,
 * absent in checkpoints written before they were recorded (a resume derives them from `history`).
 */
export interface TrainerState extends Partial<HfTrainerState> {
  /** Optimizer steps completed. */
  step: number;
  /**
   * The optimizer steps taken, which set the learning rate (the Trainer's scheduler count, torch
   * LambdaLR's last_epoch): `step` less the steps skipped for inf/NaN gradients in mixed precision.
   * Absent in checkpoints written before it was recorded, whose rates followed `step`.
   */
  lrSchedulerSteps?: number;
  totalSteps: number;
  microBatchSize: number;
  gradientAccumulation: number;
  /** Logged history: training losses and validation losses by step. */
  history: { step: number; loss?: number; valLoss?: number; lr?: number; tokensPerSec?: number; gpuBytes?: number }[];
  bestValLoss: number | null;
  bestStep: number | null;
  /** Hash of the recipe values that must not change across a resume. */
  recipeKey: string;
  /** How the run averages its micro-batch losses (--loss-normalization); absent in checkpoints written before the option: micro-batch. */
  lossNormalization?: LossNormalization;
  /**
   * The learning-rate schedule the run follows (--lr-scheduler-type, its warm-up steps and arguments);
   * absent in checkpoints written before the option: linear, with the warm-up unrecorded.
   */
  lrSchedule?: LrScheduleState;
  /**
   * The values the resumed steps depend on, each checked on a resume (resume.ts); absent in checkpoints
   * written before they were recorded, whose recipeKey ties some of them and leaves the others unknown.
   */
  recipe?: Partial<RecordedRecipe>;
  /** Loss scale and growth tracker of a mixed-precision run after `step` (absent in f32). */
  gradScaler?: GradScalerState;
}

/** A run's learning-rate schedule as its checkpoints record it. */
export interface LrScheduleState {
  type: LrSchedulerType;
  warmupSteps: number;
  kwargs: Readonly<Record<string, number | string>>;
}

/** The recipe flags a run's checkpoints record as they were given (config keys). */
export const RECORDED_CONFIG_KEYS = [
  'learningRate',
  'adamBeta1',
  'adamBeta2',
  'adamEpsilon',
  'weightDecay',
  'maxGradNorm',
  'epochRemainder',
  'loraR',
  'loraAlpha',
  'loraDropout',
  'loraTargetModules',
  'loraUseRslora',
  'loraUseDora',
  'loraModulesToSave',
  'batchSize',
  'numEpochs',
  'maxSteps',
  'seed',
  'cutoffLen',
  'valSetSize',
  'splitSeed',
  'trainOnInputs',
  'padToMultipleOf',
  'quantize',
] as const satisfies readonly (keyof TrainConfig)[];

/** What a run's resumed steps depend on, as its checkpoints record it. */
export type RecordedRecipe = Pick<TrainConfig, (typeof RECORDED_CONFIG_KEYS)[number]> & {
  /** The micro-batch the run used (--micro-batch, auto resolved). */
  microBatchSize: number;
  /** The precision the run computed in (--precision, auto resolved). */
  precision: 'f32' | 'mixed';
  data: RecordedData;
};

/** The records a run trained and evaluated on, as its checkpoints record them. */
export interface RecordedData {
  /** --data as given (null: the built-in sample) and --template: named in messages, not compared. */
  path: string | null;
  template: string;
  trainRecords: number;
  valRecords: number;
  /** SHA-256 (hex) of the tokenized training then validation records (ids and labels, in order). */
  sha256: string;
}

/** What a checkpoint folder holds besides the adapter (written by the model). */
export interface CheckpointPayload {
  state: TrainerState;
  /** The optimizer's state dict (moments as host arrays), as `Optimizer.stateDict()` gives it. */
  optimizer: OptimizerStateDict;
}

export const CHECKPOINT_PREFIX = 'checkpoint-';

export function checkpointDir(outputDir: string, step: number): string {
  return files.join(outputDir, `${CHECKPOINT_PREFIX}${step}`);
}

/**
 * A checkpoint being written (`checkpoint-N.tmp`), the earlier one of its step set aside while it replaces it (`.old`),
 * or one being removed (`.removing`: pruning renames a checkpoint so before removing it, and a removal cut short
 * leaves that name). A `checkpoint-N` without its trainer_state.json is not listed, and never removed: it may be
 * another tool's folder.
 */
const LEFTOVER = /^(checkpoint-\d+)\.(tmp|old|removing)$/;

/** A checkpoint written by {@link writeCheckpoint}. */
export interface SavedCheckpoint {
  /** Its folder, `checkpoint-N` in the output folder. */
  dir: string;
  /**
   * Leftovers of this save or of earlier ones that could not be removed (the checkpoint is complete regardless), each
   * naming its folder and what to do; nothing reads them, and the next save tries again.
   */
  warnings: string[];
}

/**
 * Writes a checkpoint atomically: everything goes into `checkpoint-N.tmp`, which is renamed to `checkpoint-N` only
 * when complete. An earlier `checkpoint-N` (a resumed run saving its step again) is first renamed to
 * `checkpoint-N.old`, and removed once the new one is in place; a failure to remove it is a warning, not an error, as
 * the new checkpoint is complete then. A crash leaves at worst a `.tmp` folder, which is discarded, or the earlier
 * checkpoint under `.old` with no `checkpoint-N`, which a resume reads and the next save puts back (see
 * {@link finishCheckpointReplacements}).
 */
export async function writeCheckpoint(
  outputDir: string,
  step: number,
  payload: CheckpointPayload,
  writeAdapter: (dir: string) => Promise<void>,
): Promise<SavedCheckpoint> {
  const warnings = await finishCheckpointReplacements(outputDir);
  const final = checkpointDir(outputDir, step);
  const tmp = `${final}.tmp`;
  await files.remove(tmp);
  await writeAdapter(tmp);
  const arrays: TensorToWrite[] = [];
  const structure = splitArrays(payload.optimizer, arrays);
  await files.writeFile(files.join(tmp, 'optimizer.safetensors'), serializeSafetensors(arrays, { metadata: { format: 'huatuo-optimizer' } }));
  await files.writeFile(files.join(tmp, 'optimizer.json'), JSON.stringify(structure));
  await writeTrainerState(tmp, payload.state);
  if (!(await files.exists(final))) {
    await files.rename(tmp, final);
    return { dir: final, warnings };
  }
  const aside = `${final}.old`;
  await files.rename(final, aside);
  try {
    await files.rename(tmp, final);
  } catch (err) {
    await files.rename(aside, final).catch(() => undefined); // left for the next save or resume if this fails too
    throw err;
  }
  await removeLeftover(aside, final, warnings);
  return { dir: final, warnings };
}

/**
 * Finishes what interrupted checkpoint saves and removals left in `outputDir`: a `checkpoint-N.old` whose replacement
 * did not reach `checkpoint-N` is renamed back to it (unless `restore` is false: it stays its step's checkpoint, see
 * {@link listCheckpoints}), one whose replacement did is removed, and unfinished `.tmp` folders and `.removing` ones
 * (a removal by {@link pruneCheckpoints} cut short) are discarded. Run
 * before each save; two runs must not write one output folder at once.
 * @returns A warning for each leftover that could not be removed (nothing reads it), naming it and what to do.
 */
export async function finishCheckpointReplacements(outputDir: string, { restore = true }: { restore?: boolean } = {}): Promise<string[]> {
  const warnings: string[] = [];
  for (const name of await files.list(outputDir)) {
    const leftover = LEFTOVER.exec(name);
    if (!leftover) continue;
    const path = files.join(outputDir, name);
    const final = files.join(outputDir, leftover[1]!);
    const replaced = leftover[2] === 'old' && !(await files.exists(final)) && (await files.exists(files.join(path, 'trainer_state.json')));
    if (replaced && restore) await files.rename(path, final);
    else if (!replaced) await removeLeftover(path, final, warnings);
  }
  return warnings;
}

/**
 * Removes a leftover of a checkpoint save that nothing reads (an unfinished `.tmp`, or a `.old` beside its `final` or
 * incomplete); where that fails, adds a warning naming it to `warnings`: the run loses nothing by keeping it.
 */
async function removeLeftover(leftover: string, final: string, warnings: string[]): Promise<void> {
  try {
    await removeCheckpoint(leftover);
  } catch (err) {
    const what = leftover.endsWith('.removing')
      ? `${final} as --save-total-limit began to remove it`
      : leftover.endsWith('.old')
          ? `the earlier checkpoint of its step, set aside when ${final} was saved again`
          : `an unfinished copy of ${final}`;
    warnings.push(
      `could not remove ${leftover}, ${what} (${(err as Error).message}). The run goes on: nothing reads that folder, ` +
        `and the next save or --resume in this output folder tries again to remove it; you can also delete it yourself to free its space`,
    );
  }
}

/**
 * The checkpoint folder that `dir` stands for when it is an earlier checkpoint set aside by a save of its step that was
 * interrupted (`checkpoint-N.old` with no `checkpoint-N`: its name once the next save puts it back), or null.
 */
export function replacedCheckpoint(dir: string): string | null {
  return /(^|[/\\])checkpoint-\d+\.old$/.test(dir) ? dir.slice(0, -'.old'.length) : null;
}

/**
 * `dir`, or where it does not exist, the earlier copy of it that an interrupted save of its step set aside
 * (`dir`.old, when complete): the checkpoint that `--resume dir` names.
 */
export async function checkpointOrAside(dir: string): Promise<string> {
  if (await files.exists(dir)) return dir;
  const aside = `${dir.replace(/[/\\]+$/, '')}.old`;
  return (await files.exists(files.join(aside, 'trainer_state.json'))) ? aside : dir;
}

/** Removes a leftover folder, its trainer_state.json first: a removal cut short leaves no folder listed as complete. */
async function removeCheckpoint(dir: string): Promise<void> {
  await files.remove(files.join(dir, 'trainer_state.json'));
  await files.remove(dir);
}

/**
 * Removes a complete checkpoint: renamed `checkpoint-N.removing` first, so that a removal cut short leaves a leftover by
 * its name ({@link finishCheckpointReplacements} removes it) and never a `checkpoint-N` that is neither whole nor ours
 * to remove. A rename refused leaves the checkpoint whole and listed.
 */
async function removeCompleteCheckpoint(dir: string): Promise<void> {
  const removing = `${dir.replace(/\.old$/, '')}.removing`; // a listed checkpoint-N.old stands for checkpoint-N
  if (await files.exists(removing)) await removeCheckpoint(removing);
  await files.rename(dir, removing);
  await removeCheckpoint(removing);
}

/**
 * Writes `dir`/trainer_state.json (atomically), as the Trainer's save_to_json writes it ({@link trainerStateJson});
 * also the output folder's at the end of a run, as the Trainer's save_state.
 */
export async function writeTrainerState(dir: string, state: TrainerState): Promise<void> {
  await files.writeFile(files.join(dir, 'trainer_state.json'), trainerStateJson(state));
}

/**
 * Completed checkpoints in a folder, oldest first: each `checkpoint-N` holding its trainer_state.json, or for a step
 * whose `checkpoint-N` is missing, its complete `checkpoint-N.old` (the earlier checkpoint of a save of that step that
 * was interrupted; the next save renames it back).
 */
export async function listCheckpoints(outputDir: string): Promise<{ step: number; dir: string }[]> {
  const names = await files.list(outputDir);
  const found = names
    .map((n) => /^checkpoint-(\d+)(\.old)?$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null && (m[2] === undefined || !names.includes(`${CHECKPOINT_PREFIX}${m[1]}`)))
    .map((m) => ({ step: Number(m[1]), dir: files.join(outputDir, m[0]) }));
  const complete = await Promise.all(found.map((c) => files.exists(files.join(c.dir, 'trainer_state.json'))));
  return found.filter((_, i) => complete[i]).sort((a, b) => a.step - b.step);
}

/** Refuses, from the names alone, a folder that is not a complete checkpoint (nothing is read). */
export async function checkCheckpointFiles(dir: string): Promise<void> {
  if (!(await files.exists(dir))) throw new CheckpointError(`${dir} does not exist; pass a checkpoint folder (checkpoint-N in the run's --output-dir), or --resume alone for the newest there`);
  for (const name of ['trainer_state.json', 'optimizer.json', 'optimizer.safetensors', 'adapter_model.safetensors']) {
    const p = files.join(dir, name);
    if (!(await files.exists(p))) throw new CheckpointError(`${dir}: ${p} is missing; this is not a complete checkpoint (choose another with --resume <dir>)`);
  }
}

/** Reads a checkpoint's trainer and optimizer state. */
export async function readCheckpoint(dir: string): Promise<CheckpointPayload> {
  const statePath = files.join(dir, 'trainer_state.json');
  const optimizerPath = files.join(dir, 'optimizer.json');
  const arraysPath = files.join(dir, 'optimizer.safetensors');
  await checkCheckpointFiles(dir);
  try {
    const state = parseTrainerStateJson(await files.readText(statePath)) as TrainerState;
    const structure = JSON.parse(await files.readText(optimizerPath)) as unknown;
    if (typeof state.step !== 'number' || !Array.isArray(state.history)) throw new Error('fields step/history missing');
    const file = await SafetensorsFile.open(bytesSource(arraysPath, await files.readBytes(arraysPath)));
    try {
      return { state, optimizer: optimizerState(await joinArrays(structure, (name) => file.readAs(name, 'f32'))) };
    } finally {
      await file.close();
    }
  } catch (e) {
    throw new CheckpointError(`${dir}: cannot read the trainer state (${(e as Error).message}); choose another checkpoint`);
  }
}

/** The step of `dir` where it is a checkpoint-N folder of `outputDir`, else null. */
function checkpointStepIn(outputDir: string, dir: string | null): number | null {
  const named = dir !== null && files.isInside(dir, outputDir) ? /(?:^|[/\\])checkpoint-(\d+)[/\\]*$/.exec(dir) : null;
  return named ? Number(named[1]) : null;
}

/**
 * Removes old checkpoints as the Trainer's _rotate_checkpoints does with save_total_limit `limit` (transformers 4.57.6):
 * the checkpoints by step, the one `bestModelCheckpoint` names (trainer_state.json's best_model_checkpoint) moved
 * next to the newest where it is one of them (_sorted_checkpoints), and all but the last `limit` removed. The best
 * counts within the limit, except that with a limit of 1 and a best_model_checkpoint other than the newest, 2 are kept
 * (the newest stays to resume from). The Trainer removes with rmtree(ignore_errors=True), so a removal that fails does
 * not stop the run: it is a warning naming the folder, and the next save tries again.
 * @returns A warning for each checkpoint that could not be removed.
 */
export async function pruneCheckpoints(outputDir: string, limit: number, bestModelCheckpoint: string | null): Promise<string[]> {
  const sorted = await listCheckpoints(outputDir);
  const bestStep = checkpointStepIn(outputDir, bestModelCheckpoint);
  const best = sorted.findIndex((c) => c.step === bestStep);
  const bestIsNewest = best !== -1 && best === sorted.length - 1;
  if (best !== -1 && best < sorted.length - 2) {
    const [moved] = sorted.splice(best, 1);
    sorted.splice(sorted.length - 1, 0, moved!); // just before the newest
  }
  const kept = bestModelCheckpoint !== null && limit === 1 && !bestIsNewest ? 2 : limit;
  const warnings: string[] = [];
  for (const c of sorted.slice(0, Math.max(0, sorted.length - kept))) {
    try {
      await removeCompleteCheckpoint(c.dir);
    } catch (err) {
      warnings.push(
        `could not remove ${c.dir}, a checkpoint older than the ${limit} that --save-total-limit keeps (${(err as Error).message}). ` +
          `The run goes on, and the next save tries again to remove it; you can also delete it yourself to free its space`,
      );
    }
  }
  return warnings;
}

/**
 * What a finished run removes with --save-total-limit 1, as the end of the Trainer's _inner_training_loop (transformers
 * 4.28 and 4.57.6 alike): where `bestModelCheckpoint` names one of the checkpoints, every other one, the newest that
 * rotation kept beside it included. Where it names none of them (no validation set, another folder), nothing goes.
 * @returns A warning for each checkpoint that could not be removed.
 */
export async function removeAllButBestCheckpoint(outputDir: string, bestModelCheckpoint: string | null): Promise<string[]> {
  const bestStep = checkpointStepIn(outputDir, bestModelCheckpoint);
  const sorted = await listCheckpoints(outputDir);
  if (!sorted.some((c) => c.step === bestStep)) return [];
  const warnings: string[] = [];
  for (const c of sorted.filter((c) => c.step !== bestStep)) {
    try {
      await removeCompleteCheckpoint(c.dir);
    } catch (err) {
      warnings.push(`could not remove ${c.dir}: with --save-total-limit 1 a finished run keeps only the best checkpoint, ${bestModelCheckpoint} (${(err as Error).message}); delete it yourself to free its space`);
    }
  }
  return warnings;
}

/** Replaces every Float32Array in a value by `{$tensor: name}` and collects the arrays. */
function splitArrays(value: unknown, out: TensorToWrite[]): unknown {
  if (value instanceof Float32Array) {
    const name = `t${out.length}`;
    out.push({ name, dtype: 'F32', shape: [value.length], data: value });
    return { $tensor: name };
  }
  if (ArrayBuffer.isView(value)) throw new Error('internal: only Float32Array state is checkpointed');
  if (Array.isArray(value)) return value.map((v) => splitArrays(v, out));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, splitArrays(v, out)]));
  }
  return value;
}

async function joinArrays(value: unknown, read: (name: string) => Promise<Float32Array>): Promise<unknown> {
  if (Array.isArray(value)) return Promise.all(value.map((v) => joinArrays(v, read)));
  if (value && typeof value === 'object') {
    const ref = (value as { $tensor?: unknown }).$tensor;
    if (typeof ref === 'string') return read(ref);
    const entries = await Promise.all(Object.entries(value).map(async ([k, v]) => [k, await joinArrays(v, read)] as const));
    return Object.fromEntries(entries);
  }
  return value;
}

/** `value` checked to be an optimizer state dict (what `Optimizer.stateDict()` writes), or an error saying what is wrong. */
function optimizerState(value: unknown): OptimizerStateDict {
  const v = value as Partial<OptimizerStateDict> | null;
  if (v === null || typeof v !== 'object' || !Array.isArray(v.state) || !Array.isArray(v.paramGroups)) {
    throw new Error('optimizer.json holds no optimizer state dict (fields state and paramGroups)');
  }
  v.state.forEach((s, i) => {
    if (s === null) return;
    const buffers = (s as { buffers?: unknown } | undefined)?.buffers;
    if (typeof s?.step !== 'number' || buffers === null || typeof buffers !== 'object' || !Object.values(buffers).every((b) => b instanceof Float32Array)) {
      throw new Error(`optimizer.json: state ${i} should be null or {step, buffers of tensors}`);
    }
  });
  v.paramGroups.forEach((g, i) => {
    if (g === null || typeof g !== 'object' || typeof g.options !== 'object' || g.options === null || !Array.isArray(g.params) || !g.params.every((n) => Number.isInteger(n))) {
      throw new Error(`optimizer.json: paramGroups ${i} should be {options, params: state indices}`);
    }
  });
  return v as OptimizerStateDict;
}
