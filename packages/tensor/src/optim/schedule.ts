// Learning-rate schedules as in transformers: a multiplier of each group's initial learning rate
// per step (LambdaLR), with linear warm-up followed by a constant rate or a linear, cosine, restarting
// cosine or polynomial decay; the factors are transformers' lambdas to the last bit.
import { ValueError } from '../errors.js';
import { roundedCos } from './round-cos.js';
import { roundedPow } from './round-pow.js';

/** A schedule: the factor applied to the initial learning rate at a step. */
export type LrLambda = (step: number) => number;

/** What a scheduler drives: anything with per-group learning rates. */
export interface LrSchedulable {
  readonly paramGroups: readonly unknown[];
  getLr(group?: number): number;
  setLr(lr: number, group?: number): void;
}

function checkSteps(op: string, warmup: number, total: number): void {
  if (!Number.isInteger(warmup) || warmup < 0) throw new ValueError(`${op}: warmupSteps must be an integer >= 0, got ${warmup}`);
  if (!Number.isInteger(total) || total < 0) throw new ValueError(`${op}: totalSteps must be an integer >= 0, got ${total}`);
}

/**
 * transformers' get_linear_schedule_with_warmup factor: step / max(1, warmup) during warm-up, then
 * max(0, (total - step) / max(1, total - warmup)).
 * @example linearWarmupDecay(10, 100)(55) === 0.5
 */
export function linearWarmupDecay(warmupSteps: number, totalSteps: number): LrLambda {
  checkSteps('linearWarmupDecay', warmupSteps, totalSteps);
  return (step) => {
    if (step < warmupSteps) return step / Math.max(1, warmupSteps);
    return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
  };
}

/**
 * transformers' get_constant_schedule_with_warmup factor: step / max(1, warmup) during warm-up, then 1.
 * (get_constant_schedule is this with no warm-up.)
 * @example constantWarmup(10)(5) === 0.5
 */
export function constantWarmup(warmupSteps: number): LrLambda {
  checkSteps('constantWarmup', warmupSteps, 0);
  return (step) => (step < warmupSteps ? step / Math.max(1, warmupSteps) : 1);
}

/**
 * transformers' get_cosine_schedule_with_warmup factor: linear warm-up, then
 * max(0, 0.5 (1 + cos(π · numCycles · 2 · progress))) with progress = (step - warmup) / max(1, total - warmup),
 * the cosine rounded correctly ({@link roundedCos}).
 * @example cosineWarmupDecay(10, 110)(60) === 0.5
 */
export function cosineWarmupDecay(warmupSteps: number, totalSteps: number, numCycles = 0.5): LrLambda {
  checkSteps('cosineWarmupDecay', warmupSteps, totalSteps);
  return (step) => {
    if (step < warmupSteps) return step / Math.max(1, warmupSteps);
    const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
    return Math.max(0, 0.5 * (1 + roundedCos(Math.PI * numCycles * 2 * progress)));
  };
}

/**
 * transformers' get_cosine_with_hard_restarts_schedule_with_warmup factor: linear warm-up, then
 * `numCycles` cosine decays from 1 to 0, each restarting at 1: 0.5 (1 + cos(π ((numCycles · progress) mod 1))),
 * and 0 from progress 1 on.
 * @example cosineHardRestartsWarmupDecay(0, 100, 2)(25) === 0.5
 */
export function cosineHardRestartsWarmupDecay(warmupSteps: number, totalSteps: number, numCycles = 1): LrLambda {
  checkSteps('cosineHardRestartsWarmupDecay', warmupSteps, totalSteps);
  return (step) => {
    if (step < warmupSteps) return step / Math.max(1, warmupSteps);
    const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
    if (progress >= 1) return 0;
    return Math.max(0, 0.5 * (1 + roundedCos(Math.PI * ((numCycles * progress) % 1))));
  };
}

/**
 * transformers' get_polynomial_decay_schedule_with_warmup factor for a LambdaLR over initial rate
 * `lrInit`: linear warm-up, then the rate ((lrInit - lrEnd) · remaining^power + lrEnd) / lrInit with
 * remaining = 1 - (step - warmup) / (total - warmup), and lrEnd / lrInit after the last step; the power
 * rounded correctly, as glibc's pow rounds it ({@link roundedPow}).
 * @example polynomialWarmupDecay(0, 100, 1e-3, 0)(50) === 0.5
 */
export function polynomialWarmupDecay(warmupSteps: number, totalSteps: number, lrInit: number, lrEnd = 1e-7, power = 1): LrLambda {
  checkSteps('polynomialWarmupDecay', warmupSteps, totalSteps);
  if (!(lrInit > lrEnd)) throw new ValueError(`polynomialWarmupDecay: lrEnd (${lrEnd}) must be smaller than the initial rate (${lrInit})`);
  if (!(power >= 0) || !Number.isFinite(power)) throw new ValueError(`polynomialWarmupDecay: power must be a finite number >= 0 (the last step raises 0 to it), got ${power}`);
  return (step) => {
    if (step < warmupSteps) return step / Math.max(1, warmupSteps);
    if (step > totalSteps) return lrEnd / lrInit;
    const remaining = 1 - (step - warmupSteps) / (totalSteps - warmupSteps);
    return ((lrInit - lrEnd) * roundedPow(remaining, power) + lrEnd) / lrInit;
  };
}

/**
 * Sets each group's learning rate to its initial value times `lambda(step)` (torch's LambdaLR):
 * the constructor applies step 0; call `step()` after each `optimizer.step()`.
 * @example
 * const sched = new LambdaLR(opt, linearWarmupDecay(100, 1000));
 * for (...) { ...; opt.step(); sched.step(); }
 */
export class LambdaLR {
  /** Each group's learning rate when the scheduler was created. */
  readonly baseLrs: number[];
  /** Scheduler steps taken (the argument of the last lambda call). */
  lastStep = 0;

  constructor(
    private readonly optimizer: LrSchedulable,
    private readonly lambda: LrLambda,
  ) {
    this.baseLrs = optimizer.paramGroups.map((_, i) => optimizer.getLr(i));
    this.apply();
  }

  /** Advances one step and sets the learning rates. */
  step(): void {
    this.lastStep += 1;
    this.apply();
  }

  /** The learning rates currently set, per group. */
  getLastLr(): number[] {
    return this.baseLrs.map((_, i) => this.optimizer.getLr(i));
  }

  private apply(): void {
    const f = this.lambda(this.lastStep);
    this.baseLrs.forEach((base, i) => this.optimizer.setLr(base * f, i));
  }
}

/** transformers' get_linear_schedule_with_warmup: a {@link LambdaLR} over {@link linearWarmupDecay}. */
export function linearScheduleWithWarmup(optimizer: LrSchedulable, warmupSteps: number, totalSteps: number): LambdaLR {
  return new LambdaLR(optimizer, linearWarmupDecay(warmupSteps, totalSteps));
}

/** transformers' get_cosine_schedule_with_warmup: a {@link LambdaLR} over {@link cosineWarmupDecay}. */
export function cosineScheduleWithWarmup(optimizer: LrSchedulable, warmupSteps: number, totalSteps: number, numCycles = 0.5): LambdaLR {
  return new LambdaLR(optimizer, cosineWarmupDecay(warmupSteps, totalSteps, numCycles));
}
