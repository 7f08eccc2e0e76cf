// Elementwise functions: exp, log, sqrt, rsqrt, pow (number exponent), silu, relu.
import { Tensor } from '../tensor.js';
import { ValueError } from '../errors.js';
import { defineOp, describeValue, type OpContext } from './define.js';
import { checkFloat, runBinary, runUnary } from './launch.js';

/**
 * A differentiable elementwise function y = f(x) of float tensors: `expr` is f of `v` in WGSL, and
 * `grad` the gradient in terms of a (the incoming gradient) and b (x or y, whichever `saves` keeps).
 */
function unaryOp(name: string, expr: string, saves: 'x' | 'y', grad: string) {
  return defineOp({
    name,
    tensors: ['x'],
    forward(ctx, x: Tensor) {
      checkFloat(name, x);
      const y = runUnary(name, x, expr);
      ctx.saved.push(saves === 'x' ? x : y);
      return y;
    },
    backward(ctx, g) {
      return [runBinary(name, g, ctx.saved[0]!, grad)];
    },
  });
}

// d exp(x)/dx = exp(x)
/** e^x. */
export const exp = unaryOp('exp', 'exp(v)', 'y', 'a * b');

// d log(x)/dx = 1/x
/** Natural logarithm. */
export const log = unaryOp('log', 'log(v)', 'x', 'a / b');

// d sqrt(x)/dx = 1 / (2 sqrt(x))
/** Square root. */
export const sqrt = unaryOp('sqrt', 'sqrt(v)', 'y', 'a / (2.0 * b)');

// d x^(-1/2)/dx = -1/2 x^(-3/2) = -1/2 y^3
/** 1 / sqrt(x). */
export const rsqrt = unaryOp('rsqrt', 'inverseSqrt(v)', 'y', '-0.5 * a * b * b * b');

/** x^p in WGSL over v (c = p): torch computes p = 2 as v * v, and 0.5 and -0.5 as sqrt and rsqrt, which differ from IEEE pow at -0 and -inf. */
function powExpr(p: number): string {
  if (p === 2) return 'v * v';
  if (p === 0.5) return 'sqrt(v)';
  if (p === -0.5) return 'inverseSqrt(v)';
  return 'signed_pow(v, c)';
}

/**
 * x^p for a number exponent p, as torch.pow: IEEE pow (negative bases with integer p; 0 to a negative
 * power is infinite), except p = 0.5 and -0.5, which torch computes as sqrt and rsqrt.
 */
export const pow = defineOp({
  name: 'pow',
  tensors: ['x'],
  forward(ctx: OpContext<Tensor[], { p: number }>, x: Tensor, p: number) {
    checkFloat('pow', x);
    if (typeof p !== 'number') throw new ValueError(`pow: p is ${describeValue(p)}; expected a number (tensor exponents are not supported)`);
    ctx.saved.push(x);
    ctx.data = { p };
    return runUnary('pow', x, powExpr(p), p);
  },
  // d x^p/dx = p x^(p-1), with x^(p-1) computed as the forward computes that power (torch's pow_backward);
  // exactly 0 for p = 0 whatever the incoming gradient
  backward(ctx, g) {
    const { p } = ctx.data;
    const x = ctx.saved[0]!;
    if (p === 0) return [runUnary('pow', g, '0.0')];
    const d = runUnary('pow', x, `${fmtFloat(p)} * ${powExpr(p - 1).replace('v * v', '(v * v)')}`, p - 1);
    return [runBinary('pow', g, d, 'a * b')];
  },
});

// d silu(x)/dx = s (1 + x (1 - s)), s = sigmoid(x)
/** x * sigmoid(x) (SiLU, LLaMA's MLP activation). */
export const silu = unaryOp('silu', 'v / (1.0 + exp(-v))', 'x', 'a * (1.0 / (1.0 + exp(-b))) * (1.0 + b * (1.0 - 1.0 / (1.0 + exp(-b))))');

// d relu(x)/dx = 1 where x > 0 (and NaN, as torch), else 0
/** max(x, 0) as torch.relu: negative values become 0; NaN and -0 pass through. */
export const relu = unaryOp('relu', 'relu_of(v)', 'x', 'relu_grad(a, b)');

/** A number as a WGSL f32 literal. */
export function fmtFloat(v: number): string {
  if (Number.isNaN(v)) return 'f32_from_bits(0x7fc00000u)';
  if (!Number.isFinite(v)) return v > 0 ? 'f32_from_bits(0x7f800000u)' : 'f32_from_bits(0xff800000u)';
  const s = String(Math.fround(v));
  return s.includes('.') || s.includes('e') ? s : `${s}.0`;
}
