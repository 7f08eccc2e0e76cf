// where(cond, a, b), maskedFill, and dtype casts.
import { DTypeError, ValueError, fmtShape } from '../errors.js';
import { hasF16 } from '../backend/context.js';
import { packParams } from '../kernels.js';
import { checkDTypeName, empty, Tensor, type DType } from '../tensor.js';
import { checkTensorArg, defineOp, describeValue, type OpContext } from './define.js';
import { broadcastShapes, broadcastStrides, checkSameDType, isFloat, runFill, runStrided, runUnary, sumToShape } from './launch.js';

function runWhere(op: string, cond: Tensor, a: Tensor, b: Tensor): Tensor {
  checkSameDType(op, a, b);
  const outShape = broadcastShapes(op, cond.shape, broadcastShapes(op, a.shape, b.shape));
  const out = empty(outShape, a.dtype);
  const views = [cond, a, b].map((t) => broadcastStrides(t, outShape));
  const buffers = () => [cond.buffer(op), a.buffer(op), b.buffer(op), out.buffer(op)];
  runStrided(op, 'where', { T: a.dtype, TC: cond.dtype }, outShape, views, buffers, (numel, s, [cs, as, bs]) =>
    packParams('where', { numel, rank: s.length, shape: s, c_offset: cond.offset, a_offset: a.offset, b_offset: b.offset, c_strides: cs!, a_strides: as!, b_strides: bs! }),
  );
  return out;
}

const whereOp = defineOp({
  name: 'where',
  tensors: ['cond', 'a', 'b'],
  forward(ctx: OpContext<[Tensor], { aShape: readonly number[]; bShape: readonly number[] }>, cond: Tensor, a: Tensor, b: Tensor) {
    ctx.saved = [cond];
    ctx.data = { aShape: a.shape, bShape: b.shape };
    return runWhere('where', cond, a, b);
  },
  // d/da = [cond], d/db = [!cond]; no gradient to the condition
  backward(ctx, g) {
    const [cond] = ctx.saved;
    const { aShape, bShape } = ctx.data;
    const zero = runFill([], g.dtype, 0, null);
    return [
      null,
      ctx.needsGrad(1) ? sumToShape('where', runWhere('where', cond, g, zero), aShape) : null,
      ctx.needsGrad(2) ? sumToShape('where', runWhere('where', cond, zero, g), bShape) : null,
    ];
  },
});

/**
 * Elementwise `cond ? a : b` with broadcasting, as torch.where: cond may be u32, i32 or a float mask
 * (nonzero and NaN are true); a and b are tensors of one dtype, or numbers taken in the other
 * operand's dtype (f32 when both are numbers). The gradient is exactly 0 where a branch is not chosen,
 * whatever that branch holds.
 * @example
 * const y = where(mask, x, 0); // x where mask is set, else 0
 */
export function where(cond: Tensor, a: Tensor | number, b: Tensor | number): Tensor {
  checkTensorArg('where', 'cond', cond);
  for (const [name, v] of [['a', a], ['b', b]] as const) {
    if (!(v instanceof Tensor) && typeof v !== 'number') throw new ValueError(`where: ${name} is ${describeValue(v)}; expected a Tensor or a number`);
  }
  const dtype = a instanceof Tensor ? a.dtype : b instanceof Tensor ? b.dtype : 'f32';
  const ta = a instanceof Tensor ? a : runFill([], dtype, a, null);
  const tb = b instanceof Tensor ? b : runFill([], dtype, b, null);
  const out = whereOp(cond, ta, tb);
  if (ta !== a) ta.dispose('temporary of where');
  if (tb !== b) tb.dispose('temporary of where');
  return out;
}

/** `x` with `value` wherever `mask` is non-zero (mask broadcasts against x). */
export function maskedFill(x: Tensor, mask: Tensor, value: number): Tensor {
  checkTensorArg('maskedFill', 'x', x);
  checkTensorArg('maskedFill', 'mask', mask);
  if (typeof value !== 'number') throw new ValueError(`maskedFill: value is ${typeof value}; expected a number`);
  return where(mask, value, x);
}

/**
 * Converts to another dtype (a copy): f32 <-> f16 rounding to nearest even (beyond f16's range to
 * infinity), floats to integers by truncation toward zero. As torch on x86, NaN, infinities and
 * values outside i32's range cast to i32 give -2^31; cast to u32 they saturate (torch has no u32).
 */
export const cast = defineOp({
  name: 'cast',
  tensors: ['x'],
  forward(ctx: OpContext<[], { from: DType }>, x: Tensor, dtype: DType) {
    checkDTypeName('cast', dtype);
    if ((dtype === 'f16' || x.dtype === 'f16') && !hasF16()) {
      throw new DTypeError(`cast: ${x.dtype} ${fmtShape(x.shape)} to ${dtype} needs shader-f16, which this adapter lacks; stay in f32`);
    }
    ctx.data = { from: x.dtype };
    if (dtype === x.dtype) return runUnary('cast', x, 'v');
    const expr = !isFloat(x.dtype) || isFloat(dtype) ? 'v' : dtype === 'i32' ? 'trunc_i32(v)' : 'trunc(v)';
    return runUnary('cast', x, expr, 0, dtype);
  },
  // the gradient is cast back to the input's dtype (none flows to integers)
  backward(ctx, g) {
    const { from } = ctx.data;
    return [isFloat(from) ? runUnary('cast', g, 'v', 0, from) : null];
  },
});
