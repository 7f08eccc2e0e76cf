// The optimizer-step schedule of a run as the Hugging Face Trainer derives it (accumulation, steps per
// epoch, warm-up) and the learning rate of its scheduler (--lr-scheduler-type) at each step.

import { constantWarmup, cosineHardRestartsWarmupDecay, cosineWarmupDecay, linearWarmupDecay, polynomialWarmupDecay, type LrLambda } from '@huatuo/tensor';
import { LR_SCHEDULER_KWARGS, type LrSchedulerType, type TrainConfig } from './config.js';
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
  /** The scheduler's arguments, defaults filled in. */
  lrSchedulerKwargs: Readonly<Record<string, number>>;
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
  const lrSchedulerKwargs = Object.freeze({ ...LR_SCHEDULER_KWARGS[config.lrSchedulerType], ...config.lrSchedulerKwargs });
  return { microBatchSize, gradientAccumulationSteps, microBatchesPerEpoch, stepsPerEpoch, totalSteps, warmupSteps, lrSchedulerType: config.lrSchedulerType, lrSchedulerKwargs };
}

type RateSchedule = Pick<TrainingSchedule, 'totalSteps' | 'warmupSteps' | 'lrSchedulerType' | 'lrSchedulerKwargs'>;

/** The factor of the peak rate at each step: transformers' lambda for the schedule. */
function lrLambda(schedule: RateSchedule, peak: number): LrLambda {
  const { totalSteps, warmupSteps, lrSchedulerKwargs: kwargs } = schedule;
  switch (schedule.lrSchedulerType) {
    case 'linear':
      return linearWarmupDecay(warmupSteps, totalSteps);
    case 'cosine':
      return cosineWarmupDecay(warmupSteps, totalSteps, kwargs.num_cycles);
    case 'cosine_with_restarts':
      return cosineHardRestartsWarmupDecay(warmupSteps, totalSteps, kwargs.num_cycles);
    case 'polynomial':
      return polynomialWarmupDecay(warmupSteps, totalSteps, peak, kwargs.lr_end, kwargs.power);
    case 'constant':
    case 'constant_with_warmup':
      return constantWarmup(warmupSteps);
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
