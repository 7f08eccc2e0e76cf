// The repetition penalty on the GPU (no gradient): each row's seen tokens as a bit mask [B, ceil(V / 32)]
// (u32), built from host ids, marked with the GPU's picks, and applied to logits as HF's processor.
import { getRuntime } from '../backend/context.js';
import { DTypeError, ShapeError, ValueError, fmtShape } from '../errors.js';
import { compileKernel, packParams } from '../kernels.js';
import { empty, Tensor } from '../tensor.js';
import { tensor } from '../creation.js';
import { checkFloat, contiguousData, elementwiseGroups } from './launch.js';

/** Words of a row's mask over V tokens. */
function words(V: number): number {
  return Math.ceil(V / 32);
}

function checkMask(op: string, seen: Tensor, B: number, V: number): void {
  if (seen.dtype !== 'u32') throw new DTypeError(`${op}: seen should be a u32 mask from seenMask, got ${seen.dtype}`);
  if (seen.rank !== 2 || seen.shape[0] !== B || seen.shape[1] !== words(V) || !seen.isContiguous || seen.offset !== 0) {
    throw new ShapeError(`${op}: seen should be a contiguous [${B}, ${words(V)}] mask (seenMask of ${B} rows over ${V} tokens), got ${fmtShape(seen.shape)}`);
  }
}

/**
 * A mask [B, ceil(V / 32)] (u32) of the tokens each row has seen: bit v % 32 of word v / 32 of row b is
 * set for each id v in rows[b].
 * @example
 * const seen = seenMask([[1, 450, 4996]], 32000);
 */
export function seenMask(rows: readonly (readonly number[])[], V: number): Tensor {
  if (!(Number.isSafeInteger(V) && V > 0)) throw new ValueError(`seenMask: V should be a positive integer, got ${V}`);
  const W = words(V);
  const bits = new Uint32Array(rows.length * W);
  rows.forEach((ids, b) => {
    for (const v of ids) {
      if (!(Number.isInteger(v) && v >= 0 && v < V)) throw new ValueError(`seenMask: row ${b} has id ${v}, outside [0, ${V})`);
      bits[b * W + (v >>> 5)]! |= 1 << (v & 31);
    }
  });
  return tensor(bits, [rows.length, W]);
}

/**
 * Marks each row's id in `ids` [B] (i32, in [0, V), e.g. the picks of a decoding step) in `seen`, in
 * place on the GPU, so that the next step's penalty sees it.
 */
export function markSeen(seen: Tensor, ids: Tensor, V: number): void {
  if (ids.dtype !== 'i32' || ids.rank !== 1) throw new DTypeError(`markSeen: ids should be i32 [B], got ${ids.dtype} ${fmtShape(ids.shape)}`);
  const B = ids.shape[0]!;
  checkMask('markSeen', seen, B, V);
  if (B === 0) return;
  const c = contiguousData('markSeen', ids);
  const rt = getRuntime();
  rt.dispatch({
    kernel: compileKernel(rt, 'seen_mark'),
    params: packParams('seen_mark', { B, W: words(V) }),
    buffers: [c.buffer('markSeen'), seen.buffer('markSeen')],
    workgroups: [Math.ceil(B / 64), 1],
    label: 'markSeen',
  });
  seen.storage('markSeen').bump();
  if (c !== ids) c.dispose('temporary of markSeen');
}

/**
 * HF's RepetitionPenaltyLogitsProcessor on logits [B, V] (f32 or f16): the score of every token marked in
 * row b of `seen` (see {@link seenMask}) becomes score < 0 ? score * penalty : score / penalty, in f32.
 * Returns new logits (the penalty rounded to f32, as torch scales an f32 tensor by a Python float); penalty 1 returns a copy.
 * @example
 * const penalized = repetitionPenalty(logits, seen, 1.3);
 */
export function repetitionPenalty(logits: Tensor, seen: Tensor, penalty: number): Tensor {
  checkFloat('repetitionPenalty', logits);
  if (logits.rank !== 2) throw new ShapeError(`repetitionPenalty: logits should be [B, V], got ${fmtShape(logits.shape)}`);
  if (!(penalty > 0 && Number.isFinite(penalty))) throw new ValueError(`repetitionPenalty: penalty should be a finite number above 0, got ${penalty}`);
  const [B, V] = logits.shape as [number, number];
  checkMask('repetitionPenalty', seen, B, V);
  const y = empty([B, V], logits.dtype);
  if (y.size === 0) return y;
  const x = contiguousData('repetitionPenalty', logits);
  const rt = getRuntime();
  rt.dispatch({
    kernel: compileKernel(rt, 'repetition_penalty', { T: logits.dtype }),
    params: packParams('repetition_penalty', { numel: B * V, V, W: words(V), penalty }),
    buffers: [x.buffer('repetitionPenalty'), seen.buffer('repetitionPenalty'), y.buffer('repetitionPenalty')],
    workgroups: elementwiseGroups(B * V),
    label: 'repetitionPenalty',
  });
  if (x !== logits) x.dispose('temporary of repetitionPenalty');
  return y;
}
