// One optimizer step of the trainer: the step's micro-batches forward and backward, their gradients
// accumulated (averaged per micro-batch or per answer token, loss-scaled in f16), then unscaling,
// global-norm clipping, AdamW and the scale's update.
import { clipGradNorm, GradScaler, hasF16, keep, startScope, zerosLike, type AdamW, type Tensor } from '@huatuo/tensor';
import type { TokenizedExample } from './batch.js';
import { resolvePrecision, type TrainConfig } from './config.js';
import { ConfigError } from './errors.js';
import { batchToDevice, collateMicroBatch, dropoutSeed, targetCount } from './micro-batches.js';
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
  /**
   * What each micro-batch's loss is divided by with --loss-normalization micro-batch: the accumulation steps, or
   * the micro-batches of an epoch's remainder step with --epoch-remainder step.
   */
  accumulation: number;
  /** Zero-based index of the step: it seeds the dropout masks. */
  step: number;
}

/** What one optimizer step did. */
export interface StepOutcome {
  /**
   * The step's loss as the Hugging Face Trainer adds it to its logged tr_loss (the losses training_step
   * returns, each already divided as its gradient is), left out the micro-batches whose loss is NaN there
   * (see `losses`): with --loss-normalization tokens the mean over the step's answer tokens; with
   * micro-batch the micro-batches' means summed over `accumulation` (transformers 4.28's step at the end of
   * an epoch shorter than the accumulation, --epoch-remainder carry, divides each by
   * gradient_accumulation_steps too). 0 when no micro-batch had answer tokens.
   */
  loss: number;
  /**
   * The losses in the order the Trainer adds them to tr_loss: those of consecutive micro-batches summed
   * (divided as `loss`), null for each micro-batch whose loss is NaN in the Trainer, which its
   * logging_nan_inf_filter replaces: with micro-batch one without answer tokens (CrossEntropyLoss's mean over
   * no token), with tokens every micro-batch of a step without any (0 / num_items_in_batch 0). With tokens a
   * micro-batch without answer tokens in a step with some adds 0 (its sum 0 over num_items_in_batch).
   */
  losses: (number | null)[];
  /** The scale this step's loss was multiplied by (1 without loss scaling). */
  lossScale: number;
  /** False when the gradients held inf/NaN and the update was skipped. */
  stepped: boolean;
  /** Non-padding tokens read in the micro-batches with answer tokens. */
  tokens: number;
  /**
   * The gradients' global L2 norm before clipping (after unscaling), which the Trainer logs as grad_norm
   * (0 for a step without answer tokens); null without --max-grad-norm, where the Trainer logs none.
   */
  gradNorm: number | null;
  /** Each micro-batch's padded input_ids.numel() (rows x padded length), those without answer tokens included. */
  inputSizes: number[];
}

/** The losses of a step's micro-batches, added up as {@link StepOutcome.loss} says. */
export interface AccumulatedLoss {
  /**
   * The micro-batches' mean losses times their weights in the Trainer's order, as {@link StepOutcome.losses}:
   * those of consecutive micro-batches summed on the device, null for each whose loss is NaN there; so one sum
   * when every micro-batch had answer tokens, and none when none had.
   */
  parts: (Tensor | null)[];
  /** The sum of those weights: 1 per micro-batch (--loss-normalization micro-batch) or its answer tokens (tokens). */
  weight: number;
  /** Non-padding tokens read. */
  tokens: number;
  /** Each micro-batch's padded input_ids.numel(), as {@link StepOutcome.inputSizes}. */
  inputSizes: number[];
}

/**
 * The step's micro-batches forward and backward, their gradients added into the parameters' `.grad`,
 * each micro-batch's mean loss multiplied by `lossScale` and by 1 / accumulation (--loss-normalization
 * micro-batch) or by its answer tokens / the step's answer tokens (tokens: transformers' sum over a
 * micro-batch divided by num_items_in_batch). A micro-batch without answer tokens (records cut before
 * their answer) is not run: in torch its loss's backward gives zero gradients (its loss is NaN, 0/0, as the
 * data warnings say, or 0 over the step's answer tokens).
 */
export function accumulateGradients(s: Omit<StepInputs, 'optimizer' | 'scaler' | 'params'>, lossScale: number): AccumulatedLoss {
  const { config } = s;
  const byTokens = config.lossNormalization === 'tokens';
  const micro = s.chunks.map((chunk) => {
    const collated = collateMicroBatch(chunk.map((i) => s.examples[i]!), config);
    return { collated, targets: targetCount(collated) };
  });
  const stepTargets = micro.reduce((n, m) => n + m.targets, 0);
  const parts: (Tensor | null)[] = [];
  let weight = 0;
  let tokens = 0;
  micro.forEach(({ collated, targets }, index) => {
    if (targets === 0) {
      if (!byTokens || stepTargets === 0) parts.push(null);
      return;
    }
    const batch = batchToDevice(collated);
    tokens += batch.tokens;
    const loss = s.model.loss(batch, { training: true, dropoutSeed: dropoutSeed(config.seed, s.step, index) });
    loss.mul(byTokens ? (lossScale * targets) / stepTargets : lossScale / s.accumulation).backward();
    const weighted = byTokens ? loss.mul(targets) : loss;
    const last = parts.length - 1;
    if (last >= 0 && parts[last]) parts[last] = parts[last].add(weighted);
    else parts.push(weighted);
    weight += byTokens ? targets : 1;
  });
  return { parts, weight, tokens, inputSizes: micro.map(({ collated }) => collated.batchSize * collated.seqLen) };
}

/**
 * Runs one optimizer step; every tensor it makes is freed before it returns. A step whose micro-batches hold
 * no answer token steps too, as the Trainer's: there backward of the NaN losses gives every LoRA parameter a
 * zero gradient, so clipping sees norm 0, AdamW steps (its moments decay, its step count grows, weight decay
 * applies) and the loss scaler counts a finite step.
 */
export async function optimizerStep(s: StepInputs): Promise<StepOutcome> {
  const { config, optimizer, scaler } = s;
  const scope = startScope();
  const lossScale = scaler.getScale();
  try {
    const { parts, weight, tokens, inputSizes } = accumulateGradients(s, lossScale);
    const partSums = parts.filter((p): p is Tensor => p !== null);
    if (partSums.length === 0) for (const p of s.params) p.grad ??= keep(zerosLike(p));
    // Clipping sees the true gradients; a step whose gradients overflowed is skipped and the scale backs off.
    // The overflow flag, the losses and the norm are read back together: the step waits for the GPU once,
    // with AdamW already queued (its kernels skip on the GPU when the flag is set).
    scaler.unscale(optimizer);
    const norm = config.maxGradNorm > 0 ? clipGradNorm(s.params, config.maxGradNorm) : null;
    const read = await scaler.stepAndRead(optimizer, norm ? [...partSums, norm] : partSums);
    scaler.update();
    optimizer.zeroGrad();
    // micro-batch: each mean over `accumulation`, as the Trainer divides it.
    const divisor = config.lossNormalization === 'tokens' ? weight : s.accumulation;
    const sums = read.values.slice(0, partSums.length);
    let next = 0;
    const losses = parts.map((p) => (p === null ? null : sums[next++]! / divisor));
    const loss = sums.reduce((a, b) => a + b, 0) / divisor;
    return { loss, losses, lossScale, stepped: read.stepped, tokens, gradNorm: norm ? read.values[partSums.length]! : null, inputSizes };
  } finally {
    scope.end();
  }
}
