// CPU reference of sampling one token per row in float64: Hugging Face's warpers in their order
// (temperature, top-k keeping ties with the k-th, softmax, top-p as TopPLogitsWarper) and one draw.

/** The warpers' settings: temperature > 0, topK 0 (off) or a count, topP in (0, 1] (1 is off). */
export interface SampleOptions {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
}

/**
 * One row's probabilities after the warpers, in float64: s = scores / temperature; tokens below the
 * k-th largest s get 0 (ties with it stay); p = softmax(s); in ascending order of p (ties: higher
 * index first) tokens get 0 while the cumulative p <= 1 - topP, the last one always kept.
 */
export function refSampleProbs(scores: ArrayLike<number>, o: SampleOptions): Float64Array {
  const V = scores.length;
  const s = Float64Array.from(scores, (x) => x / o.temperature);
  if (o.topK > 0 && o.topK < V) {
    const kth = Float64Array.from(s).sort()[V - o.topK]!;
    for (let i = 0; i < V; i++) if (s[i]! < kth) s[i] = -Infinity;
  }
  let m = -Infinity;
  for (let i = 0; i < V; i++) m = Math.max(m, s[i]!);
  let z = 0;
  for (let i = 0; i < V; i++) z += Math.exp(s[i]! - m);
  const lse = m + Math.log(z);
  const p = Float64Array.from(s, (x) => Math.exp(x - lse));
  if (o.topP < 1) {
    const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => p[a]! - p[b]! || b - a);
    let cum = 0;
    for (let r = 0; r < V - 1; r++) {
      cum += p[order[r]!]!;
      if (cum <= 1 - o.topP) p[order[r]!] = 0;
      else break;
    }
  }
  return p;
}

/**
 * One row's token for the uniform `u` in [0, 1): the first token, in index order, whose running sum
 * of {@link refSampleProbs} exceeds u * their total (the last token of nonzero p if none does).
 */
export function refSampleRow(scores: ArrayLike<number>, o: SampleOptions, u: number): number {
  const p = refSampleProbs(scores, o);
  let total = 0;
  for (let i = 0; i < p.length; i++) total += p[i]!;
  let left = u * total;
  let last = 0;
  for (let i = 0; i < p.length; i++) {
    if (p[i]! <= 0) continue;
    last = i;
    left -= p[i]!;
    if (left < 0) return i;
  }
  return last;
}

/**
 * The log-probability of `token` under the distribution {@link refSampleRow} draws from: the log of its share of
 * the kept probabilities (-Infinity where the warpers dropped it), vLLM V0's sample logprob, which best_of sums.
 */
export function refSampledLogprob(scores: ArrayLike<number>, o: SampleOptions, token: number): number {
  const p = refSampleProbs(scores, o);
  let total = 0;
  for (let i = 0; i < p.length; i++) total += p[i]!;
  return Math.log(p[token]! / total);
}

/** {@link refSampleRow} for each row of logits [B, V] with its uniform. */
export function refSampleLogits(logits: { shape: readonly number[]; data: ArrayLike<number> }, uniforms: ArrayLike<number>, o: SampleOptions): number[] {
  const V = logits.shape[1]!;
  return Array.from({ length: logits.shape[0]! }, (_, b) => refSampleRow(Array.prototype.slice.call(logits.data, b * V, (b + 1) * V) as number[], o, uniforms[b]!));
}
