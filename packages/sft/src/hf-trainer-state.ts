// transformers' TrainerState fields (trainer_callback.py of transformers 4.57.6), which trainer_state.json
// carries beside the run's own with the values and log entries the Trainer writes (trainer.py's
// _inner_training_loop, _maybe_log_save_evaluate, evaluate, log and _save_checkpoint), so that tools
// written for the Trainer's checkpoints (log_history plots, best_model_checkpoint) read ours.
import type { TrainConfig } from './config.js';
import type { TrainingSchedule } from './schedule.js';

/** A training log: `_maybe_log_save_evaluate`'s logs with the epoch and step `log()` adds. */
export interface HfTrainLog {
  /** The mean step loss since the previous log, rounded to 4 decimals as the Trainer rounds it. */
  loss: number;
  /** The last step's gradient norm before clipping; absent where the Trainer has none (no --max-grad-norm) and in transformers 4.28's logs (--epoch-remainder carry). */
  grad_norm?: number;
  learning_rate: number;
  epoch: number;
  step: number;
}

/** An evaluation log: `evaluate()`'s metrics (loss and speed) with the epoch and step. */
export interface HfEvalLog {
  eval_loss: number;
  /** Seconds, rounded to 4 decimals (speed_metrics); absent in entries derived from checkpoints that did not time it. */
  eval_runtime?: number;
  eval_samples_per_second?: number;
  eval_steps_per_second?: number;
  epoch: number;
  step: number;
}

/** The last log of a run: `train()`'s metrics, written in the output folder's trainer_state.json (save_state's). */
export interface HfTrainEndLog {
  train_runtime: number;
  train_samples_per_second?: number;
  train_steps_per_second?: number;
  total_flos: number;
  train_loss: number;
  epoch: number;
  step: number;
}

export type HfLogEntry = HfTrainLog | HfEvalLog | HfTrainEndLog;

/** TrainerControl's state as `_save_checkpoint` stores it in stateful_callbacks. */
export interface HfControlState {
  args: { should_training_stop: boolean; should_epoch_stop: boolean; should_save: boolean; should_evaluate: boolean; should_log: boolean };
  attributes: Record<string, never>;
}

/** transformers' TrainerState, as `dataclasses.asdict` writes it into trainer_state.json. */
export interface HfTrainerState {
  /** The epoch as a fraction: epoch + (micro-batches read in it) / (micro-batches in an epoch). */
  epoch: number | null;
  global_step: number;
  max_steps: number;
  logging_steps: number;
  eval_steps: number;
  save_steps: number;
  /** The per-device batch (our micro-batch); the accumulation makes up the effective batch. */
  train_batch_size: number;
  num_train_epochs: number;
  /** 0: tokens are counted only with include_num_input_tokens_seen, off by default. */
  num_input_tokens_seen: number;
  /**
   * The Trainer's estimate of the floating-point operations so far: 6 x input_ids.numel() (the padded micro-batch)
   * x the PEFT model's num_parameters(exclude_embeddings=True) summed over the micro-batches read
   * (modeling_utils.floating_point_ops), stored at each log, save and the end (store_flos); see
   * TrainableModel.nonEmbeddingParameters.
   */
  total_flos: number;
  log_history: HfLogEntry[];
  /** The best eval_loss (metric_for_best_model "loss", as load_best_model_at_end defaults it); null where the run does not load the best model at the end (TrainConfig.loadBestModelAtEnd). */
  best_metric: number | null;
  best_global_step: number | null;
  /** `<output dir>/checkpoint-<best_global_step>`, set at a save once that folder exists. */
  best_model_checkpoint: string | null;
  is_local_process_zero: boolean;
  is_world_process_zero: boolean;
  is_hyper_param_search: boolean;
  trial_name: string | null;
  trial_params: Record<string, unknown> | null;
  stateful_callbacks: { TrainerControl?: HfControlState };
}

