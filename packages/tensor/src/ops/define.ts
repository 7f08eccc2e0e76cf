// How an op is declared: forward and backward side by side. `defineOp` runs the forward without
// recording, frees the forward's temporaries, and attaches a graph node when an input needs a gradient.
import { isGradEnabled, setGradEnabled } from '../grad-mode.js';
import { startScope } from '../scope.js';
import { Tensor } from '../tensor.js';

/** State shared by an op's forward and backward. */
export interface OpContext {
  /** The op's tensor inputs, in argument order (arrays of tensors flattened). */
  readonly inputs: readonly Tensor[];
  /** Tensors the backward will read. */
  saved: Tensor[];
  /** Whether input `i` needs a gradient (skip computing the others). */
  needsGrad(i: number): boolean;
  /** Non-tensor values the backward needs (shapes, axes, constants). */
  data: Record<string, unknown>;
}

/** An op: forward and backward in one place. A definition without a backward does not compile. */
export interface OpDef<A extends unknown[]> {
  name: string;
  /** Computes the output; calls `ctx.saved.push(...)` for what backward reads. */
  forward(ctx: OpContext, ...args: A): Tensor;
  /** Gradient of each tensor input given the output's gradient; null where none flows. */
  backward(ctx: OpContext, grad: Tensor): (Tensor | null)[];
}

/** A callable op with its definition attached. */
export type Op<A extends unknown[]> = ((...args: A) => Tensor) & { readonly def: OpDef<A> };

/** Whether gradients flow into `t`: a leaf that requires them, or a tensor on a recorded graph. */
export function needsGradient(t: Tensor): boolean {
  return t.requiresGrad || t.node !== null;
}

/** Turns an op definition into a callable that records the graph. */
export function defineOp<A extends unknown[]>(def: OpDef<A>): Op<A> {
  const call = (...args: A): Tensor => {
    const inputs: Tensor[] = [];
    for (const a of args) {
      if (a instanceof Tensor) inputs.push(a);
      else if (Array.isArray(a)) for (const x of a) if (x instanceof Tensor) inputs.push(x);
    }
    const record = isGradEnabled() && inputs.some(needsGradient);
    const needs = inputs.map((t) => record && needsGradient(t));
    const ctx: OpContext = { inputs, saved: [], data: {}, needsGrad: (i) => needs[i] ?? false };
    const previous = setGradEnabled(false);
    const scope = startScope();
    let out: Tensor;
    try {
      out = def.forward(ctx, ...args);
    } catch (e) {
      scope.end();
      throw e;
    } finally {
      setGradEnabled(previous);
    }
    scope.end([out, ...ctx.saved]);
    if (record) {
      out.node = {
        op: def.name,
        inputs,
        saved: ctx.saved,
        backward: (grad) => {
          const s = startScope();
          let grads: (Tensor | null)[];
          try {
            grads = def.backward(ctx, grad);
          } catch (e) {
            s.end();
            throw e;
          }
          return s.end(grads) as (Tensor | null)[];
        },
      };
    }
    return out;
  };
  return Object.assign(call, { def });
}
