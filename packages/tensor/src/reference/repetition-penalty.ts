// CPU reference of HF's RepetitionPenaltyLogitsProcessor in float64: the scores of tokens a row has seen
// shrink (positive ones divided by the penalty, negative ones multiplied).

/** y[b, v] = x < 0 ? x * penalty : x / penalty for each v in seen[b] (duplicates count once), else x. */
export function refRepetitionPenalty(x: { shape: readonly number[]; data: ArrayLike<number> }, seen: readonly (readonly number[])[], penalty: number): Float64Array {
  const V = x.shape[1]!;
  const y = Float64Array.from(x.data);
  seen.forEach((tokens, b) => {
    for (const v of new Set(tokens)) {
      const s = y[b * V + v]!;
      y[b * V + v] = s < 0 ? s * penalty : s / penalty;
    }
  });
  return y;
}
