// CPU reference of cross-entropy over logits [N, V] and integer targets [N] (PyTorch F.cross_entropy
// semantics with ignore_index and reductions), forward and backward, in float64.
import { refZeros, refTensor, type RefTensor } from './ref-tensor.js';

export type RefReduction = 'mean' | 'sum' | 'none';

function logSumExp(x: RefTensor, n: number, V: number): number {
  let m = -Infinity;
  for (let v = 0; v < V; v++) m = Math.max(m, x.data[n * V + v]!);
  let s = 0;
  for (let v = 0; v < V; v++) s += Math.exp(x.data[n * V + v]! - m);
  return m + Math.log(s);
}

/**
 * loss_n = logsumexp(x[n]) - x[n, t_n] (0 where t_n == ignoreIndex); 'mean' divides the sum by
 * the number of non-ignored targets (NaN when there are none), 'sum' sums, 'none' returns [N].
 */
export function refCrossEntropy(
  logits: RefTensor,
  targets: ArrayLike<number>,
  ignoreIndex = -100,
  reduction: RefReduction = 'mean',
): RefTensor {
  const V = logits.shape[logits.shape.length - 1]!;
  const N = targets.length;
  const losses = new Float64Array(N);
  let total = 0;
  let count = 0;
  for (let n = 0; n < N; n++) {
    const t = targets[n]!;
    if (t === ignoreIndex) continue;
    losses[n] = logSumExp(logits, n, V) - logits.data[n * V + t]!;
    total += losses[n]!;
    count++;
  }
  if (reduction === 'none') return refTensor(losses, [N]);
  return refTensor([reduction === 'sum' ? total : total / count], []);
}

/**
 * Gradient with respect to the logits given the output gradient g (a scalar, or [N] for 'none'):
 * dx[n, v] = (softmax(x[n])[v] - [v == t_n]) * g_n, with g_n = g / count for 'mean'; 0 rows where ignored.
 */
export function refCrossEntropyBackward(
  logits: RefTensor,
  targets: ArrayLike<number>,
  g: ArrayLike<number>,
  ignoreIndex = -100,
  reduction: RefReduction = 'mean',
): RefTensor {
  const V = logits.shape[logits.shape.length - 1]!;
  const N = targets.length;
  let count = 0;
  for (let n = 0; n < N; n++) if (targets[n] !== ignoreIndex) count++;
  const dx = refZeros(logits.shape);
  for (let n = 0; n < N; n++) {
    const t = targets[n]!;
    if (t === ignoreIndex) continue;
    const gn = reduction === 'none' ? g[n]! : reduction === 'sum' ? g[0]! : g[0]! / count;
    const lse = logSumExp(logits, n, V);
    for (let v = 0; v < V; v++) {
      dx.data[n * V + v] = (Math.exp(logits.data[n * V + v]! - lse) - (v === t ? 1 : 0)) * gn;
    }
  }
  return dx;
}
