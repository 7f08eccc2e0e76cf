// The optimizer-step schedule of a run as the Hugging Face Trainer derives it (accumulation, steps per
// epoch, warm-up) and the learning rate of its linear schedule with warm-up at each step.

import type { TrainConfig } from './config.js';
import { ConfigError } from './errors.js';

/** Step counts of a run, as the Hugging Face Trainer derives them. */
export interface TrainingSchedule {
  microBatchSize: number;
  gradientAccumulationSteps: number;
  /** ceil(nTrain / microBatchSize): a DataLoader without drop_last. */
  microBatchesPerEpoch: number;
  /** max(1, floor(microBatchesPerEpoch / gradientAccumulationSteps)). */
  stepsPerEpoch: number;
  /** maxSteps when positive, else ceil(numEpochs * stepsPerEpoch). */
  totalSteps: number;
  /** ceil(totalSteps * warmupRatio). */
  warmupSteps: number;
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
  const stepsPerEpoch = Math.max(1, Math.floor(microBatchesPerEpoch / gradientAccumulationSteps));
  const totalSteps = config.maxSteps > 0 ? config.maxSteps : Math.ceil(config.numEpochs * stepsPerEpoch);
  const warmupSteps = Math.ceil(totalSteps * config.warmupRatio);
  return { microBatchSize, gradientAccumulationSteps, microBatchesPerEpoch, stepsPerEpoch, totalSteps, warmupSteps };
}

/**
 * The learning rate at optimizer step `step` (0-based) of transformers'
 * get_linear_schedule_with_warmup: step / warmup during warm-up, then linear to 0. The peak is
 * multiplied by the schedule's factor, as PyTorch's LambdaLR does (base_lr * lr_lambda(step)), so the
 * rates are PyTorch's to the last bit.
 * @example learningRateAt(0, schedule, 3e-4) === 0
 */
export function learningRateAt(step: number, schedule: Pick<TrainingSchedule, 'totalSteps' | 'warmupSteps'>, peak: number): number {
  const { totalSteps, warmupSteps } = schedule;
  if (step < warmupSteps) return peak * (step / Math.max(1, warmupSteps));
  return peak * Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
}
