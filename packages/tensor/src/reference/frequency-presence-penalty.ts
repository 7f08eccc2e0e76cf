// CPU reference of OpenAI's frequency and presence penalties in float64, in vLLM's order: each token's
// score falls by the frequency penalty times its count in the row, then by the presence penalty if it occurs.

/** y[b, v] = x[b, v] - frequency * c - presence * (c > 0 ? 1 : 0), c the count of v in tokens[b]. */
export function refFrequencyPresencePenalty(
  x: { shape: readonly number[]; data: ArrayLike<number> },
  tokens: readonly (readonly number[])[],
  frequency: number,
  presence: number,
): Float64Array {
  const V = x.shape[1]!;
  const y = Float64Array.from(x.data);
  tokens.forEach((row, b) => {
    const counts = new Map<number, number>();
    for (const v of row) counts.set(v, (counts.get(v) ?? 0) + 1);
    for (const [v, c] of counts) y[b * V + v] = y[b * V + v]! - frequency * c - presence;
  });
  return y;
}
