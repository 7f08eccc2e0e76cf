// CPU reference of OpenAI's logit_bias in float64, as vLLM applies it: each biased token's score in every
// row rises by its bias.

/** y[b, v] = x[b, v] + bias[v] for each token v with a bias, else x[b, v]. */
export function refLogitBias(x: { shape: readonly number[]; data: ArrayLike<number> }, bias: ReadonlyMap<number, number>): Float64Array {
  const [B, V] = x.shape as [number, number];
  const y = Float64Array.from(x.data);
  for (let b = 0; b < B; b++) for (const [v, d] of bias) y[b * V + v] = y[b * V + v]! + d;
  return y;
}