/** Python's round(x, digits): the decimal nearest to x, an exact tie going to the even digit. */
export function pythonRound(x: number, digits: number): number {
  if (!Number.isFinite(x) || Math.abs(x) >= 1e15) return x;
  // toFixed gives x's exact decimal expansion, so a tie shows as a 5 followed by zeros only.
  const exact = Math.abs(x).toFixed(digits + 25);
  const [whole, fraction] = exact.split('.') as [string, string];
  const kept = fraction.slice(0, digits);
  const rest = fraction.slice(digits);
  let units = BigInt(whole + kept);
  const tie = rest === `5${'0'.repeat(rest.length - 1)}`;
  if (rest > `5${'0'.repeat(rest.length - 1)}` || (tie && units % 2n === 1n)) units += 1n;
  const text = units.toString().padStart(digits + 1, '0');
  const rounded = Number(`${text.slice(0, text.length - digits)}.${text.slice(text.length - digits)}`);
  return x < 0 || Object.is(x, -0) ? -rounded : rounded;
}

/** The TrainerState values a run's settings give (init_training_references, compute_steps). */
export function hfRunFields(
  config: TrainConfig,
  schedule: TrainingSchedule,
): Pick<HfTrainerState, 'max_steps' | 'logging_steps' | 'eval_steps' | 'save_steps' | 'train_batch_size' | 'num_train_epochs'> {
  return {
    max_steps: schedule.totalSteps,
    logging_steps: config.loggingSteps,
    eval_steps: config.evalSteps,
    save_steps: config.saveSteps,
    train_batch_size: schedule.microBatchSize,
    num_train_epochs: config.maxSteps > 0 ? Math.ceil(config.maxSteps / schedule.stepsPerEpoch) : Math.ceil(config.numEpochs),
  };
}

/** A new run's TrainerState: nothing logged, epoch 0 as `_inner_training_loop` sets it before the first step. */
export function newHfState(config: TrainConfig, schedule: TrainingSchedule): HfTrainerState {
  return {
    epoch: 0,
    global_step: 0,
    ...hfRunFields(config, schedule),
    num_input_tokens_seen: 0,
    total_flos: 0,
    log_history: [],
    best_metric: null,
    best_global_step: null,
    best_model_checkpoint: null,
    is_local_process_zero: true,
    is_world_process_zero: true,
    is_hyper_param_search: false,
    trial_name: null,
    trial_params: null,
    stateful_callbacks: {},
  };
}

/**
 * The TrainerState of a checkpoint written before it was recorded, from the run's own history: its
 * logs (loss rounded, no grad_norm) and evaluations (no timings), each at the epoch of its step. Its
 * best_model_checkpoint is left for the next save to set, as the Trainer sets it.
 */
export function derivedHfState(
  state: { step: number; history: readonly { step: number; loss?: number; valLoss?: number; lr?: number }[]; bestValLoss: number | null; bestStep: number | null },
  config: TrainConfig,
  schedule: TrainingSchedule,
  epochAfter: (step: number) => number,
): HfTrainerState {
  const log_history: HfLogEntry[] = [];
  for (const row of state.history) {
    const epoch = epochAfter(row.step);
    if (row.loss !== undefined) log_history.push({ loss: pythonRound(row.loss, 4), learning_rate: row.lr ?? config.learningRate, epoch, step: row.step });
    if (row.valLoss !== undefined) log_history.push({ eval_loss: row.valLoss, epoch, step: row.step });
  }
  const best = config.loadBestModelAtEnd && state.bestStep !== null;
  return {
    ...newHfState(config, schedule),
    epoch: state.step > 0 ? epochAfter(state.step) : 0,
    global_step: state.step,
    log_history,
    best_metric: best ? state.bestValLoss : null,
    best_global_step: best ? state.bestStep : null,
  };
}

