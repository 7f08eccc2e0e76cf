// One decoding step of `generate` (the model over new positions with the KV cache, logits or the ids
// picked on the GPU read back), the memory check before decoding, and the output of one prompt as it grows.

import { cat, deviceInfo, noGrad, readyFusedLinear, reshape, slice, tensor, tidy, toArray, type MarkInput, type RowLogprobs, type Tensor } from '@huatuo/tensor';
import { ModelError } from '../errors.js';
import type { Generation, Resolved } from './generate-options.js';
import { findStopString } from './stop-strings.js';
import type { KvCache } from '../model/kv-cache.js';
import { checkMemoryPlan, inferencePlan } from '../model/memory.js';
import type { LlamaModel } from '../model/model.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';

const unmarked: MarkInput = (_, t) => t;

function idsTensor(rows: readonly (readonly number[])[]): Tensor {
  return tensor(Int32Array.from(rows.flat()), [rows.length, rows[0]!.length]);
}

/**
 * The mask [B, S] (1 = attend) of a recorded step, at the start of a buffer with room for B rows of the
 * cache's longest: its buffer (the step's input `mask`) holds every later step's. (A step not recorded
 * uploads [B, S] alone: the views cost host time.)
 */
function maskTensor(mask: Int32Array, B: number, S: number, maxLength: number, input: MarkInput): Tensor {
  const room = new Int32Array(B * Math.max(S, maxLength));
  room.set(mask.subarray(0, B * S));
  return reshape(slice(input('mask', tensor(room, [room.length])), 0, 0, B * S), [B, S]);
}

/**
 * Rows of a prompt step that repeat a prompt of the batch (n choices of one prompt): the step runs the
 * distinct prompts, rows `rows` of the batch, and row b of the batch takes the keys, values and last
 * logits of distinct prompt `sourceOf[b]`.
 */
export interface SharedPrompt {
  readonly rows: readonly number[];
  readonly sourceOf: readonly number[];
}

/**
 * Runs the model over new positions; the logits of each row's last position, [B, V] on the GPU. `ids`
 * are host rows or the previous step's picks [B] on the GPU (one new position per row). `input` marks
 * the step's inputs (ids, mask, positions) when it is recorded (decode-replay.ts). `scoreHidden`, given,
 * is handed the final hidden states of every new position, [B, T, C], to encode more work on them
 * (generate's prompt logprobs) before they go with the step's temporaries; with `shared` (a prompt step
 * into an empty cache), only the distinct prompts run, and `scoreHidden` gets their rows, [U, T, C].
 */
export function stepForward(model: LlamaModel, ids: number[][] | Tensor, mask: Int32Array, B: number, S: number, positions: number[][], cache: KvCache, input: MarkInput = unmarked, scoreHidden?: (hidden: Tensor) => void, shared?: SharedPrompt): Tensor {
  if (shared !== undefined && Array.isArray(ids)) return sharedPromptForward(model, ids, mask, S, positions, cache, shared, scoreHidden);
  return noGrad(() =>
    tidy(() => {
      const x = Array.isArray(ids) ? input('ids', idsTensor(ids)) : input('ids', ids).reshape([B, 1]);
      const options = {
        attentionMask: input === unmarked ? tensor(mask.slice(0, B * S), [B, S]) : maskTensor(mask, B, S, cache.maxLength, input),
        positions: input('positions', idsTensor(positions)),
        cache,
      };
      if (scoreHidden === undefined) return model.forward(x, { ...options, lastOnly: true });
      // The final norm is row by row: its last rows are lastOnly's.
      const hidden = model.hiddenStates(x, options); // [B, T, C]
      scoreHidden(hidden);
      const T = hidden.shape[1]!;
      return model.logits(slice(hidden, 1, T - 1, T)); // [B, 1, V]
    }),
  );
}

/**
 * The prompt step of {@link SharedPrompt}: the distinct prompts through the model into the cache's first
 * rows, spread to every row, and their last hidden states repeated row by row before lm_head, which runs
 * on all B rows as an unshared step's does. Every row's logits are those of the step unshared while the
 * products' kernel does not change with their row count (U * S and B * S rows both above the fused
 * products' few, see shared-prompt.ts).
 */
