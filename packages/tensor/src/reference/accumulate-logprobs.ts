// CPU reference of the running sums of decoding's picked log-probabilities (vLLM's cumulative_logprob), in f32
// as the GPU adds them, with each row's sum before its latest term.

/**
 * One step on `total` and `before` [B] in place: for each row b active (nonzero, NaN included), before[b] =
 * total[b] and total[b] += logprobs[b]; an inactive row's total adds 0 and its `before` stays. Sums rounded to f32.
 */
export function refAccumulateLogprobs(total: Float32Array, before: Float32Array, logprobs: ArrayLike<number>, active: ArrayLike<number>): void {
  for (let b = 0; b < total.length; b++) {
    const on = active[b] !== 0; // NaN !== 0; -0 === 0
    if (on) before[b] = total[b]!;
    total[b] = Math.fround(total[b]! + (on ? logprobs[b]! : 0));
  }
}