/** The speed metrics of `speed_metrics(split, ...)`: runtime rounded to 4 decimals, rates to 3. */
function speedMetrics<S extends string>(split: S, seconds: number, samples: number, steps: number): Record<string, number> {
  const runtime = pythonRound(seconds, 4);
  if (seconds === 0) return { [`${split}_runtime`]: runtime };
  return { [`${split}_runtime`]: runtime, [`${split}_samples_per_second`]: pythonRound(samples / seconds, 3), [`${split}_steps_per_second`]: pythonRound(steps / seconds, 3) };
}

/** A training log entry: the mean step loss since the previous one, rounded as the Trainer logs it. */
export function trainLog(loss: number, gradNorm: number | null, learningRate: number, epoch: number, step: number): HfTrainLog {
  return { loss: pythonRound(loss, 4), ...(gradNorm !== null ? { grad_norm: gradNorm } : {}), learning_rate: learningRate, epoch, step };
}

/** An evaluation log entry: `samples` records in batches of `batchSize` evaluated in `seconds`. */
export function evalLog(evalLoss: number, seconds: number, samples: number, batchSize: number, epoch: number, step: number): HfEvalLog {
  return { eval_loss: evalLoss, ...(speedMetrics('eval', seconds, samples, Math.ceil(samples / batchSize)) as Partial<HfEvalLog>), epoch, step };
}

/**
 * The log `train()` appends at the end: speed over this call's `seconds` for the whole run's samples
 * and max_steps, and train_loss, the sum of this call's step losses over global_step (as the Trainer
 * divides its _total_loss_scalar, which a resume starts from 0), at `epoch` as the run's logs record it.
 */
export function trainEndLog(state: HfTrainerState, seconds: number, samples: number, lossSum: number, epoch: number): HfTrainEndLog {
  return {
    ...(speedMetrics('train', seconds, samples, state.max_steps) as Pick<HfTrainEndLog, 'train_runtime'>),
    total_flos: state.total_flos,
    train_loss: lossSum / Math.max(state.global_step, 0.001),
    epoch,
    step: state.global_step,
  };
}

/**
 * The Trainer whose step flow a run follows: transformers 4.28.1's (HuaTuo's) with --epoch-remainder carry, 4.57.6's
 * otherwise.
 */
export type TrainerFlow = '4.28' | '4.57';

/** The Trainer a run's logs, evaluations, checkpoints and best model follow. */
export function trainerFlow(config: Pick<TrainConfig, 'epochRemainder'>): TrainerFlow {
  return config.epochRemainder === 'carry' ? '4.28' : '4.57';
}

/** Whether the Trainer logs, evaluates and saves after an optimizer step (TrainerControl's should_log, should_evaluate, should_save). */
export interface StepFlow {
  log: boolean;
  evaluate: boolean;
  save: boolean;
}

/**
 * What DefaultFlowCallback.on_step_end asks after optimizer step `step` of `maxSteps`, with logging, evaluation (where
 * there is a validation set) and saving every N steps and TrainingArguments' other defaults (no logging_first_step,
 * eval_delay 0, no eval_on_start; on_epoch_end asks nothing of the "steps" strategies): a log and an evaluation only at
 * multiples of logging_steps and eval_steps, the last step included only where it is one; a save at multiples of
 * save_steps and, in 4.57.6 (save_strategy "steps", since transformers 4.40), at the last step, where 4.28.1 only
 * stops there.
 */
export function stepFlow(step: number, maxSteps: number, config: Pick<TrainConfig, 'loggingSteps' | 'evalSteps' | 'saveSteps' | 'epochRemainder'>, evaluates: boolean): StepFlow {
  return {
    log: step % config.loggingSteps === 0,
    evaluate: evaluates && step % config.evalSteps === 0,
    save: step % config.saveSteps === 0 || (trainerFlow(config) === '4.57' && step >= maxSteps),
  };
}

/**
 * The best model after an evaluation of global_step with metric_for_best_model "loss" (load_best_model_at_end): in
 * 4.57.6 _determine_best_metric keeps a lower eval_loss as best_metric and its step as best_global_step, whether or not
 * the step is saved; in 4.28.1 only _save_checkpoint compares (see {@link noteBestAtSave}).
 */
