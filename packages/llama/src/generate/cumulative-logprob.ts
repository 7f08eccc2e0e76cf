// Each row's cumulative log-probability (generate's cumulativeLogprob, vLLM's cumulative_logprob that best_of
// ranks by) summed on the GPU from the picks' own log-probabilities, so decoding reads back only the ids and,
// at the end, one number a row. A step adds to the rows not known to be done when it is encoded (an input, as
// the uniforms are); decoding one step ahead encodes step k before it has read step k - 1, so a row may get
// one term past its last token. `before` keeps each row's sum without its latest term for that case.

import { accumulateLogprobs, tensor, toArray, where, zeros, type MarkInput, type Tensor } from '@huatuo/tensor';
import type { Output } from './decode-step.js';

export class CumulativeLogprobs {
  /** [B] f32: each row's sum over the steps that added to it, and that sum without the latest term. */
  private readonly total: Tensor;
  private readonly before: Tensor;
  /** Steps that added to each row. */
  private readonly added: number[];

  constructor(private readonly outputs: readonly Output[]) {
    const B = outputs.length;
    this.total = zeros([B]);
    this.before = zeros([B]);
    this.added = new Array<number>(B).fill(0);
  }

  /** The rows the step encoded now adds to (1: not known to be done), counted as added: the step's input `active`. */
  activeRows(): Float32Array {
    return Float32Array.from(this.outputs, (o, b) => {
      if (o.finishReason !== null) return 0;
      this.added[b]!++;
      return 1;
    });
  }

  /** Adds a step's picks' log-probabilities `logprobs` [B] (f32) to the rows `active` marks, in place on the GPU in one dispatch. */
  add(logprobs: Tensor, active: Float32Array, input: MarkInput): void {
    accumulateLogprobs(this.total, this.before, logprobs, input('active', tensor(active, [active.length])));
  }

  /** Each row's sum over its tokens (one number a row read back), once decoding is done. */
  async read(): Promise<number[]> {
    const latest = Float32Array.from(this.outputs, (o, b) => {
      const extra = this.added[b]! - o.tokens.length;
      if (extra !== 0 && extra !== 1) throw new Error(`internal: row ${b} has ${o.tokens.length} tokens and ${this.added[b]} log-probabilities added`);
      return extra === 0 ? 1 : 0;
    });
    const which = tensor(latest, [latest.length]);
    const sums = where(which, this.total, this.before);
    try {
      return Array.from((await toArray(sums)) as Float32Array);
    } finally {
      which.dispose();
      sums.dispose();
    }
  }

  dispose(): void {
    this.total.dispose();
    this.before.dispose();
  }
}
