// One optimizer step of the trainer: the step's micro-batches forward and backward, their gradients
// accumulated (loss-scaled in f16), then unscaling, global-norm clipping, AdamW and the scale's update.
import { clipGradNorm, GradScaler, hasF16, startScope, type AdamW, type Tensor } from '@huatuo/tensor';
import type { TokenizedExample } from './batch.js';
import { resolvePrecision, type TrainConfig } from './config.js';
import { ConfigError } from './errors.js';
import { dropoutSeed, hasTarget, toDevice } from './micro-batches.js';
import type { TrainableModel } from './train-types.js';

/** Whether the model's dtype is the one the config's precision asks for; true when losses need scaling (f16). */
export function lossScaling(config: TrainConfig, model: TrainableModel): boolean {
  const dtype = model.dtype ?? 'f32';
  if (config.precision === 'auto') return dtype === 'f16';
  const want = resolvePrecision(config.precision, hasF16()) === 'mixed' ? 'f16' : 'f32';
  if (dtype !== want) {
    throw new ConfigError('--precision', `${config.precision} trains a model computing in ${want}, but this one computes in ${dtype}; load the base in ${want} or choose --precision ${dtype === 'f16' ? 'mixed' : 'f32'}`);
  }
  return dtype === 'f16';
}

/** What one optimizer step works on. */
export interface StepInputs {
  config: TrainConfig;
  model: TrainableModel;
  optimizer: AdamW;
  scaler: GradScaler;
  /** The trainable parameters the optimizer updates (clipped together). */
  params: Tensor[];
  examples: readonly TokenizedExample[];
  /** The step's micro-batches, as indices into `examples`. */
  chunks: readonly (readonly number[])[];
  /** Micro-batches per optimizer step: each loss is divided by it. */
  accumulation: number;
  /** Zero-based index of the step: it seeds the dropout masks. */
  step: number;
}

/** What one optimizer step did. */
export interface StepOutcome {
  /** The mean over the micro-batches that had answer tokens; 0 (and no update) when none had. */
  loss: number;
  /** The scale this step's loss was multiplied by (1 without loss scaling). */
  lossScale: number;
  /** False when the gradients held inf/NaN and the update was skipped. */
  stepped: boolean;
  /** Non-padding tokens read. */
  tokens: number;
}

/** Runs one optimizer step; every tensor it makes is freed before it returns. */
export async function optimizerStep(s: StepInputs): Promise<StepOutcome> {
  const { config, optimizer, scaler } = s;
  const scope = startScope();
  const lossScale = scaler.getScale();
  let stepped = true;
  let tokens = 0;
  try {
    let lossSum: Tensor | null = null;
    let counted = 0;
    s.chunks.forEach((chunk, micro) => {
      const examples = chunk.map((i) => s.examples[i]!);
      // A micro-batch of records cut before their answer has no label to take a loss on (its
      // mean would be 0/0 = NaN); such records add no loss, as the data warnings say.
      if (!examples.some(hasTarget)) return;
      const batch = toDevice(examples, config);
      tokens += batch.tokens;
      const loss = s.model.loss(batch, { training: true, dropoutSeed: dropoutSeed(config.seed, s.step, micro) });
      loss.mul(lossScale / s.accumulation).backward();
      lossSum = lossSum ? lossSum.add(loss) : loss;
      counted++;
    });
    if (lossSum) {
      // Clipping sees the true gradients; a step whose gradients overflowed is skipped and the scale backs off.
      scaler.unscale(optimizer);
      if (config.maxGradNorm > 0) clipGradNorm(s.params, config.maxGradNorm);
      stepped = await scaler.step(optimizer);
      scaler.update();
      optimizer.zeroGrad();
    }
    const loss = lossSum ? (await (lossSum as Tensor).item()) / counted : 0;
    return { loss, lossScale, stepped, tokens };
  } finally {
    scope.end();
  }
}
