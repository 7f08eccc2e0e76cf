// The options of `generate` (Hugging Face's names; most of its defaults), what it returns, and their check.

import type { RowLogprobs } from '@huatuo/tensor';
import { ModelError } from '../errors.js';
import type { PromptTokenLogprobs } from './prompt-logprobs.js';
import type { LlamaModel } from '../model/model.js';

/** A token as it is generated (streaming). */
export interface TokenEvent {
  /** Index of the prompt it continues. */
  readonly prompt: number;
  readonly token: number;
  /** Text this token completes (may be empty while a UTF-8 character is incomplete). */
  readonly text: string;
  /** With {@link GenerateOptions.logprobs}: the token's log-probability and its step's most likely tokens. */
  readonly logprobs?: RowLogprobs;
  /** Set on the token that ends its prompt's generation (onFinish follows), as vLLM's output of that step carries its finish_reason. */
  readonly finishReason?: Generation['finishReason'];
}

/** A prompt's generation as it ends ({@link GenerateOptions.onFinish}). */
export interface FinishEvent {
  /** Index of the prompt. */
  readonly prompt: number;
  readonly generation: Generation;
}

/** A prompt's tokens scored by its prompt step ({@link GenerateOptions.promptLogprobs}). */
export interface PromptLogprobsEvent {
  /** Index of the prompt. */
  readonly prompt: number;
  /** Each prompt token's log-probability and the most likely tokens at its position (its rank, with promptRanks); null for the first. */
  readonly logprobs: readonly (PromptTokenLogprobs | null)[];
}

/**
 * Options of {@link generate}, named as Hugging Face's `generate()` names them. The defaults of
 * doSample, temperature, topK, topP, repetitionPenalty, numBeams, lengthPenalty and eosTokenIds are
 * Hugging Face's (GenerationConfig); maxNewTokens (128) and seed (0) are not: Hugging Face stops at
 * max_length 20 tokens, prompt included, and samples from torch's global generator. frequencyPenalty
 * and presencePenalty are OpenAI's (default 0, off), which Hugging Face does not have.
 */
export interface GenerateOptions {
  /** Most tokens to add per prompt. Default 128. */
  readonly maxNewTokens?: number;
  /** Sample instead of taking the most likely token (greedy) or beams. Default false. */
  readonly doSample?: boolean;
  /** Sampling temperature (sampling only). Default 1. */
  readonly temperature?: number;
  /** Keep the k most likely tokens (sampling only; 0 disables). Default 50. */
  readonly topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p (sampling only). Default 1. */
  readonly topP?: number;
  /** Divides positive and multiplies negative scores of tokens already in the sequence (> 1 discourages repeats). Default 1. */
  readonly repetitionPenalty?: number;
  /**
   * OpenAI's frequency_penalty, as vLLM applies it after the repetition penalty and before temperature,
   * top-k and top-p: a token's score falls by this times the times it occurs in the tokens generated so
   * far (not the prompt). In [-2, 2]; greedy decoding and sampling only. Default 0.
   */
  readonly frequencyPenalty?: number;
  /** OpenAI's presence_penalty, as vLLM applies it after frequencyPenalty: a generated token's score falls by this once. In [-2, 2]; greedy decoding and sampling only. Default 0. */
  readonly presencePenalty?: number;
  /**
   * OpenAI's logit_bias, as vLLM applies it: each listed token's logit rises by its bias (a finite number;
   * OpenAI's range is [-100, 100]) before the penalties, temperature, top-k and top-p. Greedy decoding
   * and sampling only. Default: none.
   */
  readonly logitBias?: ReadonlyMap<number, number>;
  /** Beams per prompt; above 1 runs beam search (deterministic, as HF without doSample). Default 1. */
  readonly numBeams?: number;
  /** Beam hypotheses' scores are divided by length ** lengthPenalty. Default 1. */
  readonly lengthPenalty?: number;
  /** Ids that end a sequence. Default generation_config.json's eos_token_id(s) where the folder has them, else config.json's. */
  readonly eosTokenIds?: readonly number[];
  /** Strings that end a sequence once the generated text contains one (it is cut before it); of several completed by one token, the first in this list (vLLM's order). */
  readonly stopStrings?: readonly string[];
  /**
   * Seed of sampling. Row b's k-th new token draws with the k-th uniform of a generator seeded by
   * hash32(seed, b), so a prompt's tokens do not depend on the other prompts. Default 0.
   */
  readonly seed?: number;
  /**
   * One seed per prompt, in place of `seed`: prompt b samples as a generate of that prompt alone with
   * seed seeds[b] would, so a batch of one prompt repeated with seeds s, s + 1, ... gives the choices of
   * vLLM's n (whose i-th sequence is seeded with seed + i).
   */
  readonly seeds?: readonly number[];
  /** Put BOS before text prompts. Default: as the tokenizer's encode does (tokenizer_config.json's add_bos_token, else true), as `generate(tokenizer(prompt))` in transformers. */
  readonly addBos?: boolean;
  /**
   * Return each new token's log-probability with this many most likely tokens beside it (0: the token's
   * alone), in {@link Generation.logprobs}: the log-softmax of the model's logits as they come out of
   * lm_head, before the penalties, temperature, top-k and top-p, as vLLM's default logprobs_mode
   * (raw_logprobs). Computed on the GPU; only k + 1 values a token are read back. Greedy decoding and
   * sampling only. Default: none.
   */
  readonly logprobs?: number;
  /**
   * Sum each prompt's new tokens' log-probabilities under the distribution each was picked from (after
   * logitBias, the penalties, temperature, top-k and top-p: vLLM's cumulative_logprob, which its best_of
   * ranks by) into {@link Generation.cumulativeLogprob}. Summed on the GPU in f32 beside the picks, with each
   * pick's own (sampleLogitsWithLogprobs), so decoding still reads back only the ids, one step ahead, and one
   * number a prompt at the end; the host's float64 picking (setHostPicks) is the reference. Greedy decoding and
   * sampling only. Default false.
   */
  readonly cumulativeLogprob?: boolean;
  /**
   * Also score the prompts (vLLM's prompt_logprobs; OpenAI's echo with logprobs): each prompt token's
   * log-probability given the tokens before it, with this many most likely tokens beside it (0: the token's
   * alone), in {@link Generation.promptLogprobs}, null for the first token. Computed from the prompt step's
   * own forward pass, not a second one; as `logprobs`, from the raw logits. Equal prompts (n choices of one
   * prompt) are scored once. Greedy decoding and sampling only. Default: none.
   */
  readonly promptLogprobs?: number;
  /** With `promptLogprobs`: each prompt token's rank too (vLLM's: the tokens at least as likely, itself included), one more pass over each position's logits. Default false. */
  readonly promptRanks?: boolean;
  /** With `promptLogprobs`: called with each prompt's rows once its prompt step is read back, before its first token's onToken. */
  readonly onPromptLogprobs?: (event: PromptLogprobsEvent) => void;
  /**
   * Called with each new token (greedy and sampling: as generated; beam search: the chosen
   * beam's tokens once it is done).
   */
  readonly onToken?: (event: TokenEvent) => void;
  /**
   * Called once for each prompt as its generation ends (greedy and sampling: after its last token's
   * onToken, while other prompts may go on; beam search: after its tokens), with what it produced, its
   * log-probabilities aside (they come with onToken and in generate's result).
   */
  readonly onFinish?: (event: FinishEvent) => void;
}

