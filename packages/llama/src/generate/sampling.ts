// Hugging Face's logits processing on the host, in float64: repetition penalty, log-softmax, top-k
// indices, and the temperature / top-k / top-p warpers with one draw from the result.

/** HF's RepetitionPenaltyLogitsProcessor: scores of tokens in `seen` shrink (in place). */
export function applyRepetitionPenalty(scores: Float64Array, seen: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  for (const t of new Set(seen)) {
    const s = scores[t]!;
    scores[t] = s < 0 ? s * penalty : s / penalty;
  }
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
 * resulting distribution. Filtered tokens get probability 0; top-k keeps ties with the k-th.
 */
export function sampleToken(scores: Float64Array, o: { temperature: number; topK: number; topP: number }, uniform: number): number {
  const V = scores.length;
  const s = Float64Array.from(scores, (x) => x / o.temperature);
  if (o.topK > 0 && o.topK < V) {
    const kth = s[topIndices(s, o.topK)[o.topK - 1]!]!;
    for (let i = 0; i < V; i++) if (s[i]! < kth) s[i] = -Infinity;
  }
  const p = Float64Array.from(logSoftmaxRow(s), Math.exp);
  if (o.topP < 1) {
    // Sorted ascending, drop tokens while the cumulative probability stays <= 1 - topP; keep the top one.
    const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => p[a]! - p[b]! || b - a);
    let cum = 0;
    for (let r = 0; r < V - 1; r++) {
      cum += p[order[r]!]!;
      if (cum <= 1 - o.topP) p[order[r]!] = 0;
      else break;
    }
  }
  let total = 0;
  for (let i = 0; i < V; i++) total += p[i]!;
  let u = uniform * total;
  let last = 0;
  for (let i = 0; i < V; i++) {
    if (p[i]! <= 0) continue;
    last = i;
    u -= p[i]!;
    if (u < 0) return i;
  }
  return last;
}
