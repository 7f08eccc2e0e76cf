// OpenAI's frequency and presence penalties on the GPU (no gradient): each row's counts of the tokens it
// has generated [B, V] (i32), built from host ids, incremented with the GPU's picks, and applied to logits as vLLM applies them.
import { getRuntime } from '../backend/context.js';
import { DTypeError, ShapeError, ValueError, fmtShape } from '../errors.js';
import { compileKernel, packParams } from '../kernels.js';
import { empty, Tensor } from '../tensor.js';
import { tensor } from '../creation.js';
import { checkFloat, contiguousData, elementwiseGroups } from './launch.js';

function checkCounts(op: string, counts: Tensor, B: number, V: number): void {
  if (counts.dtype !== 'i32') throw new DTypeError(`${op}: counts should be i32 counts from tokenCounts, got ${counts.dtype}`);
  if (counts.rank !== 2 || counts.shape[0] !== B || counts.shape[1] !== V || !counts.isContiguous || counts.offset !== 0) {
    throw new ShapeError(`${op}: counts should be contiguous [${B}, ${V}] (tokenCounts of ${B} rows over ${V} tokens), got ${fmtShape(counts.shape)}`);
  }
}

/**
 * Counts [B, V] (i32) of the tokens in each row: counts[b, v] is how many times v occurs in rows[b]
 * (start from empty rows to count only the generated tokens, as OpenAI's penalties do).
 * @example
 * const counts = tokenCounts([[], []], 32000);
 */
export function tokenCounts(rows: readonly (readonly number[])[], V: number): Tensor {
  if (!(Number.isSafeInteger(V) && V > 0)) throw new ValueError(`tokenCounts: V should be a positive integer, got ${V}`);
  const counts = new Int32Array(rows.length * V);
  rows.forEach((ids, b) => {
    for (const v of ids) {
      if (!(Number.isInteger(v) && v >= 0 && v < V)) throw new ValueError(`tokenCounts: row ${b} has id ${v}, outside [0, ${V})`);
      counts[b * V + v]!++;
    }
  });
  return tensor(counts, [rows.length, V]);
}

/**
 * Adds each row's id in `ids` [B] (i32, in [0, V), e.g. the picks of a decoding step) to its count in
 * `counts` [B, V], in place on the GPU, so that the next step's penalties see it.
 */
export function countTokens(counts: Tensor, ids: Tensor): void {
  if (ids.dtype !== 'i32' || ids.rank !== 1) throw new DTypeError(`countTokens: ids should be i32 [B], got ${ids.dtype} ${fmtShape(ids.shape)}`);
  const B = ids.shape[0]!;
  if (counts.rank !== 2) throw new ShapeError(`countTokens: counts should be [B, V] from tokenCounts, got ${fmtShape(counts.shape)}`);
  const V = counts.shape[1]!;
  checkCounts('countTokens', counts, B, V);
  if (B === 0) return;
  const c = contiguousData('countTokens', ids);
  const rt = getRuntime();
  rt.dispatch({
    kernel: compileKernel(rt, 'token_count'),
    params: packParams('token_count', { B, V }),
    buffers: [c.buffer('countTokens'), counts.buffer('countTokens')],
    workgroups: [Math.ceil(B / 64), 1],
    label: 'countTokens',
  });
  counts.storage('countTokens').bump();
  if (c !== ids) c.dispose('temporary of countTokens');
}

/**
 * OpenAI's frequency and presence penalties on logits [B, V] (f32 or f16), as vLLM applies them: with
 * c = counts[b, v] (see {@link tokenCounts}), the score becomes (score - frequency * c) - presence * (c > 0),
 * in f32 with both penalties rounded to f32. Returns new logits; penalties of 0 return a copy.
 * @example
 * const penalized = frequencyPresencePenalty(logits, counts, 0.5, 0.3);
 */
export function frequencyPresencePenalty(logits: Tensor, counts: Tensor, frequency: number, presence: number): Tensor {
  checkFloat('frequencyPresencePenalty', logits);
  if (logits.rank !== 2) throw new ShapeError(`frequencyPresencePenalty: logits should be [B, V], got ${fmtShape(logits.shape)}`);
  for (const [name, v] of [['frequency', frequency], ['presence', presence]] as const) {
    if (!Number.isFinite(v)) throw new ValueError(`frequencyPresencePenalty: ${name} should be a finite number, got ${v}`);
  }
  const [B, V] = logits.shape as [number, number];
  checkCounts('frequencyPresencePenalty', counts, B, V);
  const y = empty([B, V], logits.dtype);
  if (y.size === 0) return y;
  const x = contiguousData('frequencyPresencePenalty', logits);
  const rt = getRuntime();
  rt.dispatch({
    kernel: compileKernel(rt, 'frequency_presence_penalty', { T: logits.dtype }),
    params: packParams('frequency_presence_penalty', { numel: B * V, frequency, presence }),
    buffers: [x.buffer('frequencyPresencePenalty'), counts.buffer('frequencyPresencePenalty'), y.buffer('frequencyPresencePenalty')],
    workgroups: elementwiseGroups(B * V),
    label: 'frequencyPresencePenalty',
  });
  if (x !== logits) x.dispose('temporary of frequencyPresencePenalty');
  return y;
}