/** What one prompt produced. */
export interface Generation {
  /** The prompt's token ids. */
  readonly promptTokens: readonly number[];
  /** New token ids (the end-of-sequence id included when it ended the sequence). */
  readonly tokens: readonly number[];
  /** Text of the new tokens without special tokens, cut before a stop string. */
  readonly text: string;
  readonly finishReason: 'eos' | 'stop' | 'length';
  /** With finishReason 'stop': the stop string that ended it (of several completed by the same token, the first of stopStrings, as vLLM's StopChecker picks it). */
  readonly stopString?: string;
  /** With {@link GenerateOptions.logprobs}: each new token's log-probability and the most likely tokens of its step, one per token. */
  readonly logprobs?: readonly RowLogprobs[];
  /** With {@link GenerateOptions.cumulativeLogprob}: the sum of the new tokens' log-probabilities under the distributions they were picked from. */
  readonly cumulativeLogprob?: number;
  /** With {@link GenerateOptions.promptLogprobs}: each prompt token's log-probability and the most likely tokens at its position (and its rank, with promptRanks), null for the first. */
  readonly promptLogprobs?: readonly (PromptTokenLogprobs | null)[];
}

/** Options of {@link generate} with defaults filled in and checked. */
export interface Resolved {
  maxNewTokens: number;
  doSample: boolean;
  temperature: number;
  topK: number;
  topP: number;
  repetitionPenalty: number;
  frequencyPenalty: number;
  presencePenalty: number;
  /** Token id -> bias added to its logit; empty for none. */
  logitBias: ReadonlyMap<number, number>;
  numBeams: number;
  lengthPenalty: number;
  eos: Set<number>;
  stopStrings: readonly string[];
  /** Most likely tokens returned beside each new token's log-probability, or null for no log-probabilities. */
  logprobs: number | null;
  cumulativeLogprob: boolean;
  /** Most likely tokens returned beside each prompt token's log-probability, or null for no prompt scoring. */
  promptLogprobs: number | null;
  promptRanks: boolean;
  onPromptLogprobs: ((event: PromptLogprobsEvent) => void) | undefined;
  onToken: ((event: TokenEvent) => void) | undefined;
  onFinish: ((event: FinishEvent) => void) | undefined;
}

