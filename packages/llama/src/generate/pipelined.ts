// Decoding with one step in flight ahead of the host, greedy or sampled: step k is fed step k-1's picks
// on the GPU and encoded while step k-1 still runs, then step k-1's ids are read back, streamed and checked.

import { readyFusedLinear, type RowLogprobs } from '@huatuo/tensor';
import { DecodeReplay } from './decode-replay.js';
import { queueStep, type Output, type Picker, type QueuedStep, type SharedPrompt } from './decode-step.js';
import type { KvCache } from '../model/kv-cache.js';
import type { LlamaModel } from '../model/model.js';

let enabled = true;

/**
 * Turns decoding one step ahead on or off (greedy and sampled alike); off, each step's ids are read
 * before the next step is encoded (tests, benchmarks). The tokens are the same either way.
 */
export function setDecodePipelined(on: boolean): void {
  enabled = on;
}

/** {@link setDecodePipelined}, by the name it had when only greedy decoding ran ahead. */
export const setGreedyPipelined = setDecodePipelined;

/** Whether decoding with picks on the GPU runs one step ahead ({@link setDecodePipelined}). */
export function decodePipelinedEnabled(): boolean {
  return enabled;
}

let hostPicks = false;

/**
 * Picks tokens on the host from every row's logits read back (float64, sampling.ts) instead of on the
 * GPU: the reference path of tests and benchmarks. A seed gives the same tokens on both, but for a
 * uniform within rounding of a boundary of the distribution.
 */
export function setHostPicks(on: boolean): void {
  hostPicks = on;
}

/** Whether generate picks tokens on the host ({@link setHostPicks}). */
export function hostPicksEnabled(): boolean {
  return hostPicks;
}

/** What a step sees besides its ids: S keys, their mask [B * S] (1 = attend), each row's new positions. */
export interface StepInputs {
  S: number;
  mask: Int32Array;
  positions: number[][];
}

/**
 * Decodes `outputs` (one per row) from the prompt step `first` (host ids), decode step k >= 1 taking
 * `inputsAt(k)`, the k-th new tokens (from 0) picked by `pickAt(k)` on the GPU (`first.shared`: rows
 * that share their prompt step, decode-step.ts). Every row's tokens are
 * those of decoding one step at a time: a row that is done is fed its own pick instead of padding,
 * which its own keys alone see (each row attends only to its own cache). No step beyond maxNewTokens
 * is encoded (the cache holds P + maxNewTokens positions); when every row is done, the one step queued
 * after the last is read and dropped. Needs the embedding in one part (a split one gathers from host ids).
 * `logprobsAt(k)`, given, is step k's tokens' log-probabilities (read back as the pickers' `queued` asked),
 * pushed with them.
 */
export async function decodePipelined(
  model: LlamaModel,
  outputs: readonly Output[],
  first: StepInputs & { ids: number[][]; shared?: SharedPrompt | undefined },
  inputsAt: (k: number) => StepInputs,
  cache: KvCache,
  maxNewTokens: number,
  pickAt: (k: number) => Picker,
  logprobsAt?: (k: number) => Promise<readonly RowLogprobs[] | null>,
): Promise<void> {
  const B = outputs.length;
  await readyFusedLinear();
  // The step whose ids are read next, and at most one queued after it.
  const queued: QueuedStep[] = [];
  // Steps after the first replay a recorded one where they can (decode-replay.ts).
  const replay = new DecodeReplay(model, cache);
  const queue = (q: QueuedStep, pick: Picker) => {
    // A read that fails while an earlier one is awaited is not unhandled: it is awaited or dropped later.
    q.read.catch(() => undefined);
    queued.push(q);
    pick.queued?.();
  };
  try {
    const pick0 = pickAt(0);
    queue(queueStep(model, first.ids, first.mask, B, first.S, first.positions, cache, pick0, undefined, first.shared), pick0);
    for (let k = 1; queued.length > 0; k++) {
      const current = queued[0]!;
      if (k < maxNewTokens) {
        const x = inputsAt(k);
        const pick = pickAt(k);
        queue(replay.queue(current.ids, x.mask, B, x.S, x.positions, pick, () => queueStep(model, current.ids, x.mask, B, x.S, x.positions, cache, pick)), pick);
      }
      // Queued work that reads the picks runs before anything that reuses their buffer.
      current.ids.dispose();
      const picks = await current.read;
      const rows = (await logprobsAt?.(k - 1)) ?? null;
      queued.shift();
      for (const [b, out] of outputs.entries()) if (out.finishReason === null) out.push(picks[b]!, rows?.[b]);
      if (outputs.every((o) => o.finishReason !== null)) break;
    }
    if (outputs.some((o) => o.finishReason === null)) throw new Error('internal: decoding ran out of steps before maxNewTokens');
    for (const q of queued) await q.read;
  } finally {
    for (const q of queued) q.ids.dispose();
    replay.dispose();
  }
}
