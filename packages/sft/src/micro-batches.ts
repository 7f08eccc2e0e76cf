// The trainer's micro-batches: which examples each optimizer step reads (epoch order, an epoch's
// leftover micro-batches as --epoch-remainder says), their dropout seeds, which labels they learn
// from, and their device tensors.
import { tensor } from '@huatuo/tensor';
import { chunkOrder, collate, epochOrder, IGNORE_INDEX, type Batch, type TokenizedExample } from './batch.js';
import type { TrainConfig } from './config.js';
import type { TrainingSchedule } from './schedule.js';
import type { DeviceBatch } from './train-types.js';

/** Seed of the dropout masks of one micro-batch: the same step always draws the same masks. */
export function dropoutSeed(seed: number, step: number, micro: number): number {
  return (Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(step + 1, 0x85ebca6b) ^ Math.imul(micro + 1, 0xc2b2ae35)) >>> 0;
}

/** A micro-batch collated as the recipe pads it, on the host. */
export function collateMicroBatch(examples: readonly TokenizedExample[], config: TrainConfig): Batch {
  return collate(examples, { padId: config.padId, padToMultipleOf: config.padToMultipleOf, paddingSide: config.paddingSide });
}

/** A micro-batch collated as the recipe pads it, on the device. */
export function toDevice(examples: readonly TokenizedExample[], config: TrainConfig): DeviceBatch {
  return batchToDevice(collateMicroBatch(examples, config));
}

/** A collated micro-batch's tensors on the device. */
export function batchToDevice(b: Batch): DeviceBatch {
  const shape = [b.batchSize, b.seqLen];
  let tokens = 0;
  for (const m of b.attentionMask) tokens += m;
  return {
    inputIds: tensor(b.inputIds, shape),
    labels: tensor(b.labels, shape),
    attentionMask: tensor(b.attentionMask, shape),
    tokens,
  };
}

/** Whether an example has a label the shifted loss counts (labels 1..T-1 that are not -100). */
export function hasTarget(example: TokenizedExample): boolean {
  for (let t = 1; t < example.labels.length; t++) if (example.labels[t] !== IGNORE_INDEX) return true;
  return false;
}

/**
 * The labels of a collated micro-batch that the shifted loss counts: each row's labels 1..T-1 that are
 * not -100, transformers' num_items_in_batch (labels[..., 1:].ne(-100) summed over a step's micro-batches,
 * for a causal LM). With --train-on-inputs and left padding a padded row's first token is one of them,
 * predicted from the padding before it as the loss does; an unpadded row's is not.
 */
export function targetCount(b: Batch): number {
  let n = 0;
  for (let row = 0; row < b.batchSize; row++) {
    for (let t = 1; t < b.seqLen; t++) if (b.labels[row * b.seqLen + t] !== IGNORE_INDEX) n++;
  }
  return n;
}

/** What one optimizer step reads. */
export interface StepBatches {
  /** The step's micro-batches, as indices into the training examples. */
  chunks: number[][];
  /** What each micro-batch's mean loss is divided by with --loss-normalization micro-batch. */
  lossDivisor: number;
  /**
   * The Trainer's state.epoch after the step: its epoch plus the share of that epoch's micro-batches read
   * up to the step's last one, epoch + (step + 1) / steps_in_epoch in _inner_training_loop.
   */
  epoch: number;
}

/**
 * The micro-batches of each optimizer step, epoch by epoch, as the Hugging Face Trainer takes them.
 * With --epoch-remainder carry (transformers 4.28's _inner_training_loop) the micro-batches run on
 * across epochs and a step ends after every `accumulation`-th micro-batch counted from the run's
 * start (total_batched_samples), or at an epoch's end when an epoch holds no more than `accumulation`
 * micro-batches; each loss is divided by `accumulation`. With step (transformers 4.57) an epoch ends
 * with a step of its remainder micro-batches, whose losses are divided by their count
 * (current_gradient_accumulation_steps). With drop the remainder is left out.
 */
export function stepBatches(nTrain: number, config: TrainConfig, schedule: TrainingSchedule, microBatchSize: number): (step: number) => StepBatches {
  const accumulation = schedule.gradientAccumulationSteps;
  const perEpoch = schedule.microBatchesPerEpoch;
  let cached: { epoch: number; chunks: number[][] } | null = null;
  const epochChunks = (epoch: number): number[][] => {
    if (cached?.epoch !== epoch) cached = { epoch, chunks: chunkOrder(epochOrder(nTrain, config.seed, epoch), microBatchSize) };
    return cached.chunks;
  };
  if (config.epochRemainder !== 'carry') {
    return (step) => {
      const epoch = Math.floor(step / schedule.stepsPerEpoch);
      const within = step % schedule.stepsPerEpoch;
      const chunks = epochChunks(epoch).slice(within * accumulation, (within + 1) * accumulation);
      const read = within * accumulation + chunks.length;
      return { chunks, lossDivisor: config.epochRemainder === 'step' ? chunks.length : accumulation, epoch: epoch + read / perEpoch };
    };
  }
  // Step k's micro-batches as [epoch, index within the epoch], found by counting from the start.
  const steps: [number, number][][] = [];
  let counted = 0;
  let epoch = 0;
  let index = 0;
  let current: [number, number][] = [];
  return (step) => {
    while (steps.length <= step) {
      counted++;
      current.push([epoch, index]);
      const last = index === perEpoch - 1;
      if (counted % accumulation === 0 || (perEpoch <= accumulation && last)) {
        steps.push(current);
        current = [];
      }
      if (last) {
        epoch++;
        index = 0;
      } else {
        index++;
      }
    }
    const taken = steps[step]!;
    const [lastEpoch, lastIndex] = taken[taken.length - 1]!;
    return { chunks: taken.map(([e, i]) => epochChunks(e)[i]!), lossDivisor: accumulation, epoch: lastEpoch + (lastIndex + 1) / perEpoch };
  };
}
