// swiglu(gate, up) = silu(gate) * up, LLaMA's MLP gate, fused: one forward kernel and one backward
// kernel for both gradients, instead of silu, mul and their three backward passes.
import { getRuntime } from '../backend/context.js';
import { ShapeError, fmtShape } from '../errors.js';
import { compileKernel, packParams } from '../kernels.js';
import { empty, Tensor } from '../tensor.js';
import { defineOp, type OpContext } from './define.js';
import { checkFloat, checkSameDType, contiguousData, elementwiseGroups } from './launch.js';

/**
 * silu(gate) * up = gate * sigmoid(gate) * up elementwise, in f32 math, stored in the inputs' dtype.
 * gate and up must have the same shape and dtype (f32 or f16); any strides.
 * @example
 * const inner = swiglu(gateProj.forward(h), upProj.forward(h)); // [B, T, I]
 */
export const swiglu = defineOp({
  name: 'swiglu',
  tensors: ['gate', 'up'],
  forward(ctx: OpContext<[Tensor, Tensor]>, gate: Tensor, up: Tensor) {
    checkFloat('swiglu', gate, up);
    checkSameDType('swiglu', gate, up);
    if (gate.rank !== up.rank || gate.shape.some((d, i) => d !== up.shape[i])) {
      throw new ShapeError(`swiglu: gate is ${fmtShape(gate.shape)}, up is ${fmtShape(up.shape)}; they must have the same shape`);
    }
    const gc = contiguousData('swiglu', gate);
    const uc = contiguousData('swiglu', up);
    const y = empty(gate.shape, gate.dtype);
    if (y.size > 0) {
      const rt = getRuntime();
      rt.dispatch({
        kernel: compileKernel(rt, 'swiglu_forward', { T: gate.dtype }),
        params: packParams('swiglu_forward', { numel: y.size }),
        buffers: [gc.buffer('swiglu'), uc.buffer('swiglu'), y.buffer('swiglu')],
        workgroups: elementwiseGroups(y.size),
        label: 'swiglu',
      });
    }
    ctx.saved = [gc, uc];
    return y;
  },
  // With s = sigmoid(gate): d gate = g * up * s * (1 + gate * (1 - s)) (= g * up * silu'(gate)),
  // d up = g * gate * s (= g * silu(gate)); one kernel writes both.
  backward(ctx, g) {
    const [gate, up] = ctx.saved;
    const dy = contiguousData('swiglu backward', g);
    const dGate = empty(gate.shape, gate.dtype);
    const dUp = empty(up.shape, up.dtype);
    if (gate.size > 0) {
      const rt = getRuntime();
      rt.dispatch({
        kernel: compileKernel(rt, 'swiglu_backward', { T: gate.dtype }),
        params: packParams('swiglu_backward', { numel: gate.size }),
        buffers: [gate.buffer('swiglu'), up.buffer('swiglu'), dy.buffer('swiglu'), dGate.buffer('swiglu'), dUp.buffer('swiglu')],
        workgroups: elementwiseGroups(gate.size),
        label: 'swiglu backward',
      });
    }
    return [ctx.needsGrad(0) ? dGate : null, ctx.needsGrad(1) ? dUp : null];
  },
});
