// CPU reference of each row's log-probability at its most likely token, in float64.

/**
 * For each row of x [R, V]: log_softmax(x)[argmax] = -log(sum_v exp(x[v] - max)), taken as max - max - log(s)
 * so that a row of all -inf, or holding +inf or NaN, gives NaN as the log-softmax there.
 */
export function refLogSoftmaxAtMax(x: { shape: readonly number[]; data: ArrayLike<number> }): Float64Array {
  const [R, V] = x.shape as [number, number];
  return Float64Array.from({ length: R }, (_, r) => {
    let m = -Infinity;
    let s = 0;
    for (let v = 0; v < V; v++) m = Math.max(m, x.data[r * V + v]!);
    for (let v = 0; v < V; v++) s += Math.exp(x.data[r * V + v]! - m);
    return m - m - Math.log(s);
  });
}
