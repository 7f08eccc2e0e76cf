// The optimizer-step schedule of a run as the Hugging Face Trainer derives it (accumulation, steps per
// epoch, warm-up) and the learning rate of its scheduler (--lr-scheduler-type) at each step.

import { constantWarmup, cosineHardRestartsWarmupDecay, cosineWarmupDecay, linearWarmupDecay, roundedCos, roundedPow, type LrLambda } from '@huatuo/tensor';
import { LR_SCHEDULER_KWARGS, type LrSchedulerKwargs, type LrSchedulerType, type TrainConfig } from './config.js';
import { ConfigError } from './errors.js';

/** Step counts of a run, as the Hugging Face Trainer derives them. */
export interface TrainingSchedule {
  microBatchSize: number;
  gradientAccumulationSteps: number;
  /** ceil(nTrain / microBatchSize): a DataLoader without drop_last. */
  microBatchesPerEpoch: number;
  /**
   * max(1, floor(microBatchesPerEpoch / gradientAccumulationSteps)); ceil with --epoch-remainder step, whose
   * leftover micro-batches take a step of their own (transformers 4.57's num_update_steps_per_epoch).
   */
  stepsPerEpoch: number;
  /** maxSteps when positive, else ceil(numEpochs * stepsPerEpoch). */
  totalSteps: number;
  /**
   * The warm-up the scheduler runs: --warmup-steps when positive, else ceil(totalSteps * warmupRatio)
   * (TrainingArguments.get_warmup_steps); 0 for 'constant', to which get_scheduler passes none.
   */
  warmupSteps: number;
  lrSchedulerType: LrSchedulerType;
  /** The scheduler's arguments, defaults filled in (those whose default is None left out). */
  lrSchedulerKwargs: LrSchedulerKwargs;
}

/**
 * The optimizer-step schedule for `nTrain` training records and a chosen micro-batch size.
 * @example trainingSchedule(DEFAULT_CONFIG, 8158, 8).totalSteps === 630
 */
export function trainingSchedule(config: Readonly<TrainConfig>, nTrain: number, microBatchSize: number): TrainingSchedule {
  if (!Number.isInteger(microBatchSize) || microBatchSize < 1 || config.batchSize % microBatchSize !== 0) {
    throw new ConfigError('--micro-batch', `${microBatchSize} must be a positive integer dividing --batch-size ${config.batchSize}`);
  }
  if (!Number.isInteger(nTrain) || nTrain < 1) throw new RangeError(`trainingSchedule: nTrain must be a positive integer, got ${nTrain}`);
  const gradientAccumulationSteps = config.batchSize / microBatchSize;
  const microBatchesPerEpoch = Math.ceil(nTrain / microBatchSize);
  const perAccumulation = microBatchesPerEpoch / gradientAccumulationSteps;
  const stepsPerEpoch = Math.max(1, config.epochRemainder === 'step' ? Math.ceil(perAccumulation) : Math.floor(perAccumulation));
  const totalSteps = config.maxSteps > 0 ? config.maxSteps : Math.ceil(config.numEpochs * stepsPerEpoch);
  const trainerWarmup = config.warmupSteps > 0 ? config.warmupSteps : Math.ceil(totalSteps * config.warmupRatio);
  const warmupSteps = config.lrSchedulerType === 'constant' ? 0 : trainerWarmup;
  const defaults = Object.entries(LR_SCHEDULER_KWARGS[config.lrSchedulerType]).filter((entry): entry is [string, number | string] => entry[1] !== null);
  const lrSchedulerKwargs = Object.freeze({ ...Object.fromEntries(defaults), ...config.lrSchedulerKwargs });
  if (config.lrSchedulerType === 'warmup_stable_decay') checkDecayFits(lrSchedulerKwargs, warmupSteps, totalSteps);
  return { microBatchSize, gradientAccumulationSteps, microBatchesPerEpoch, stepsPerEpoch, totalSteps, warmupSteps, lrSchedulerType: config.lrSchedulerType, lrSchedulerKwargs };
}

/**
 * Refuses a warmup_stable_decay whose warm-up and num_decay_steps exceed the run when num_stable_steps is not
 * given: transformers' get_wsd_schedule then makes num_stable_steps negative, and its decay starts part-way
 * through, so after the warm-up the rate drops and never reaches the peak (a run without warm-up trains at
 * the tail of the decay alone). A run that ends within its warm-up is left alone, as other schedules'.
 */
