// Greedy decoding with one step in flight ahead of the host: step k is fed step k-1's picks on the GPU
// and encoded while step k-1 still runs, then step k-1's ids are read back, streamed and checked.

import { readyFusedLinear } from '@huatuo/tensor';
import { queueGreedyStep, type Output, type QueuedStep } from './decode-step.js';
import type { KvCache } from '../model/kv-cache.js';
import type { LlamaModel } from '../model/model.js';

let enabled = true;

/** Turns decoding one step ahead on or off; off, greedy reads each step's ids before the next (tests, benchmarks). */
export function setGreedyPipelined(on: boolean): void {
  enabled = on;
}

/** Whether greedy decoding on the GPU runs one step ahead ({@link setGreedyPipelined}). */
export function greedyPipelinedEnabled(): boolean {
  return enabled;
}

/** What a step sees besides its ids: S keys, their mask [B * S] (1 = attend), each row's new positions. */
export interface StepInputs {
  S: number;
  mask: Int32Array;
  positions: number[][];
}

/**
 * Greedy decoding of `outputs` (one per row) from the prompt step `first` (host ids), decode step k >= 1
 * taking `inputsAt(k)`. Every row's tokens are those of decoding one step at a time: a row that is done
 * is fed its own pick instead of padding, which its own keys alone see (each row attends only to its own
 * cache). No step beyond maxNewTokens is encoded (the cache holds P + maxNewTokens positions); when every
 * row is done, the one step queued after the last is read and dropped. Needs the embedding in one part
 * (a split one gathers from host ids).
 */
export async function greedyPipelined(
  model: LlamaModel,
  outputs: readonly Output[],
  first: StepInputs & { ids: number[][] },
  inputsAt: (k: number) => StepInputs,
  cache: KvCache,
  maxNewTokens: number,
): Promise<void> {
  const B = outputs.length;
  await readyFusedLinear();
  // The step whose ids are read next, and at most one queued after it.
  const queued: QueuedStep[] = [];
  const queue = (q: QueuedStep) => {
    // A read that fails while an earlier one is awaited is not unhandled: it is awaited or dropped later.
    q.read.catch(() => undefined);
    queued.push(q);
  };
  try {
    queue(queueGreedyStep(model, first.ids, first.mask, B, first.S, first.positions, cache));
    for (let k = 1; queued.length > 0; k++) {
      const current = queued[0]!;
      if (k < maxNewTokens) {
        const x = inputsAt(k);
        queue(queueGreedyStep(model, current.ids, x.mask, B, x.S, x.positions, cache));
      }
      // Queued work that reads the picks runs before anything that reuses their buffer.
      current.ids.dispose();
      const picks = await current.read;
      queued.shift();
      for (const [b, out] of outputs.entries()) if (out.finishReason === null) out.push(picks[b]!);
      if (outputs.every((o) => o.finishReason !== null)) break;
    }
    if (outputs.some((o) => o.finishReason === null)) throw new Error('internal: greedy decoding ran out of steps before maxNewTokens');
    for (const q of queued) await q.read;
  } finally {
    for (const q of queued) q.ids.dispose();
  }
}
