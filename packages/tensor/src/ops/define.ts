// How an op is declared: forward and backward side by side. `defineOp` runs the forward without
// recording, frees the forward's temporaries, and attaches a graph node when an input needs a gradient.
import { ValueError } from '../errors.js';
import { isGradEnabled, setGradEnabled } from '../grad-mode.js';
import { startOpScope, startScope } from '../scope.js';
import { sumVersions, Tensor } from '../tensor.js';

/**
 * State shared by an op's forward and backward: `S` types the tensors the forward saves, `D` the other
 * values it records, so the backward reads both without casts.
 */
export interface OpContext<S extends readonly Tensor[] = Tensor[], D extends object = Record<string, unknown>> {
  /** The op's tensor inputs, in argument order (arrays of tensors flattened). */
  readonly inputs: readonly Tensor[];
  /** Tensors the backward will read: the forward assigns them (`ctx.saved = [x, w]`), or pushes onto the default list. */
  saved: S;
  /** Whether input `i` needs a gradient (skip computing the others). */
  needsGrad(i: number): boolean;
  /** Non-tensor values the backward needs (shapes, axes, constants); the forward assigns them. */
  data: D;
}

/**
 * An op: forward and backward in one place. A definition without a backward does not compile.
 * Annotating the forward's `ctx` (`OpContext<[Tensor, Tensor], { eps: number }>`) types the backward's.
 */
export interface OpDef<A extends unknown[], S extends readonly Tensor[] = Tensor[], D extends object = Record<string, unknown>> {
  name: string;
  /**
   * Names of the leading arguments that must be tensors, checked before the forward runs so a wrong
   * value from JavaScript gets a ValueError naming the op and the argument: `'xs[]'` is an array of
   * tensors, `'mask?'` may also be null or undefined.
   */
  tensors?: readonly string[];
  /** Computes the output; sets `ctx.saved` and `ctx.data` to what backward reads. */
  forward(ctx: OpContext<S, D>, ...args: A): Tensor;
  /** Gradient of each tensor input given the output's gradient; null where none flows. */
  backward(ctx: OpContext<S, D>, grad: Tensor): (Tensor | null)[];
}

/** A callable op with its definition attached. */
export type Op<A extends unknown[], S extends readonly Tensor[] = Tensor[], D extends object = Record<string, unknown>> = ((...args: A) => Tensor) & {
  readonly def: OpDef<A, S, D>;
};

/** Whether gradients flow into `t`: a leaf that requires them, or a tensor on a recorded graph. */
export function needsGradient(t: Tensor): boolean {
  return t.requiresGrad || t.node !== null;
}

/**
 * A fresh context for an op's forward, which fills its `saved` and `data`; for fused ops that run
 * another op's forward and backward directly on part of their input.
 * @example const ctx: Parameters<typeof crossEntropy.def.forward>[0] = opContext([logits, t], () => true);
 */
export function opContext<S extends readonly Tensor[] = Tensor[], D extends object = Record<string, unknown>>(
  inputs: readonly Tensor[],
  needsGrad: (i: number) => boolean,
): OpContext<S, D> {
  // Empty until the forward fills them: a backward reads them only after its forward ran.
  return { inputs, saved: [] as Tensor[] as unknown as S, data: {} as D, needsGrad };
}

/** A value as error messages name it: "the number 5", "null", "an Array". */
export function describeValue(x: unknown): string {
  if (x === null || x === undefined) return String(x);
  if (typeof x === 'object') {
    const name = (x as object).constructor?.name ?? 'object';
    return `${/^[AEIOU]/.test(name) ? 'an' : 'a'} ${name}`;
  }
  if (typeof x === 'string') return `the string ${JSON.stringify(x)}`;
  return `the ${typeof x} ${String(x)}`;
}

/** Throws a ValueError naming `op` and `name` unless `x` is a Tensor. */
export function checkTensorArg(op: string, name: string, x: unknown): asserts x is Tensor {
  if (!(x instanceof Tensor)) throw new ValueError(`${op}: ${name} is ${describeValue(x)}; expected a Tensor`);
}

/** One declared tensor argument (see OpDef.tensors), parsed once when the op is defined. */
interface TensorArg {
  name: string;
  kind: 'tensor' | 'list' | 'optional';
}

function parseTensorArgs(specs: readonly string[]): TensorArg[] {
  return specs.map((spec) =>
    spec.endsWith('[]') ? { name: spec.slice(0, -2), kind: 'list' } : spec.endsWith('?') ? { name: spec.slice(0, -1), kind: 'optional' } : { name: spec, kind: 'tensor' },
  );
}

/** Checks the arguments an op declares as tensors. */
function checkTensorArgs(op: string, declared: readonly TensorArg[], args: readonly unknown[]): void {
  for (let i = 0; i < declared.length; i++) {
    const { name, kind } = declared[i]!;
    const a = args[i];
    if (kind === 'list') {
      if (!Array.isArray(a)) throw new ValueError(`${op}: ${name} is ${describeValue(a)}; expected an array of Tensors`);
      a.forEach((x, k) => checkTensorArg(op, `${name}[${k}]`, x));
    } else if (!(a instanceof Tensor) && (kind === 'tensor' || (a !== null && a !== undefined))) {
      checkTensorArg(op, name, a);
    }
  }
}

/** needsGrad of an op that records nothing. */
const needsNone = (): boolean => false;

/** Turns an op definition into a callable that records the graph. */
export function defineOp<A extends unknown[], S extends readonly Tensor[] = Tensor[], D extends object = Record<string, unknown>>(def: OpDef<A, S, D>): Op<A, S, D> {
  const declared = parseTensorArgs(def.tensors ?? []);
  const call = (...args: A): Tensor => {
    if (declared.length > 0) checkTensorArgs(def.name, declared, args);
    const inputs: Tensor[] = [];
    let anyNeeds = false;
    for (const a of args) {
      if (a instanceof Tensor) {
        inputs.push(a);
        anyNeeds ||= needsGradient(a);
      } else if (Array.isArray(a)) {
        for (const x of a) {
          if (x instanceof Tensor) {
            inputs.push(x);
            anyNeeds ||= needsGradient(x);
          }
        }
      }
    }
    const record = anyNeeds && isGradEnabled();
    const needs = record ? inputs.map(needsGradient) : null;
    const ctx = opContext<S, D>(inputs, needs ? (i) => needs[i] ?? false : needsNone);
    const previous = setGradEnabled(false);
    const scope = startOpScope();
    let out: Tensor;
    try {
      out = def.forward(ctx, ...args);
    } catch (e) {
      scope.end();
      throw e;
    } finally {
      setGradEnabled(previous);
    }
    scope.endOp(out, ctx.saved);
    // As torch, an integer output (argmax, a cast to i32) is not differentiable: no gradient flows through it.
    if (record && (out.dtype === 'f32' || out.dtype === 'f16')) {
      out.node = {
        op: def.name,
        inputs,
        saved: ctx.saved,
        savedVersions: sumVersions(ctx.saved),
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