function checkDecayFits(kwargs: LrSchedulerKwargs, warmupSteps: number, totalSteps: number): void {
  const decaySteps = kwargs.num_decay_steps as number;
  const stableSteps = totalSteps - warmupSteps - decaySteps;
  if (kwargs.num_stable_steps !== undefined || stableSteps >= 0 || warmupSteps >= totalSteps) return;
  throw new ConfigError(
    '--lr-scheduler-kwargs',
    `warmup_stable_decay's warm-up of ${warmupSteps} steps and num_decay_steps ${decaySteps} add up to more than the run's ${totalSteps} optimizer steps: ` +
      `transformers would make num_stable_steps ${stableSteps} and start the decay ${-stableSteps} steps in, so the rate would drop after the warm-up and never reach --learning-rate. ` +
      `Set num_decay_steps to at most ${totalSteps - warmupSteps}, shorten the warm-up (--warmup-steps, --warmup-ratio), or give num_stable_steps (0 decays from the end of the warm-up, and the run stops before the decay ends)`,
  );
}

type RateSchedule = Pick<TrainingSchedule, 'totalSteps' | 'warmupSteps' | 'lrSchedulerType' | 'lrSchedulerKwargs'>;

/** The linear warm-up of transformers' schedules: step / max(1, warmup). */
function linearWarmup(step: number, warmupSteps: number): number {
  return step / Math.max(1, warmupSteps);
}

/**
 * transformers' _get_polynomial_decay_schedule_with_warmup_lr_lambda: linear warm-up, then
 * ((peak - lr_end) · remaining^power + lr_end) / peak, and lr_end / peak after the last step; the power
 * rounded correctly as glibc's pow rounds it ({@link roundedPow}).
 */
function polynomialDecay(warmupSteps: number, totalSteps: number, peak: number, lrEnd: number, power: number): LrLambda {
  return (step) => {
    if (step < warmupSteps) return linearWarmup(step, warmupSteps);
    if (step > totalSteps) return lrEnd / peak;
    const remaining = 1 - (step - warmupSteps) / (totalSteps - warmupSteps);
    return ((peak - lrEnd) * roundedPow(remaining, power) + lrEnd) / peak;
  };
}

/** transformers' _get_inverse_sqrt_schedule_lr_lambda: linear warm-up, then 1 / sqrt((step + timescale - warmup) / timescale). */
function inverseSqrt(warmupSteps: number): LrLambda {
  const timescale = warmupSteps || 10_000;
  return (step) => (step < warmupSteps ? linearWarmup(step, warmupSteps) : 1 / Math.sqrt((step + (timescale - warmupSteps)) / timescale));
}

/** transformers' _get_cosine_schedule_with_warmup_lr_lambda with min_lr_rate: the cosine scaled into [minLrRate, 1]. */
function cosineToMin(warmupSteps: number, totalSteps: number, numCycles: number, minLrRate: number): LrLambda {
  return (step) => {
    if (step < warmupSteps) return linearWarmup(step, warmupSteps);
    const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
    const factor = 0.5 * (1 + roundedCos(Math.PI * numCycles * 2 * progress));
    return Math.max(0, factor * (1 - minLrRate) + minLrRate);
  };
}

/**
 * transformers' _get_cosine_with_min_lr_schedule_with_warmup_lr_rate_lambda: a warm-up to the peak at
 * step warmup - 1, from 1 / warmup ((step + 1) / warmup) or from warmupLrRate, then the cosine to
 * minLrRate one step ahead of cosine_with_min_lr's.
 */
function cosineWarmupToMin(warmupSteps: number, totalSteps: number, numCycles: number, minLrRate: number, warmupLrRate: number | undefined): LrLambda {
  return (step) => {
    if (step < warmupSteps) {
      if (warmupLrRate === undefined) return (step + 1) / Math.max(1, warmupSteps);
      return warmupLrRate + ((1 - warmupLrRate) * step) / Math.max(1, warmupSteps - 1);
    }
    const progress = (step - warmupSteps + 1) / Math.max(1, totalSteps - warmupSteps);
    const factor = 0.5 * (1 + roundedCos(Math.PI * numCycles * 2 * progress));
    return Math.max(0, factor * (1 - minLrRate) + minLrRate);
  };
}