function sharedPromptForward(model: LlamaModel, ids: number[][], mask: Int32Array, S: number, positions: number[][], cache: KvCache, shared: SharedPrompt, scoreHidden?: (hidden: Tensor) => void): Tensor {
  if (cache.length !== 0 || ids[0]!.length !== S) throw new Error('internal: a shared prompt step runs first, over all of the prompt');
  const U = shared.rows.length;
  const first = cache.firstRows(U);
  try {
    return noGrad(() =>
      tidy(() => {
        const options = {
          attentionMask: tensor(Int32Array.from(shared.rows.flatMap((b) => [...mask.subarray(b * S, (b + 1) * S)])), [U, S]),
          positions: idsTensor(shared.rows.map((b) => positions[b]!)),
          cache: first,
        };
        const x = idsTensor(shared.rows.map((b) => ids[b]!));
        let last: Tensor; // [U, 1, C]
        if (scoreHidden === undefined) last = model.hiddenStates(x, { ...options, lastOnly: true });
        else {
          const hidden = model.hiddenStates(x, options); // [U, S, C]
          scoreHidden(hidden);
          last = slice(hidden, 1, S - 1, S);
        }
        cache.spreadRows(shared.sourceOf, first.length);
        return model.logits(cat(shared.sourceOf.map((u) => slice(last, 0, u, u + 1)), 0)); // [B, 1, V]
      }),
    );
  } finally {
    first.dispose();
  }
}

/** One decoding step's result on the host: every row's logits, or (picked on the GPU) only the picked ids. */
export type StepResult = { rows: Float32Array[] } | { ids: Int32Array };

/** Picks each row's token on the GPU from the logits [B, V]: ids [B] (i32). */
export interface Picker {
  /** The picks; `input` marks the host data it uploads, by the names of `inputs`, when the step is recorded. */
  pick(logits: Tensor, input: MarkInput): Tensor;
  /** The host data the pick uploads, by name (a replayed step writes these). */
  readonly inputs: Readonly<Record<string, ArrayBufferView>>;
  /** Called once the step is encoded and submitted, replayed or not, before the next step is encoded (to read back what the pick wrote in place). */
  readonly queued?: () => void;
}


/** Logits of the last position of each row read back as [B][V], or, given `pick`, the ids it picks [B]. */
export async function step(model: LlamaModel, ids: number[][], mask: Int32Array, B: number, S: number, positions: number[][], cache: KvCache, pick: Picker | null, scoreHidden?: (hidden: Tensor) => void, shared?: SharedPrompt): Promise<StepResult> {
  // The fused decode products are used by default only once they passed their check on this device.
  await readyFusedLinear();
  if (pick !== null) {
    const q = queueStep(model, ids, mask, B, S, positions, cache, pick, scoreHidden, shared);
    pick.queued?.();
    q.ids.dispose();
    return { ids: await q.read };
  }
  const V = model.config.vocabSize;
  const logits = stepForward(model, ids, mask, B, S, positions, cache, unmarked, scoreHidden, shared);
  try {
    const host = (await toArray(logits)) as Float32Array;
    return { rows: Array.from({ length: B }, (_, b) => host.subarray(b * V, (b + 1) * V)) };
  } finally {
    logits.dispose();
  }
}

/** A step encoded and submitted: its picks stay on the GPU for the next step while they are read back. */
export interface QueuedStep {
  /** The picked ids [B] (i32), owned by the caller. */
  readonly ids: Tensor;
  /** Their readback, already submitted. */
  readonly read: Promise<Int32Array>;
}

/**
 * Encodes a step (the model, then `pick` on the GPU) and starts reading its picks back without
 * waiting: the caller can encode the next step, fed `ids`, while this one runs. Await
 * `readyFusedLinear()` before the first. `scoreHidden`, `shared`: as {@link stepForward}'s.
 */
