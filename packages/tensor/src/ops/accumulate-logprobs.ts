// The running sums of decoding's picked log-probabilities (vLLM's cumulative_logprob, which best_of ranks by),
// updated in place by one dispatch a step, with each row's sum before its latest term.
import { getRuntime } from '../backend/context.js';
import { DTypeError, ShapeError, ValueError, fmtShape } from '../errors.js';
import { compileKernel, packParams } from '../kernels.js';
import type { Tensor } from '../tensor.js';
import { contiguousData } from './launch.js';

/**
 * Adds a step's log-probabilities `logprobs` [B] to the rows of `total` [B] that `active` [B] marks (nonzero),
 * in place on the GPU, first copying those rows' sums into `before` [B]: before[b] = active[b] ? total[b] :
 * before[b]; total[b] += active[b] ? logprobs[b] : 0. All f32; `total` and `before` contiguous. One dispatch,
 * so a recorded decoding step replays it with `active` as an input.
 * @example
 * accumulateLogprobs(total, before, picked.logprobs, input('active', tensor(active, [B])));
 */
export function accumulateLogprobs(total: Tensor, before: Tensor, logprobs: Tensor, active: Tensor): void {
  const named = { total, before, logprobs, active };
  const B = total.shape[0] ?? 0;
  for (const [name, t] of Object.entries(named)) {
    if (t.dtype !== 'f32') throw new DTypeError(`accumulateLogprobs: ${name} should be f32, got ${t.dtype}`);
    if (t.rank !== 1 || t.shape[0] !== B) {
      throw new ShapeError(`accumulateLogprobs: total is ${fmtShape(total.shape)}, ${name} is ${fmtShape(t.shape)}; each should be [B], one value a row`);
    }
  }
  for (const [name, t] of [['total', total], ['before', before]] as const) {
    if (!t.isContiguous || t.offset !== 0) throw new ShapeError(`accumulateLogprobs: ${name} is written in place and should be a whole contiguous tensor, got a view; pass the tensor itself`);
  }
  const written = [total.buffer('accumulateLogprobs'), before.buffer('accumulateLogprobs')];
  if (written[0] === written[1] || [logprobs, active].some((t) => written.includes(t.buffer('accumulateLogprobs')))) {
    throw new ValueError('accumulateLogprobs: total and before are written in place and should share storage with no other argument; give each its own tensor');
  }
  if (B === 0) return;
  const lp = contiguousData('accumulateLogprobs', logprobs);
  const on = contiguousData('accumulateLogprobs', active);
  const rt = getRuntime();
  rt.dispatch({
    kernel: compileKernel(rt, 'accumulate_logprobs'),
    params: packParams('accumulate_logprobs', { B }),
    buffers: [lp.buffer('accumulateLogprobs'), on.buffer('accumulateLogprobs'), total.buffer('accumulateLogprobs'), before.buffer('accumulateLogprobs')],
    workgroups: [Math.ceil(B / 64), 1],
    label: 'accumulateLogprobs',
  });
  total.storage('accumulateLogprobs').bump();
  before.storage('accumulateLogprobs').bump();
  if (lp !== logprobs) lp.dispose('temporary of accumulateLogprobs');
  if (on !== active) on.dispose('temporary of accumulateLogprobs');
}