/**
 * transformers' get_wsd_schedule (_get_wsd_scheduler_lambda): a warm-up from minLrRatio to 1, the
 * peak for the stable steps (by default the steps after warm-up and decay), a decay to minLrRatio over
 * decaySteps, then minLrRatio; each curve linear, cosine or 1-sqrt.
 */
function warmupStableDecay(warmupSteps: number, totalSteps: number, kwargs: LrSchedulerKwargs): LrLambda {
  const decaySteps = kwargs.num_decay_steps as number;
  const stableSteps = (kwargs.num_stable_steps as number | undefined) ?? totalSteps - warmupSteps - decaySteps;
  const minLrRatio = kwargs.min_lr_ratio as number;
  const numCycles = kwargs.num_cycles as number;
  const scaled = (factor: number): number => Math.max(0, factor * (1 - minLrRatio) + minLrRatio);
  return (step) => {
    if (step < warmupSteps) {
      const progress = step / Math.max(1, warmupSteps);
      if (kwargs.warmup_type === 'cosine') return scaled(0.5 * (1 - roundedCos(Math.PI * progress)));
      if (kwargs.warmup_type === '1-sqrt') return scaled(1 - Math.sqrt(1 - progress));
      return scaled(progress);
    }
    if (step < warmupSteps + stableSteps) return 1;
    if (step < warmupSteps + stableSteps + decaySteps) {
      const progress = (step - warmupSteps - stableSteps) / Math.max(1, decaySteps);
      if (kwargs.decay_type === 'linear') return scaled(1 - progress);
      if (kwargs.decay_type === '1-sqrt') return scaled(1 - Math.sqrt(progress));
      return scaled(0.5 * (1 + roundedCos(Math.PI * numCycles * 2 * progress)));
    }
    return minLrRatio;
  };
}

/** min_lr_rate of the cosines with a minimum: given, or min_lr / peak. */
function minLrRate(kwargs: LrSchedulerKwargs, peak: number): number {
  return kwargs.min_lr !== undefined ? (kwargs.min_lr as number) / peak : (kwargs.min_lr_rate as number);
}

/** The factor of the peak rate at each step: transformers' lambda for the schedule. */
function lrLambda(schedule: RateSchedule, peak: number): LrLambda {
  const { totalSteps, warmupSteps, lrSchedulerKwargs: kwargs } = schedule;
  const numCycles = kwargs.num_cycles as number;
  switch (schedule.lrSchedulerType) {
    case 'linear':
      return linearWarmupDecay(warmupSteps, totalSteps);
    case 'cosine':
      return cosineWarmupDecay(warmupSteps, totalSteps, numCycles);
    case 'cosine_with_restarts':
      return cosineHardRestartsWarmupDecay(warmupSteps, totalSteps, numCycles);
    case 'polynomial':
      return polynomialDecay(warmupSteps, totalSteps, peak, kwargs.lr_end as number, kwargs.power as number);
    case 'constant':
    case 'constant_with_warmup':
      return constantWarmup(warmupSteps);
    case 'inverse_sqrt':
      return inverseSqrt(warmupSteps);
    case 'cosine_with_min_lr':
      return cosineToMin(warmupSteps, totalSteps, numCycles, minLrRate(kwargs, peak));
    case 'cosine_warmup_with_min_lr':
      return cosineWarmupToMin(warmupSteps, totalSteps, numCycles, minLrRate(kwargs, peak), kwargs.warmup_lr_rate as number | undefined);
    case 'warmup_stable_decay':
      return warmupStableDecay(warmupSteps, totalSteps, kwargs);
  }
}

/**
 * The learning rate at optimizer step `step` (0-based) of the run's schedule, as the Trainer's
 * get_scheduler builds it. The peak is multiplied by the schedule's factor, as PyTorch's LambdaLR does
 * (base_lr * lr_lambda(step)), so the rates are PyTorch's to the last bit.
 * @example learningRateAt(0, schedule, 3e-4) === 0
 */
export function learningRateAt(step: number, schedule: RateSchedule, peak: number): number {
  return peak * lrLambda(schedule, peak)(step);
}