export function noteBestAtEvaluation(state: HfTrainerState, evalLoss: number, flow: TrainerFlow): void {
  if (flow === '4.57' && evalLoss < (state.best_metric ?? Infinity)) {
    state.best_metric = evalLoss;
    state.best_global_step = state.global_step;
  }
}

/**
 * best_model_checkpoint (and best_metric in 4.28.1) when the checkpoint of global_step is saved, `checkpointDir(step)`
 * naming a step's folder. 4.57.6's _save_checkpoint names best_global_step's checkpoint once that folder exists
 * (`bestExists`; this step's own is being written). 4.28.1's compares the eval_loss of an evaluation at this step
 * (`stepEvalLoss`, null where none ran or no best model is kept): where it is lower than best_metric, or nothing is
 * named yet, it becomes best_metric and this checkpoint best_model_checkpoint; an evaluation without a save never
 * counts. best_global_step, which 4.28.1's TrainerState lacks, then names the step of best_model_checkpoint.
 */
export async function noteBestAtSave(
  state: HfTrainerState,
  checkpointDir: (step: number) => string,
  stepEvalLoss: number | null,
  flow: TrainerFlow,
  bestExists: (dir: string) => Promise<boolean>,
): Promise<void> {
  if (flow === '4.28') {
    if (stepEvalLoss !== null && (state.best_metric === null || state.best_model_checkpoint === null || stepEvalLoss < state.best_metric)) {
      state.best_metric = stepEvalLoss;
      state.best_global_step = state.global_step;
      state.best_model_checkpoint = checkpointDir(state.global_step);
    }
    return;
  }
  if (state.best_global_step !== null) {
    const best = checkpointDir(state.best_global_step);
    if (state.best_global_step === state.global_step || (await bestExists(best))) state.best_model_checkpoint = best;
  }
}

/** TrainerControl's state when `_save_checkpoint` writes it: saving, its log and evaluation done. */
export function controlAtSave(step: number, maxSteps: number): HfControlState {
  return { args: { should_training_stop: step >= maxSteps, should_epoch_stop: false, should_save: true, should_evaluate: false, should_log: false }, attributes: {} };
}

/** TrainerState's fields that the Trainer holds as Python floats (total_flos from the first float(...) stored); its other numbers are ints. */
const FLOAT_STATE_FIELDS: ReadonlySet<string> = new Set(['epoch', 'total_flos', 'best_metric']);

/**
 * log_history's fields that are Python floats: the rounded losses and speed metrics, the rate from
 * get_last_lr(), grad_norm's .item(), eval_loss's .item(), the epoch; `step` is the int global_step.
 */
const FLOAT_LOG_FIELDS: ReadonlySet<string> = new Set([
  'loss',
  'grad_norm',
  'learning_rate',
  'epoch',
  'eval_loss',
  'eval_runtime',
  'eval_samples_per_second',
  'eval_steps_per_second',
  'train_runtime',
  'train_samples_per_second',
  'train_steps_per_second',
  'total_flos',
  'train_loss',
]);

/**
 * Python's repr of the float `x`, as json.dumps writes floats: the shortest digits that read back as x,
 * in exponent form (two exponent digits at least) when the decimal point falls more than 4 places
 * before the first digit or 16 after it, else positional with at least one digit after the point
 * (1.0, 0.0001, 1e-05, 1e+16); NaN, Infinity and -Infinity as json.dumps writes them.
 * @example pythonFloatRepr(12345e12) === '1.2345e+16'
 */
