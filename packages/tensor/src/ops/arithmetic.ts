// Broadcasting arithmetic: add, sub, mul, div, neg. A number operand is folded into the kernel
// as a constant. Gradients of broadcast operands are summed back to their shapes.
import { ShapeError, ValueError } from '../errors.js';
import { Tensor } from '../tensor.js';
import { defineOp, describeValue, type OpContext } from './define.js';
import { checkFloat, runBinary, runUnary, sumToShape } from './launch.js';

type Operand = Tensor | number;
/** The operands as given, for the backward. */
type Operands = { a: Operand; b: Operand };

/**
 * The forward of a binary op: checks the operands, keeps them for the backward (and the tensors among
 * them in `saved` when `save`), and runs `expr` (WGSL of a and b) or, with a number operand, `withNumber`
 * (of the tensor v and the number c; `numberFirst` when the number is a).
 */
function binaryForward(
  op: string,
  ctx: OpContext<Tensor[], Operands>,
  a: Operand,
  b: Operand,
  exprs: { expr: string; withNumber: string; numberFirst?: string },
  save = false,
): Tensor {
  if (!(a instanceof Tensor) && !(b instanceof Tensor)) throw new ShapeError(`${op}: at least one operand must be a tensor`);
  for (const [i, x] of [a, b].entries()) {
    if (!(x instanceof Tensor) && typeof x !== 'number') throw new ValueError(`${op}: operand ${i} is ${describeValue(x)}; expected a Tensor or a number`);
  }
  for (const x of [a, b]) if (x instanceof Tensor) checkFloat(op, x);
  ctx.data = { a, b };
  if (save) ctx.saved.push(...([a, b].filter((x) => x instanceof Tensor) as Tensor[]));
  if (!(a instanceof Tensor)) return runUnary(op, b as Tensor, exprs.numberFirst ?? exprs.withNumber, a);
  if (!(b instanceof Tensor)) return runUnary(op, a, exprs.withNumber, b);
  return runBinary(op, a, b, exprs.expr);
}

/** Gradients of (a, b) from per-operand gradient functions, for tensor operands only. */
function grads(a: Operand, b: Operand, ga: () => Tensor, gb: () => Tensor, needs: (i: number) => boolean): (Tensor | null)[] {
  const out: (Tensor | null)[] = [];
  let i = 0;
  if (a instanceof Tensor) out.push(needs(i++) ? sumToShape('add', ga(), a.shape) : null);
  if (b instanceof Tensor) out.push(needs(i++) ? sumToShape('add', gb(), b.shape) : null);
  return out;
}

/** a + b with broadcasting. @example add(x, bias) */
export const add = defineOp({
  name: 'add',
  forward(ctx: OpContext<Tensor[], Operands>, a: Operand, b: Operand) {
    return binaryForward('add', ctx, a, b, { expr: 'a + b', withNumber: 'v + c' });
  },
  // d(a+b)/da = 1, d(a+b)/db = 1
  backward(ctx, g) {
    const { a, b } = ctx.data;
    return grads(a, b, () => g, () => g, ctx.needsGrad);
  },
});

/** a - b with broadcasting. */
export const sub = defineOp({
  name: 'sub',
  forward(ctx: OpContext<Tensor[], Operands>, a: Operand, b: Operand) {
    return binaryForward('sub', ctx, a, b, { expr: 'a - b', withNumber: 'v - c', numberFirst: 'c - v' });
  },
  // d(a-b)/da = 1, d(a-b)/db = -1
  backward(ctx, g) {
    const { a, b } = ctx.data;
    return grads(a, b, () => g, () => runUnary('sub', g, '-v'), ctx.needsGrad);
  },
});

/** a * b with broadcasting. */
export const mul = defineOp({
  name: 'mul',
  forward(ctx: OpContext<Tensor[], Operands>, a: Operand, b: Operand) {
    return binaryForward('mul', ctx, a, b, { expr: 'a * b', withNumber: 'v * c' }, true);
  },
  // d(ab)/da = b, d(ab)/db = a
  backward(ctx, g) {
    const { a, b } = ctx.data;
    const times = (x: Operand) => (x instanceof Tensor ? runBinary('mul', g, x, 'a * b') : runUnary('mul', g, 'v * c', x));
    return grads(a, b, () => times(b), () => times(a), ctx.needsGrad);
  },
});

/** a / b with broadcasting. */
export const div = defineOp({
  name: 'div',
  forward(ctx: OpContext<Tensor[], Operands>, a: Operand, b: Operand) {
    return binaryForward('div', ctx, a, b, { expr: 'a / b', withNumber: 'v / c', numberFirst: 'c / v' }, true);
  },
  // d(a/b)/da = 1/b, d(a/b)/db = -a/b^2
  backward(ctx, g) {
    const { a, b } = ctx.data;
    const ga = () => (b instanceof Tensor ? runBinary('div', g, b, 'a / b') : runUnary('div', g, 'v / c', b));
    const gb = () => {
      const bt = b as Tensor;
      const ratio = a instanceof Tensor ? runBinary('div', a, bt, 'a / (b * b)') : runUnary('div', bt, 'c / (v * v)', a);
      return runBinary('div', g, ratio, '-a * b');
    };
    return grads(a, b, ga, gb, ctx.needsGrad);
  },
});

/** -x. */
export const neg = defineOp({
  name: 'neg',
  tensors: ['x'],
  forward(_ctx, x: Tensor) {
    checkFloat('neg', x);
    return runUnary('neg', x, '-v');
  },
  // d(-x)/dx = -1
  backward(_ctx, g) {
    return [runUnary('neg', g, '-v')];
  },
});
