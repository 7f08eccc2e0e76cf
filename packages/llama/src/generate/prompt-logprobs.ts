// The log-probabilities of a prompt's own tokens (OpenAI's echo with logprobs, vLLM's prompt_logprobs, which
// evaluation harnesses read as loglikelihoods): each position's logits give the next token's log-probability
// and the most likely tokens there, computed on the GPU in chunks of rows from a forward pass's hidden
// states: generate's own prompt step (its promptLogprobs option), or one forward pass alone (promptLogprobs).

import { embedding, logSoftmaxTopK, noGrad, readyAttention, readyFusedLinear, relu, reshape, slice, sub, sum, tensor, tidy, toArray, unpackLogprobs, where, type RowLogprobs, type Tensor } from '@huatuo/tensor';
import { ModelError } from '../errors.js';
import type { LlamaModel } from '../model/model.js';

/** Rows of logits [rows, V] (f32) made at once: 32 MiB for LLaMA's vocabulary. */
const CHUNK_BYTES = 32 * 1024 * 1024;

/** A prompt token's log-probability and its position's most likely tokens; with ranks asked for, its rank there. */
export interface PromptTokenLogprobs extends RowLogprobs {
  /** vLLM's rank of the token: how many tokens of the vocabulary are at least as likely, itself included (1: the most likely). */
  readonly rank?: number;
}

/**
 * Rank of each row's target among its logits [n, V] (ids [n]): V minus the logits below the target's,
 * so that ties count against the target as vLLM's (x >= x[target]).sum() counts them. [n] f32, exact below 2^24.
 */
function targetRanks(logits: Tensor, targets: readonly number[]): Tensor {
  const [n, V] = logits.shape as [number, number];
  // The target's logit of row r is element r * V + target of the flattened rows.
  const at = embedding(tensor(Int32Array.from(targets, (t, r) => r * V + t), [n], { dtype: 'i32' }), reshape(logits, [n * V, 1])); // [n, 1]
  const below = sum(where(relu(sub(at, logits)), 1, 0), 1); // [n]
  return sub(tensor(new Float32Array(n).fill(V), [n]), below);
}

/**
 * Encodes the scoring of `prompt` from final hidden states `hidden` [B, S, C] (a forward pass's, inside
 * noGrad): row `row`'s last `prompt.length` positions hold it, and each position's logits give the next
 * token's log-probability and the `k` most likely tokens (and with `ranks`, the token's rank). Returns the
 * readback, already submitted, of each prompt token's row, null for the first (nothing predicts it);
 * `hidden` may be disposed at once.
 */
export function queuePromptLogprobs(model: LlamaModel, hidden: Tensor, row: number, prompt: readonly number[], k: number, ranks = false): Promise<(PromptTokenLogprobs | null)[]> {
  const V = model.config.vocabSize;
  const T = prompt.length;
  const first = hidden.shape[1]! - T;
  const rows = Math.max(1, Math.floor(CHUNK_BYTES / (V * 4)));
  const reads: Promise<PromptTokenLogprobs[]>[] = [];
  // Position t's logits predict token t + 1: the prompt's positions 0 .. T - 2.
  for (let start = 0; start < T - 1; start += rows) {
    const end = Math.min(T - 1, start + rows);
    const targets = prompt.slice(start + 1, end + 1);
    const out = noGrad(() =>
      tidy(() => {
        const h = slice(slice(hidden, 0, row, row + 1), 1, first + start, first + end); // [1, n, C]
        const logits = reshape(model.logits(h), [end - start, V]);
        const packed = logSoftmaxTopK(logits, tensor(Int32Array.from(targets), [end - start], { dtype: 'i32' }), k); // [n, k + 1, 2]
        return { packed, rank: ranks ? targetRanks(logits, targets) : null };
      }),
    );
    // toArray submits the copy before it returns: the results (and the hidden states) may go.
    const packed = toArray(out.packed) as Promise<Uint32Array>;
    const rank = out.rank === null ? null : (toArray(out.rank) as Promise<Float32Array>);
    out.packed.dispose();
    out.rank?.dispose();
    reads.push(Promise.all([packed, rank]).then(([p, r]) => unpackLogprobs(p, k).map((lp, i) => (r === null ? lp : { ...lp, rank: r[i]! }))));
  }
  return Promise.all(reads).then((done) => [null, ...done.flat()]);
}

/**
 * For each token of `prompt` (ids), its log-probability given the tokens before it and the `k` most likely
 * tokens at its position; null for the first token, which nothing predicts (as vLLM's prompt_logprobs).
 * The log-softmax of the model's raw logits, computed on the GPU, k + 1 values a token read back; with
 * `ranks`, also each token's rank there (vLLM's prompt_logprobs give it). One
 * forward pass over the prompt; to score a prompt that is also continued, pass `promptLogprobs` to
 * `generate`, which scores it from its own prompt step.
 * @example
 * const lp = await promptLogprobs(model, [1, 278, 4996], 1);
 * const loglikelihood = lp[1]!.logprob + lp[2]!.logprob;
 */
export async function promptLogprobs(model: LlamaModel, prompt: readonly number[], k: number, options: { ranks?: boolean } = {}): Promise<(PromptTokenLogprobs | null)[]> {
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
    let read: Promise<(PromptTokenLogprobs | null)[]>;
    try {
      read = queuePromptLogprobs(model, hidden, 0, prompt, k, options.ranks ?? false);
    } finally {
      hidden.dispose();
    }
    return await read;
  } finally {
    model.training = wasTraining;
  }
}