export function queueStep(model: LlamaModel, ids: number[][] | Tensor, mask: Int32Array, B: number, S: number, positions: number[][], cache: KvCache, pick: Picker, scoreHidden?: (hidden: Tensor) => void, shared?: SharedPrompt): QueuedStep {
  const V = model.config.vocabSize;
  const logits = stepForward(model, ids, mask, B, S, positions, cache, unmarked, scoreHidden, shared);
  try {
    const picked = noGrad(() => tidy(() => pick.pick(logits.reshape([B, V]), unmarked))); // [B]
    // toArray submits the copy before it returns: disposing the logits (and later the picks) is safe.
    return { ids: picked, read: toArray(picked) as Promise<Int32Array> };
  } finally {
    logits.dispose();
  }
}

/** Logits of the last position of each row, [B][V], read back to the host. */
export async function stepLogits(model: LlamaModel, ids: number[][], mask: Int32Array, B: number, S: number, positions: number[][], cache: KvCache): Promise<Float32Array[]> {
  const r = await step(model, ids, mask, B, S, positions, cache, null);
  return 'rows' in r ? r.rows : [];
}

/** Refuses, with the memory estimate, `batch` sequences of `length` tokens that cannot fit the adapter. */
export function checkFits(model: LlamaModel, batch: number, length: number): void {
  const info = deviceInfo();
  if (info === null) throw new ModelError('generate: no WebGPU device yet: call `await initWebGPU()` first');
  checkMemoryPlan(inferencePlan(model, batch, length), info, `generate (${batch} sequences of up to ${length} tokens)`);
}

/** One prompt's new tokens as they come: streamed text, stop strings, end of sequence, length limit. */
export class Output {
  tokens: number[] = [];
  /** Each token's log-probabilities, where they were pushed with it. */
  logprobs: RowLogprobs[] = [];
  text = '';
  finishReason: Generation['finishReason'] | null = null;
  /** The stop string that ended the output, once one has. */
  stopString: string | null = null;
  private ended: Generation | null = null;
  private readonly decoder;

  constructor(
    readonly prompt: number,
    readonly promptTokens: readonly number[],
    tokenizer: Tokenizer | null,
    private readonly r: Resolved,
  ) {
    this.decoder = tokenizer?.createStreamDecoder({ skipSpecialTokens: true }) ?? null;
  }

  /** Adds a token (with its log-probabilities, when asked for), streams it, and settles the finish reason (then ends the output). */
  push(token: number, logprobs?: RowLogprobs): void {
    this.tokens.push(token);
    if (logprobs !== undefined) this.logprobs.push(logprobs);
    const piece = this.r.eos.has(token) || this.decoder === null ? '' : this.decoder.push(token);
    this.text += piece;
    if (this.r.eos.has(token)) this.finishReason = 'eos';
    else {
      const found = findStopString(this.text, this.r.stopStrings);
      if (found !== null) {
        this.text = this.text.slice(0, found.at);
        this.stopString = found.stop;
        this.finishReason = 'stop';
      }
    }
    if (this.finishReason === null && this.tokens.length >= this.r.maxNewTokens) this.finishReason = 'length';
    const event = { prompt: this.prompt, token, text: piece, ...(logprobs === undefined ? {} : { logprobs }), ...(this.finishReason === null ? {} : { finishReason: this.finishReason }) };
    this.r.onToken?.(event);
    if (this.finishReason !== null) this.end(this.finishReason);
  }

  /** Ends the output for `reason` (once) and reports it to onFinish. */
  end(reason: Generation['finishReason']): void {
    if (this.ended !== null) return;
    this.finishReason = reason;
    if (reason !== 'stop' && this.decoder !== null) this.text += this.decoder.flush();
    this.ended = { promptTokens: this.promptTokens, tokens: this.tokens, text: this.text, finishReason: reason, ...(reason === 'stop' && this.stopString !== null ? { stopString: this.stopString } : {}) };
    this.r.onFinish?.({ prompt: this.prompt, generation: this.ended });
  }

  result(): Generation {
    this.end(this.finishReason ?? 'length');
    return this.ended!;
  }
}
