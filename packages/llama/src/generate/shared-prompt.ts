// Rows of a batch that repeat a prompt (n choices of one prompt, or the same prompt sent twice) share
// its prompt step: the distinct prompts run once and every row gets a copy of its prompt's keys,
// values and last logits (decode-step.ts), then the rows decode apart as before.

import { FUSED_LINEAR_MAX_ROWS } from '@huatuo/tensor';
import type { SharedPrompt } from './decode-step.js';

let enabled = true;

/** Turns sharing the prompt step among rows of the same prompt on or off (on by default). The tokens are the same either way. */
export function setSharedPrompts(on: boolean): void {
  enabled = on;
}

/**
 * How the rows of `prompts` share their prompt step, or null when each row runs its own: no prompt
 * repeats, sharing is off, or the padded prompts are `P` <= FUSED_LINEAR_MAX_ROWS tokens. So few rows
 * would run the decoder's products on the fused kernels (a single row on the matrix-vector one) where
 * the batch of every row ran the general product, summing in another order; above that, both run the
 * same kernel and give each row the same logits, for the few tokens that sharing saves nothing on anyway.
 */
export function sharedPrompt(prompts: readonly (readonly number[])[], P: number): SharedPrompt | null {
  if (!enabled || P <= FUSED_LINEAR_MAX_ROWS) return null;
  const first = prompts.map((p) => prompts.findIndex((q) => q.length === p.length && q.every((t, i) => t === p[i])));
  const rows = first.filter((f, b) => f === b);
  if (rows.length === prompts.length) return null;
  return { rows, sourceOf: first.map((f) => rows.indexOf(f)) };
}
