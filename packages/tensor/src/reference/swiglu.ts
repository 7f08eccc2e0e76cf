// CPU reference of swiglu(gate, up) = silu(gate) * up, forward and backward, in float64.
import { refZeros, type RefTensor } from './ref-tensor.js';

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

/** y = gate * sigmoid(gate) * up elementwise (same shapes). */
export function refSwiglu(gate: RefTensor, up: RefTensor): RefTensor {
  const y = refZeros(gate.shape);
  for (let i = 0; i < y.data.length; i++) {
    const a = gate.data[i]!;
    y.data[i] = a * sigmoid(a) * up.data[i]!;
  }
  return y;
}

/**
 * Gradients of swiglu given dy. silu(a) = a s with s = sigmoid(a), so d silu/da = s + a s (1 - s):
 * d gate = dy * up * (s + a s (1 - s)), d up = dy * a s.
 */
export function refSwigluBackward(gate: RefTensor, up: RefTensor, dy: RefTensor): { dGate: RefTensor; dUp: RefTensor } {
  const dGate = refZeros(gate.shape);
  const dUp = refZeros(up.shape);
  for (let i = 0; i < dy.data.length; i++) {
    const a = gate.data[i]!;
    const s = sigmoid(a);
    dGate.data[i] = dy.data[i]! * up.data[i]! * (s + a * s * (1 - s));
    dUp.data[i] = dy.data[i]! * a * s;
  }
  return { dGate, dUp };
}
