// CPU reference of the log-probabilities a server returns for a row of logits, in float64: the log-softmax
// at the row's target token and its k most likely tokens.

/** One token's log-probability. */
export interface TokenLogprob {
  readonly id: number;
  readonly logprob: number;
}

/** A row's target token (its log-probability) and the k most likely tokens, most likely first. */
export interface RowLogprobs extends TokenLogprob {
  readonly top: readonly TokenLogprob[];
}

/**
 * For each row b of x [R, V]: log_softmax(x[b]) = x[b, v] - max - log(sum_v exp(x[b, v] - max)) at
 * targets[b] and at the k largest entries (ties: lower index first).
 */
export function refLogSoftmaxTopK(x: { shape: readonly number[]; data: ArrayLike<number> }, targets: readonly number[], k: number): RowLogprobs[] {
  const [R, V] = x.shape as [number, number];
  return Array.from({ length: R }, (_, b) => {
    const row = Array.from({ length: V }, (_, v) => x.data[b * V + v]!);
    let m = -Infinity;
    for (const v of row) m = Math.max(m, v);
    let s = 0;
    for (const v of row) s += Math.exp(v - m);
    const lse = m + Math.log(s);
    const order = Array.from({ length: V }, (_, v) => v).sort((i, j) => row[j]! - row[i]! || i - j);
    const t = targets[b]!;
    return { id: t, logprob: row[t]! - lse, top: order.slice(0, k).map((id) => ({ id, logprob: row[id]! - lse })) };
  });
}
