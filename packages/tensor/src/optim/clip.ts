// Gradient clipping by the global L2 norm (torch.nn.utils.clip_grad_norm_), entirely on the GPU:
// partial sums of squares per gradient, one workgroup for the norm and the coefficient, then an
// in-place scale of each gradient. Nothing is read back.
import { getRuntime } from '../backend/context.js';
import { DTypeError, ValueError } from '../errors.js';
import { compileKernel, packParams } from '../kernels.js';
import { elementwiseGroups, runFill } from '../ops/launch.js';
import { empty, Tensor } from '../tensor.js';

/** Workgroups per gradient for the sums of squares (each strides over its share). */
const MAX_GROUPS = 256;

/**
 * Scales every gradient by min(1, maxNorm / (norm + 1e-6)) where norm is the L2 norm of all the
 * gradients together; parameters without a gradient are skipped. Returns the norm as a 0-d tensor
 * (read it with `await norm.item()` when needed; the clipping itself never waits for the GPU). As
 * torch's default (error_if_nonfinite=False), an infinite norm scales every gradient by 0 (inf and
 * NaN entries become NaN) and a NaN norm makes every gradient NaN. `params` may be one tensor.
 * @example
 * const norm = clipGradNorm(model.parameters(), 1.0);
 */
export function clipGradNorm(params: readonly Tensor[] | Tensor, maxNorm: number): Tensor {
  if (!(maxNorm >= 0)) throw new ValueError(`clipGradNorm: maxNorm must be a number >= 0, got ${maxNorm}`);
  const list = params instanceof Tensor ? [params] : params;
  if (!Array.isArray(list)) throw new ValueError('clipGradNorm: params must be a Tensor or an array of Tensors');
  const grads: Tensor[] = [];
  list.forEach((p, i) => {
    if (!(p instanceof Tensor)) throw new ValueError(`clipGradNorm: parameter ${i} is not a Tensor`);
    const g = p.grad;
    if (!g || g.size === 0) return;
    if (g.dtype !== 'f32' && g.dtype !== 'f16') throw new DTypeError(`clipGradNorm: the gradient of parameter ${i} is ${g.dtype}; expected f32 or f16`);
    if (!g.isContiguous) throw new ValueError(`clipGradNorm: the gradient of parameter ${i} is a strided view; gradients from backward() are contiguous`);
    grads.push(g);
  });
  if (grads.length === 0) return runFill([], 'f32', 0, null);
  const rt = getRuntime();
  const groups = grads.map((g) => Math.min(MAX_GROUPS, Math.ceil(g.size / 256)));
  const partial = empty([groups.reduce((a, b) => a + b, 0)], 'f32');
  let base = 0;
  grads.forEach((g, k) => {
    const kernel = compileKernel(rt, 'clip_sumsq', { T: g.dtype });
    const params = packParams('clip_sumsq', { numel: g.size, offset: g.offset, base });
    rt.dispatch({ kernel, params, buffers: [g.buffer('clipGradNorm'), partial.buffer('clipGradNorm')], workgroups: [groups[k]!], label: 'clip_sumsq' });
    base += groups[k]!;
  });
  const out = empty([2], 'f32'); // [norm, coefficient]
  const normParams = packParams('clip_norm', { count: partial.size, max_norm: maxNorm });
  rt.dispatch({
    kernel: compileKernel(rt, 'clip_norm'),
    params: normParams,
    buffers: [partial.buffer('clipGradNorm'), out.buffer('clipGradNorm')],
    workgroups: [1],
    label: 'clip_norm',
  });
  partial.dispose('temporary of clipGradNorm');
  for (const g of grads) {
    const kernel = compileKernel(rt, 'clip_scale', { T: g.dtype });
    const params = packParams('clip_scale', { numel: g.size, offset: g.offset });
    g.storage('clipGradNorm').bump();
    rt.dispatch({ kernel, params, buffers: [g.buffer('clipGradNorm'), out.buffer('clipGradNorm')], workgroups: elementwiseGroups(g.size), label: 'clip_scale' });
  }
  const norm = out.view([], [], 0);
  out.dispose('clipGradNorm returns its norm as a 0-d view');
  return norm;
}
