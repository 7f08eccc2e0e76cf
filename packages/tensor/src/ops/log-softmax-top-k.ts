// The log-probabilities of chosen tokens and of each row's most likely ones, computed on the GPU from
// logits and read back as k + 1 (log-probability, id) pairs a row instead of the whole vocabulary.
import { getRuntime } from '../backend/context.js';
import { DTypeError, ShapeError, ValueError, fmtShape } from '../errors.js';
import { compileKernel, grid1d, packParams } from '../kernels.js';
import type { RowLogprobs } from '../reference/log-softmax-top-k.js';
import { empty, Tensor } from '../tensor.js';
import { checkFloat, contiguousData } from './launch.js';

/**
 * Log-softmax of each row of `logits` [R, V] (f32 or f16; computed in f32) at `targets` [R] (i32, e.g. the
 * tokens a step picked, or each prompt position's next token) and at the row's `k` largest entries, packed
 * as [R, k + 1, 2] u32: entry 0 is (f32 bits of the target's log-probability, target id), entries 1..k the k
 * most likely tokens in descending order (ties: lower id first). Read it back and unpack it with
 * {@link unpackLogprobs}. No gradient.
 * @example
 * const packed = logSoftmaxTopK(logits, picks, 5);
 * const rows = unpackLogprobs((await packed.toArray()) as Uint32Array, 5);
 */
export function logSoftmaxTopK(logits: Tensor, targets: Tensor, k: number): Tensor {
  checkFloat('logSoftmaxTopK', logits);
  if (logits.rank !== 2 || logits.shape[1] === 0) throw new ShapeError(`logSoftmaxTopK: logits should be [R, V] with V >= 1, got ${fmtShape(logits.shape)}`);
  const [R, V] = logits.shape as [number, number];
  if (targets.dtype !== 'i32') throw new DTypeError(`logSoftmaxTopK: targets should be i32 token ids, got ${targets.dtype}`);
  if (targets.rank !== 1 || targets.shape[0] !== R) throw new ShapeError(`logSoftmaxTopK: targets should be [${R}] (one per row of logits ${fmtShape(logits.shape)}), got ${fmtShape(targets.shape)}`);
  if (!Number.isSafeInteger(k) || k < 0 || k > V) throw new ValueError(`logSoftmaxTopK: k should be an integer in [0, ${V}] (the vocabulary), got ${k}`);
  const out = empty([R, k + 1, 2], 'u32');
  if (R === 0) return out;
  const x = contiguousData('logSoftmaxTopK', logits);
  const t = contiguousData('logSoftmaxTopK', targets);
  const rt = getRuntime();
  rt.dispatch({
    kernel: compileKernel(rt, 'log_softmax_top_k', { T: logits.dtype }),
    params: packParams('log_softmax_top_k', { rows: R, C: V, K: k }),
    buffers: [x.buffer('logSoftmaxTopK'), t.buffer('logSoftmaxTopK'), out.buffer('logSoftmaxTopK')],
    workgroups: grid1d(R, 1),
    label: 'logSoftmaxTopK',
  });
  if (x !== logits) x.dispose('temporary of logSoftmaxTopK');
  if (t !== targets) t.dispose('temporary of logSoftmaxTopK');
  return out;
}

/** The rows of a {@link logSoftmaxTopK} result read back (its `k + 1` pairs a row): each target and its top k. */
export function unpackLogprobs(packed: Uint32Array, k: number): RowLogprobs[] {
  const values = new Float32Array(packed.buffer, packed.byteOffset, packed.length);
  const ids = new Int32Array(packed.buffer, packed.byteOffset, packed.length);
  const stride = 2 * (k + 1);
  if (packed.length % stride !== 0) throw new ShapeError(`unpackLogprobs: ${packed.length} words are not rows of ${k + 1} pairs; pass the k the result was made with`);
  return Array.from({ length: packed.length / stride }, (_, r) => {
    const o = r * stride;
    return {
      id: ids[o + 1]!,
      logprob: values[o]!,
      top: Array.from({ length: k }, (_, j) => ({ id: ids[o + 2 * (j + 1) + 1]!, logprob: values[o + 2 * (j + 1)]! })),
    };
  });
}
