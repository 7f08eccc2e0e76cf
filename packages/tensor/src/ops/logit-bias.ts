// OpenAI's logit_bias on the GPU (no gradient): a bias row over the vocabulary, built once from a request's
// token ids and biases, added to every row of a step's logits before the penalties and the pick.
import { getRuntime } from '../backend/context.js';
import { ShapeError, ValueError, fmtShape } from '../errors.js';
import { compileKernel, packParams } from '../kernels.js';
import { empty, Tensor } from '../tensor.js';
import { tensor } from '../creation.js';
import { checkFloat, contiguousData, elementwiseGroups } from './launch.js';

/**
 * The bias row [V] (f32) of `bias` (token id -> bias added to its logit): 0 for tokens without one.
 * @example
 * const row = logitBiasRow(new Map([[13, -100], [278, 5]]), 32000);
 */
export function logitBiasRow(bias: ReadonlyMap<number, number>, V: number): Tensor {
  if (!(Number.isSafeInteger(V) && V > 0)) throw new ValueError(`logitBiasRow: V should be a positive integer, got ${V}`);
  const row = new Float32Array(V);
  for (const [id, d] of bias) {
    if (!(Number.isInteger(id) && id >= 0 && id < V)) throw new ValueError(`logitBiasRow: token id ${id} is outside [0, ${V})`);
    if (!Number.isFinite(d)) throw new ValueError(`logitBiasRow: the bias of token ${id} should be a finite number, got ${d}`);
    row[id] = d;
  }
  return tensor(row, [V]);
}

/**
 * OpenAI's logit_bias on logits [B, V] (f32 or f16), as vLLM applies it: y[b, v] = x[b, v] + row[v] in f32,
 * `row` [V] from {@link logitBiasRow}. Returns new logits.
 * @example
 * const biased = logitBias(logits, logitBiasRow(new Map([[13, -100]]), V));
 */
export function logitBias(logits: Tensor, row: Tensor): Tensor {
  checkFloat('logitBias', logits);
  if (logits.rank !== 2) throw new ShapeError(`logitBias: logits should be [B, V], got ${fmtShape(logits.shape)}`);
  const [B, V] = logits.shape as [number, number];
  if (row.dtype !== 'f32' || row.rank !== 1 || row.shape[0] !== V) throw new ShapeError(`logitBias: the bias row should be f32 [${V}] (logitBiasRow over the logits' ${V} tokens), got ${row.dtype} ${fmtShape(row.shape)}`);
  const y = empty([B, V], logits.dtype);
  if (y.size === 0) return y;
  const x = contiguousData('logitBias', logits);
  const r = contiguousData('logitBias', row);
  const rt = getRuntime();
  rt.dispatch({
    kernel: compileKernel(rt, 'logit_bias', { T: logits.dtype }),
    params: packParams('logit_bias', { numel: B * V, V }),
    buffers: [x.buffer('logitBias'), r.buffer('logitBias'), y.buffer('logitBias')],
    workgroups: elementwiseGroups(B * V),
    label: 'logitBias',
  });
  if (x !== logits) x.dispose('temporary of logitBias');
  if (r !== row) r.dispose('temporary of logitBias');
  return y;
}
