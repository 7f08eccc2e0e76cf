// CPU reference of the embedding lookup and its scatter-add gradient, in float64.
import { refZeros, type RefTensor } from './ref-tensor.js';

/** out[n, :] = table[ids[n], :] for ids of any shape; out has shape [...ids.shape, C]. */
export function refEmbedding(ids: ArrayLike<number>, idsShape: readonly number[], table: RefTensor): RefTensor {
  const C = table.shape[1]!;
  const out = refZeros([...idsShape, C]);
  for (let n = 0; n < ids.length; n++) {
    for (let c = 0; c < C; c++) out.data[n * C + c] = table.data[ids[n]! * C + c]!;
  }
  return out;
}

/** dtable[v, :] = sum over n with ids[n] == v of dy[n, :]; dtable is [V, C]. */
export function refEmbeddingBackward(ids: ArrayLike<number>, dy: RefTensor, V: number): RefTensor {
  const C = dy.shape[dy.shape.length - 1]!;
  const dt = refZeros([V, C]);
  for (let n = 0; n < ids.length; n++) {
    for (let c = 0; c < C; c++) dt.data[ids[n]! * C + c] = dt.data[ids[n]! * C + c]! + dy.data[n * C + c]!;
  }
  return dt;
}
