// The log-probabilities of a prompt's own tokens (OpenAI's echo with logprobs, vLLM's prompt_logprobs, which
// evaluation harnesses read as loglikelihoods): each position's logits give the next token's log-probability
// and the most likely tokens there, computed on the GPU in chunks of rows from a forward pass's hidden
// states: generate's own prompt step (its promptLogprobs option), or one forward pass alone (promptLogprobs).

import { logSoftmaxTopK, noGrad, readyAttention, readyFusedLinear, reshape, slice, tensor, tidy, toArray, unpackLogprobs, type RowLogprobs, type Tensor } from '@huatuo/tensor';
import { ModelError } from '../errors.js';
import type { LlamaModel } from '../model/model.js';

/** Rows of logits [rows, V] (f32) made at once: 32 MiB for LLaMA's vocabulary. */
const CHUNK_BYTES = 32 * 1024 * 1024;

/**
 * Encodes the scoring of `prompt` from final hidden states `hidden` [B, S, C] (a forward pass's, inside
 * noGrad): row `row`'s last `prompt.length` positions hold it, and each position's logits give the next
 * token's log-probability and the `k` most likely tokens. Returns the readback, already submitted, of each
 * prompt token's row, null for the first (nothing predicts it); `hidden` may be disposed at once.
 */
export function queuePromptLogprobs(model: LlamaModel, hidden: Tensor, row: number, prompt: readonly number[], k: number): Promise<(RowLogprobs | null)[]> {
  const V = model.config.vocabSize;
  const T = prompt.length;
  const first = hidden.shape[1]! - T;
  const rows = Math.max(1, Math.floor(CHUNK_BYTES / (V * 4)));
  const reads: Promise<Uint32Array>[] = [];
  // Position t's logits predict token t + 1: the prompt's positions 0 .. T - 2.
  for (let start = 0; start < T - 1; start += rows) {
    const end = Math.min(T - 1, start + rows);
    const packed = noGrad(() =>
      tidy(() => {
        const h = slice(slice(hidden, 0, row, row + 1), 1, first + start, first + end); // [1, n, C]
        const targets = tensor(Int32Array.from(prompt.slice(start + 1, end + 1)), [end - start], { dtype: 'i32' });
        return logSoftmaxTopK(reshape(model.logits(h), [end - start, V]), targets, k); // [n, k + 1, 2]
      }),
    );
    // toArray submits the copy before it returns: the packed rows (and the hidden states) may go.
    reads.push(toArray(packed) as Promise<Uint32Array>);
    packed.dispose();
  }
  return Promise.all(reads).then((done) => [null, ...done.flatMap((packed) => unpackLogprobs(packed, k))]);
}

/**
 * For each token of `prompt` (ids), its log-probability given the tokens before it and the `k` most likely
 * tokens at its position; null for the first token, which nothing predicts (as vLLM's prompt_logprobs).
 * The log-softmax of the model's raw logits, computed on the GPU, k + 1 values a token read back. One
 * forward pass over the prompt; to score a prompt that is also continued, pass `promptLogprobs` to
 * `generate`, which scores it from its own prompt step.
 * @example
 * const lp = await promptLogprobs(model, [1, 278, 4996], 1);
 * const loglikelihood = lp[1]!.logprob + lp[2]!.logprob;
 */
export async function promptLogprobs(model: LlamaModel, prompt: readonly number[], k: number): Promise<(RowLogprobs | null)[]> {
  const V = model.config.vocabSize;
  const T = prompt.length;
  if (T === 0 || prompt.some((t) => !Number.isInteger(t) || t < 0 || t >= V)) throw new ModelError(`promptLogprobs: prompt should be a non-empty list of token ids in [0, ${V})`);
  if (!Number.isSafeInteger(k) || k < 0 || k > V) throw new ModelError(`promptLogprobs: k should be an integer in [0, ${V}], got ${k}`);
  if (T > model.config.maxPositionEmbeddings) throw new ModelError(`promptLogprobs: the prompt is ${T} tokens, beyond the model's max_position_embeddings ${model.config.maxPositionEmbeddings}`);
  if (T === 1) return [null];
  // The same attention kernels as generate's prompt step, whatever the compile timing.
  await readyAttention({ headDim: model.config.headDim, dtypes: [model.dtype] });
  await readyFusedLinear();
  const wasTraining = model.training;
  model.training = false;
  try {
    const hidden = noGrad(() => tidy(() => model.hiddenStates(tensor(Int32Array.from(prompt), [1, T], { dtype: 'i32' })))); // [1, T, C]
    let read: Promise<(RowLogprobs | null)[]>;
    try {
      read = queuePromptLogprobs(model, hidden, 0, prompt, k);
    } finally {
      hidden.dispose();
    }
    return await read;
  } finally {
    model.training = wasTraining;
  }
}
