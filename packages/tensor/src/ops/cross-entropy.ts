// crossEntropy over the last axis of logits with integer targets (PyTorch F.cross_entropy): one
// fused row kernel (max, logsumexp, loss) that never materialises softmax, a GPU-side reduction
// whose count of valid targets stays on the GPU, and one backward kernel from the saved logsumexp.
import { getRuntime } from '../backend/context.js';
import { DTypeError, ShapeError, ValueError, fmtShape, unravelIndex } from '../errors.js';
import { compileKernel, grid1d, packParams } from '../kernels.js';
import { contiguousStrides, empty, Tensor } from '../tensor.js';
import { defineOp, type OpContext } from './define.js';
import { checkFloat, contiguousData, runUnary } from './launch.js';

/** How the per-target losses are combined. */
export type Reduction = 'mean' | 'sum' | 'none';

/** Options of {@link crossEntropy}. */
export interface CrossEntropyOptions {
  /** Targets equal to this contribute no loss and no gradient (default -100, as torch). */
  ignoreIndex?: number;
  /** 'mean' over non-ignored targets (NaN when all are ignored), 'sum', or 'none' (one loss per target). */
  reduction?: Reduction;
}

const MODES: Record<Reduction, number> = { mean: 0, sum: 1, none: 2 };

/**
 * Cross-entropy between logits [N, V] (or [B, T, V], or unbatched [V]) and i32 class targets [N]
 * (or [B, T], or 0-d), as torch.nn.functional.cross_entropy: loss_n = logsumexp(logits[n]) -
 * logits[n, t_n], computed in f32; targets equal to ignoreIndex are skipped. Host-created targets outside [0, V) raise a
 * ValueError; device-resident ones give a NaN loss.
 * @example
 * const loss = crossEntropy(logits, targets); // scalar: mean over non-ignored targets
 */
export const crossEntropy = defineOp({
  name: 'crossEntropy',
  tensors: ['logits', 'targets'],
  forward(ctx: OpContext<[Tensor, Tensor, Tensor, Tensor], { N: number; V: number; ignoreIndex: number; mode: number }>, logits: Tensor, targets: Tensor, options: CrossEntropyOptions = {}) {
    for (const key of Object.keys(options)) {
      if (key !== 'ignoreIndex' && key !== 'reduction') {
        throw new ValueError(`crossEntropy: option ${key} is not supported (torch's weight and label_smoothing are not offered); the options are ignoreIndex, reduction`);
      }
    }
    const ignoreIndex = options.ignoreIndex ?? -100;
    const reduction = options.reduction ?? 'mean';
    logits.storage('crossEntropy');
    targets.storage('crossEntropy');
    checkFloat('crossEntropy', logits);
    if (targets.dtype !== 'i32') {
      throw new DTypeError(`crossEntropy: targets must be i32 class indices, got ${targets.dtype} ${fmtShape(targets.shape)}`);
    }
    if (!(reduction in MODES)) throw new ValueError(`crossEntropy: reduction must be 'mean', 'sum' or 'none', got '${reduction}'`);
    if (!Number.isInteger(ignoreIndex)) throw new ValueError(`crossEntropy: ignoreIndex must be an integer, got ${ignoreIndex}`);
    const lead = logits.shape.slice(0, -1);
    if (logits.rank < 1 || targets.rank !== lead.length || targets.shape.some((d, i) => d !== lead[i])) {
      throw new ShapeError(
        `crossEntropy: logits are ${fmtShape(logits.shape)}, targets ${fmtShape(targets.shape)}; ` +
          'expected logits [N, V] with targets [N] (or [B, T, V] with [B, T], or unbatched [V] with a 0-d target)',
      );
    }
    const V = logits.shape[logits.rank - 1]!;
    const N = targets.size;
    const host = targets.hostIndices();
    if (host) {
      for (let i = 0; i < host.length; i++) {
        const t = host[i]!;
        if (t !== ignoreIndex && (t < 0 || t >= V)) {
          throw new ValueError(
            `crossEntropy: targets${fmtShape(unravelIndex(i, targets.shape))} = ${t} is outside the ${V} classes of logits ` +
              `${fmtShape(logits.shape)}; targets must be in [0, ${V}) or equal ignoreIndex (${ignoreIndex})`,
          );
        }
      }
    }
    const rt = getRuntime();
    const xc = contiguousData('crossEntropy', logits);
    const tc = contiguousData('crossEntropy', targets);
    const loss = empty([N], 'f32');
    const lse = empty([N], 'f32');
    const valid = empty([N], 'f32');
    if (N > 0) {
      rt.dispatch({
        kernel: compileKernel(rt, 'cross_entropy_forward', { T: logits.dtype }),
        params: packParams('cross_entropy_forward', { N, V, ignore_index: ignoreIndex | 0 }),
        buffers: [xc.buffer('crossEntropy'), tc.buffer('crossEntropy'), loss.buffer('crossEntropy'), lse.buffer('crossEntropy'), valid.buffer('crossEntropy')],
        workgroups: grid1d(N, 1),
        label: 'crossEntropy',
      });
    }
    let out: Tensor;
    let count: Tensor;
    if (reduction === 'none') {
      const perTarget = runUnary('crossEntropy', loss, 'v', 0, logits.dtype);
      out = perTarget.view([...targets.shape], contiguousStrides(targets.shape), 0);
      count = lse;
    } else {
      const scalar = empty([1], logits.dtype);
      count = empty([1], 'f32');
      rt.dispatch({
        kernel: compileKernel(rt, 'cross_entropy_reduce', { T: logits.dtype }),
        params: packParams('cross_entropy_reduce', { N, mean: reduction === 'mean' ? 1 : 0 }),
        buffers: [loss.buffer('crossEntropy'), valid.buffer('crossEntropy'), scalar.buffer('crossEntropy'), count.buffer('crossEntropy')],
        workgroups: [1],
        label: 'crossEntropy reduce',
      });
      out = scalar.view([], [], 0);
    }
    ctx.saved = [xc, tc, lse, count];
    ctx.data = { N, V, ignoreIndex, mode: MODES[reduction] };
    return out;
  },
  // dlogits[n, v] = (softmax(logits[n])[v] - [v == t_n]) * g_n (g / count for 'mean'), 0 rows where ignored
  backward(ctx, g) {
    const [xc, tc, lse, count] = ctx.saved;
    const { N, V, ignoreIndex, mode } = ctx.data;
    const gc = contiguousData('crossEntropy backward', g);
    const dx = empty(xc.shape, xc.dtype);
    if (dx.size > 0) {
      const rt = getRuntime();
      rt.dispatch({
        kernel: compileKernel(rt, 'cross_entropy_backward', { T: xc.dtype }),
        params: packParams('cross_entropy_backward', { N, V, ignore_index: ignoreIndex | 0, mode }),
        buffers: [
          xc.buffer('crossEntropy'),
          tc.buffer('crossEntropy'),
          lse.buffer('crossEntropy'),
          gc.buffer('crossEntropy'),
          count.buffer('crossEntropy'),
          dx.buffer('crossEntropy'),
        ],
        workgroups: grid1d(dx.size, 256),
        label: 'crossEntropy backward',
      });
    }
    return [dx, null];
  },
});
