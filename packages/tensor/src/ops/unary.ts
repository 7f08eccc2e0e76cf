// Elementwise functions: exp, log, sqrt, rsqrt, pow (number exponent), silu, relu.
import { Tensor } from '../tensor.js';
import { defineOp, type OpContext } from './define.js';
import { checkFloat, runBinary, runUnary } from './launch.js';

/** e^x. */
export const exp = defineOp({
  name: 'exp',
  forward(ctx, x: Tensor) {
    checkFloat('exp', x);
    const y = runUnary('exp', x, 'exp(v)');
    ctx.saved.push(y);
    return y;
  },
  // d exp(x)/dx = exp(x)
  backward(ctx, g) {
    return [runBinary('exp', g, ctx.saved[0]!, 'a * b')];
  },
});

/** Natural logarithm. */
export const log = defineOp({
  name: 'log',
  forward(ctx, x: Tensor) {
    checkFloat('log', x);
    ctx.saved.push(x);
    return runUnary('log', x, 'log(v)');
  },
  // d log(x)/dx = 1/x
  backward(ctx, g) {
    return [runBinary('log', g, ctx.saved[0]!, 'a / b')];
  },
});

/** Square root. */
export const sqrt = defineOp({
  name: 'sqrt',
  forward(ctx, x: Tensor) {
    checkFloat('sqrt', x);
    const y = runUnary('sqrt', x, 'sqrt(v)');
    ctx.saved.push(y);
    return y;
  },
  // d sqrt(x)/dx = 1 / (2 sqrt(x))
  backward(ctx, g) {
    return [runBinary('sqrt', g, ctx.saved[0]!, 'a / (2.0 * b)')];
  },
});

/** 1 / sqrt(x). */
export const rsqrt = defineOp({
  name: 'rsqrt',
  forward(ctx, x: Tensor) {
    checkFloat('rsqrt', x);
    const y = runUnary('rsqrt', x, 'inverseSqrt(v)');
    ctx.saved.push(y);
    return y;
  },
  // d x^(-1/2)/dx = -1/2 x^(-3/2) = -1/2 y^3
  backward(ctx, g) {
    return [runBinary('rsqrt', g, ctx.saved[0]!, '-0.5 * a * b * b * b')];
  },
});

/** x^p for a number exponent p (negative bases allowed with integer p). */
export const pow = defineOp({
  name: 'pow',
  forward(ctx: OpContext<Tensor[], { p: number }>, x: Tensor, p: number) {
    checkFloat('pow', x);
    ctx.saved.push(x);
    ctx.data = { p };
    if (p === 2) return runUnary('pow', x, 'v * v');
    return runUnary('pow', x, 'signed_pow(v, c)', p);
  },
  // d x^p/dx = p x^(p-1)
  backward(ctx, g) {
    const { p } = ctx.data;
    const x = ctx.saved[0]!;
    if (p === 0) return [runUnary('pow', g, '0.0 * v')];
    const d = p === 2 ? runUnary('pow', x, '2.0 * v') : runUnary('pow', x, `${fmtFloat(p)} * signed_pow(v, c)`, p - 1);
    return [runBinary('pow', g, d, 'a * b')];
  },
});

/** x * sigmoid(x) (SiLU, LLaMA's MLP activation). */
export const silu = defineOp({
  name: 'silu',
  forward(ctx, x: Tensor) {
    checkFloat('silu', x);
    ctx.saved.push(x);
    return runUnary('silu', x, 'v / (1.0 + exp(-v))');
  },
  // d silu(x)/dx = s (1 + x (1 - s)), s = sigmoid(x)
  backward(ctx, g) {
    return [runBinary('silu', ctx.saved[0]!, g, 'b * (1.0 / (1.0 + exp(-a))) * (1.0 + a * (1.0 - 1.0 / (1.0 + exp(-a))))')];
  },
});

/** max(x, 0). */
export const relu = defineOp({
  name: 'relu',
  forward(ctx, x: Tensor) {
    checkFloat('relu', x);
    ctx.saved.push(x);
    return runUnary('relu', x, 'max(v, 0.0)');
  },
  // d relu(x)/dx = 1 where x > 0, else 0
  backward(ctx, g) {
    return [runBinary('relu', ctx.saved[0]!, g, 'select(0.0, b, a > 0.0)')];
  },
});

/** A number as a WGSL f32 literal. */
export function fmtFloat(v: number): string {
  if (Number.isNaN(v)) return 'f32_from_bits(0x7fc00000u)';
  if (!Number.isFinite(v)) return v > 0 ? 'f32_from_bits(0x7f800000u)' : 'f32_from_bits(0xff800000u)';
  const s = String(Math.fround(v));
  return s.includes('.') || s.includes('e') ? s : `${s}.0`;
}
