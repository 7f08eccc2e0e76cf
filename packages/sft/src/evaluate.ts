// Validation loss of a model on held-out examples, weighted as the Hugging Face Trainer reports it.
import { startScope } from '@huatuo/tensor';
import { chunkOrder, type TokenizedExample } from './batch.js';
import type { TrainConfig } from './config.js';
import { hasTarget, toDevice } from './micro-batches.js';
import type { TrainableModel } from './train-types.js';

/** Validation loss: per-batch mean losses averaged with batch-size weights (as the HF Trainer reports). */
export async function evaluate(model: TrainableModel, val: readonly TokenizedExample[], config: TrainConfig, microBatchSize: number): Promise<number> {
  let total = 0;
  let count = 0;
  for (const chunk of chunkOrder(val.map((_, i) => i), microBatchSize)) {
    if (!chunk.some((i) => hasTarget(val[i]!))) continue; // no answer token: no loss to average
    const scope = startScope();
    try {
      const batch = toDevice(chunk.map((i) => val[i]!), config);
      const loss = await model.loss(batch, { training: false, dropoutSeed: 0 }).item();
      total += loss * chunk.length;
      count += chunk.length;
    } finally {
      scope.end();
    }
  }
  return count === 0 ? NaN : total / count;
}