/** The options with the defaults of {@link GenerateOptions}; refuses values `generate` cannot honour, naming the option. */
export function resolveOptions(model: LlamaModel, o: GenerateOptions): Resolved {
  const r: Resolved = {
    maxNewTokens: o.maxNewTokens ?? 128,
    doSample: o.doSample ?? false,
    temperature: o.temperature ?? 1,
    topK: o.topK ?? 50,
    topP: o.topP ?? 1,
    repetitionPenalty: o.repetitionPenalty ?? 1,
    frequencyPenalty: o.frequencyPenalty ?? 0,
    presencePenalty: o.presencePenalty ?? 0,
    logitBias: o.logitBias ?? new Map(),
    numBeams: o.numBeams ?? 1,
    lengthPenalty: o.lengthPenalty ?? 1,
    eos: new Set(o.eosTokenIds ?? model.config.generationEosTokenIds ?? model.config.eosTokenIds),
    stopStrings: o.stopStrings ?? [],
    logprobs: o.logprobs ?? null,
    cumulativeLogprob: o.cumulativeLogprob ?? false,
    promptLogprobs: o.promptLogprobs ?? null,
    promptRanks: o.promptRanks ?? false,
    onPromptLogprobs: o.onPromptLogprobs,
    onToken: o.onToken,
    onFinish: o.onFinish,
  };
  const positiveInt = (k: string, v: number) => {
    if (!Number.isSafeInteger(v) || v <= 0) throw new ModelError(`generate: ${k} should be a positive integer, got ${v}`);
  };
  positiveInt('maxNewTokens', r.maxNewTokens);
  positiveInt('numBeams', r.numBeams);
  if (!(r.temperature > 0)) throw new ModelError(`generate: temperature should be above 0, got ${r.temperature}; use doSample: false for greedy decoding`);
  if (!Number.isSafeInteger(r.topK) || r.topK < 0) throw new ModelError(`generate: topK should be a non-negative integer, got ${r.topK}`);
  if (!(r.topP > 0 && r.topP <= 1)) throw new ModelError(`generate: topP should be in (0, 1], got ${r.topP}`);
  if (!(r.repetitionPenalty > 0)) throw new ModelError(`generate: repetitionPenalty should be above 0, got ${r.repetitionPenalty}`);
  for (const k of ['frequencyPenalty', 'presencePenalty'] as const) {
    if (!(r[k] >= -2 && r[k] <= 2)) throw new ModelError(`generate: ${k} should be in [-2, 2] (OpenAI's range), got ${r[k]}`);
    // vLLM's beam search leaves both out and Hugging Face has neither.
    if (r[k] !== 0 && r.numBeams > 1) throw new ModelError(`generate: ${k} applies to greedy decoding and sampling, not beam search; use numBeams 1 or leave ${k} 0`);
  }
  for (const [id, bias] of r.logitBias) {
    const V = model.config.vocabSize;
    if (!(Number.isInteger(id) && id >= 0 && id < V)) throw new ModelError(`generate: logitBias has token id ${id}, outside the vocabulary [0, ${V})`);
    if (!Number.isFinite(bias)) throw new ModelError(`generate: logitBias of token ${id} should be a finite number, got ${bias}`);
  }
  if (r.logitBias.size > 0 && r.numBeams > 1) throw new ModelError('generate: logitBias applies to greedy decoding and sampling, not beam search; use numBeams 1 or leave logitBias out');
  for (const k of ['logprobs', 'promptLogprobs'] as const) {
    const top = r[k];
    if (top === null) continue;
    const V = model.config.vocabSize;
    if (!Number.isSafeInteger(top) || top < 0 || top > V) throw new ModelError(`generate: ${k} should be an integer in [0, ${V}] (the most likely tokens beside each token's), got ${top}`);
    if (r.numBeams > 1) throw new ModelError(`generate: ${k} apply to greedy decoding and sampling, not beam search; use numBeams 1 or leave ${k} out`);
  }
  if (r.cumulativeLogprob && r.numBeams > 1) throw new ModelError('generate: cumulativeLogprob applies to greedy decoding and sampling, not beam search (whose beams carry their own scores); use numBeams 1 or leave it out');
  if ((r.onPromptLogprobs !== undefined || r.promptRanks) && r.promptLogprobs === null) throw new ModelError(`generate: ${r.promptRanks ? 'promptRanks' : 'onPromptLogprobs'} goes with the prompts' scores; give promptLogprobs too`);
  if (r.numBeams > 1 && r.doSample) throw new ModelError('generate: beam sampling is not supported; use numBeams 1 with doSample, or doSample false with beams');
  return r;
}
