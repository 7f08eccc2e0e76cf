// The trainer's micro-batches: which examples each optimizer step reads (epoch order, leftovers
// dropped), their dropout seeds, which labels they learn from, and their device tensors.
import { tensor } from '@huatuo/tensor';
import { chunkOrder, collate, epochOrder, IGNORE_INDEX, type TokenizedExample } from './batch.js';
import type { TrainConfig } from './config.js';
import type { TrainingSchedule } from './schedule.js';
import type { DeviceBatch } from './train-types.js';

/** Seed of the dropout masks of one micro-batch: the same step always draws the same masks. */
export function dropoutSeed(seed: number, step: number, micro: number): number {
  return (Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(step + 1, 0x85ebca6b) ^ Math.imul(micro + 1, 0xc2b2ae35)) >>> 0;
}

/** A micro-batch collated as the recipe pads it, on the device. */
export function toDevice(examples: readonly TokenizedExample[], config: TrainConfig): DeviceBatch {
  const b = collate(examples, { padId: config.padId, padToMultipleOf: config.padToMultipleOf, paddingSide: config.paddingSide });
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
 * The labels of an example that the shifted loss counts (labels 1..T-1 that are not -100): its
 * answer tokens, transformers' num_items_in_batch summed over a step's micro-batches.
 */
export function targetCount(example: TokenizedExample): number {
  let n = 0;
  for (let t = 1; t < example.labels.length; t++) if (example.labels[t] !== IGNORE_INDEX) n++;
  return n;
}

/** Micro-batches of the whole run in order: epoch by epoch, leftovers that do not fill a step dropped. */
export function stepBatches(nTrain: number, config: TrainConfig, schedule: TrainingSchedule, microBatchSize: number) {
  const accumulation = schedule.gradientAccumulationSteps;
  return (step: number): number[][] => {
    const epoch = Math.floor(step / schedule.stepsPerEpoch);
    const within = step % schedule.stepsPerEpoch;
    const chunks = chunkOrder(epochOrder(nTrain, config.seed, epoch), microBatchSize);
    return chunks.slice(within * accumulation, (within + 1) * accumulation);
  };
}
