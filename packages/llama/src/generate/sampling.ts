// Hugging Face's logits processing on the host, in float64: repetition penalty (and OpenAI's logit_bias,
// frequency and presence penalties, as vLLM applies them), log-softmax, top-k
// indices, and the temperature / top-k / top-p warpers with one draw from the result; the uniforms
// each row's tokens draw with.

import { Generator, refSampleRow, type SampleOptions } from '@huatuo/tensor';

/** OpenAI's logit_bias on one row's scores, in place, as vLLM applies it (before the penalties): each listed token's score rises by its bias. */
export function applyLogitBias(scores: Float64Array, bias: ReadonlyMap<number, number>): void {
  for (const [t, d] of bias) scores[t] = scores[t]! + d;
}

/** HF's RepetitionPenaltyLogitsProcessor: scores of tokens in `seen` shrink (in place). */
export function applyRepetitionPenalty(scores: Float64Array, seen: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  for (const t of new Set(seen)) {
    const s = scores[t]!;
    scores[t] = s < 0 ? s * penalty : s / penalty;
  }
}

/**
 * OpenAI's frequency and presence penalties on one row's scores, in place, as vLLM applies them: each
 * token's score falls by `frequency` times its count in `generated` (the tokens generated so far), then
 * by `presence` if it occurs.
 */
export function applyFrequencyPresencePenalty(scores: Float64Array, generated: Iterable<number>, frequency: number, presence: number): void {
  if (frequency === 0 && presence === 0) return;
  const counts = new Map<number, number>();
  for (const t of generated) counts.set(t, (counts.get(t) ?? 0) + 1);
  for (const [t, c] of counts) scores[t] = scores[t]! - frequency * c - presence;
}

/** Log-softmax of a row, in float64. */
export function logSoftmaxRow(row: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < row.length; i++) m = Math.max(m, row[i]!);
  let s = 0;
  for (let i = 0; i < row.length; i++) s += Math.exp(row[i]! - m);
  const lse = m + Math.log(s);
  const out = new Float64Array(row.length);
  for (let i = 0; i < row.length; i++) out[i] = row[i]! - lse;
  return out;
}

/** Indices of the k largest values, largest first (ties: lower index first). */
export function topIndices(values: ArrayLike<number>, k: number): number[] {
  const top: number[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (top.length === k && v <= values[top[k - 1]!]!) continue;
    let j = top.length < k ? top.length : k - 1;
    if (top.length < k) top.push(i);
    while (j > 0 && values[top[j - 1]!]! < v) {
      top[j] = top[j - 1]!;
      j--;
    }
    top[j] = i;
  }
  return top;
}

/**
 * HF's sampling warpers in their order (temperature, top-k, top-p) and a draw from the
 * resulting distribution, in float64. Filtered tokens get probability 0; top-k keeps ties with the
 * k-th. The same function as the GPU's `sampleLogits` checks against (`refSampleRow`).
 */
export function sampleToken(scores: Float64Array, o: SampleOptions, uniform: number): number {
  return refSampleRow(scores, o, uniform);
}

/**
 * The uniforms of sampling, [K, B]: row b's k-th new token (from 0) draws with element k * B + b,
 * the k-th uniform of a generator seeded by hash32(seed, b). A row's tokens depend only on the seed,
 * its own logits and its index, whichever decoding path runs and whenever other rows end. Rounded to
 * f32, so that the host and the GPU draw with the same number.
 */
export function tokenUniforms(seed: number, B: number, K: number): Float32Array {
  const root = new Generator(seed >>> 0);
  const rows = Array.from({ length: B }, () => root.fork());
  const u = new Float32Array(K * B);
  for (let k = 0; k < K; k++) for (let b = 0; b < B; b++) u[k * B + b] = rows[b]!.uniform();
  return u;
}