export function pythonFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? 'Infinity' : '-Infinity';
  const sign = x < 0 || Object.is(x, -0) ? '-' : '';
  if (x === 0) return `${sign}0.0`;
  // toExponential() gives the shortest digits that read back as x, as Python's repr chooses them.
  const [mantissa, exponent] = Math.abs(x).toExponential().split('e') as [string, string];
  const digits = mantissa.replace('.', '');
  // x = 0.<digits> x 10^point
  const point = Number(exponent) + 1;
  if (point <= -4 || point > 16) {
    const e = point - 1;
    const fraction = digits.length > 1 ? `.${digits.slice(1)}` : '';
    return `${sign}${digits[0]}${fraction}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`;
  }
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return `${sign}${digits}${'0'.repeat(point - digits.length)}.0`;
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

/** A string as json.dumps writes it (ensure_ascii): `"` and `\` escaped, \b \f \n \r \t, every other code unit outside space..~ as \uxxxx. */
function pythonJsonString(s: string): string {
  const named: Record<string, string> = { '"': '\\"', '\\': '\\\\', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t' };
  return `"${s.replace(/["\\]|[^ -~]/g, (c) => named[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}"`;
}

/**
 * `value` as Python's json.dumps(value, indent=2, sort_keys=True) writes the same dict, the numbers at
 * which `isFloat(path)` holds written as Python floats and the others as JavaScript writes them (ints for
 * integral values); keys whose value is undefined are left out, as JSON.stringify leaves them.
 */
function pythonJson(value: unknown, isFloat: (path: readonly (string | number)[]) => boolean, path: (string | number)[] = [], depth = 0): string {
  if (value === null) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') return isFloat(path) ? pythonFloatRepr(value) : JSON.stringify(value);
  if (typeof value === 'string') return pythonJsonString(value);
  const inner = '\n' + '  '.repeat(depth + 1);
  const outer = '\n' + '  '.repeat(depth);
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    return `[${value.map((v, i) => inner + pythonJson(v, isFloat, [...path, i], depth + 1)).join(',')}${outer}]`;
  }
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    if (entries.length === 0) return '{}';
    return `{${entries.map(([k, v]) => `${inner}${pythonJsonString(k)}: ${pythonJson(v, isFloat, [...path, k], depth + 1)}`).join(',')}${outer}}`;
  }
  throw new TypeError(`internal: trainer_state.json cannot hold a ${typeof value}`);
}

/** Whether the number at `path` of a trainer_state.json is one of TrainerState's float fields. */
function isHfFloat(path: readonly (string | number)[]): boolean {
  if (path.length === 1) return FLOAT_STATE_FIELDS.has(path[0] as string);
  return path.length === 3 && path[0] === 'log_history' && FLOAT_LOG_FIELDS.has(path[2] as string);
}

/**
 * trainer_state.json's text as the Trainer's TrainerState.save_to_json writes it: json.dumps(indent=2,
 * sort_keys=True) and a newline, TrainerState's floats written as Python floats (1.0, 0.0, 1.2345e+16) so
 * that Python's json.load reads the same types as from the Trainer's files; the run's own fields beside them.
 */
export function trainerStateJson(state: object): string {
  return `${pythonJson(state, isHfFloat)}\n`;
}

/** Marks the NaN, Infinity and -Infinity of Python's JSON while JSON.parse reads it. */
const NON_FINITE_MARK = '\u0000python-float:';

/**
 * Reads a trainer_state.json: JSON, and the NaN, Infinity and -Infinity that json.dumps writes for
 * non-finite floats (a grad_norm of a step skipped for overflowed gradients, for one).
 */
export function parseTrainerStateJson(text: string): unknown {
  // Outside strings, the bare words become marked strings, which the reviver turns back into numbers.
  const marked = text.replace(/"(?:[^"\\]|\\.)*"|-?\b(?:NaN|Infinity)\b/g, (token) => (token.startsWith('"') ? token : JSON.stringify(NON_FINITE_MARK + token)));
  return JSON.parse(marked, (_key, value: unknown) => (typeof value === 'string' && value.startsWith(NON_FINITE_MARK) ? Number(value.slice(NON_FINITE_MARK.length)) : value));
}
