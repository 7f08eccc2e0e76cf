// Scopes that free a step's temporaries: every tensor created inside `tidy(fn)` is disposed when
// fn returns, except what fn returns and what was passed to `keep()`.
import type { Tensor } from './tensor.js';

/**
 * The tensors of each open scope, innermost last: a set for tidy() and startScope(), a list for an op's
 * forward (every op opens one, and it holds a tensor or two; a tensor is never tracked twice).
 */
const scopes: (Set<Tensor> | Tensor[])[] = [];

/** Registers a new tensor with the innermost open scope (internal). */
export function trackTensor(t: Tensor): void {
  const s = scopes[scopes.length - 1];
  if (s === undefined) return;
  if (Array.isArray(s)) s.push(t);
  else s.add(t);
}

/** Removes a tensor from every open scope so no scope disposes it. Returns it. */
export function keep<T extends Tensor>(t: T): T {
  for (const s of scopes) {
    if (!Array.isArray(s)) s.delete(t);
    else if (s.includes(t)) s.splice(s.indexOf(t), 1);
  }
  return t;
}

/** A manually closed scope, for code that awaits between creating and freeing tensors. */
export interface Scope {
  /** Disposes the scope's tensors except `result`'s (which move to the enclosing scope). */
  end<R>(result?: R): R | undefined;
  /** Whether `t` was created in this scope (or moved into it) and is still to be freed by it. */
  owns(t: Tensor): boolean;
}

/** Opens a scope that must be closed with `end()` (scopes nest; close them in reverse order). */
export function startScope(): Scope {
  return new OpenScope();
}

/** Opens the scope of an op's forward (internal: defineOp), closed with `endOp`, or `end` when it throws. */
export function startOpScope(): OpScope {
  return new OpScope();
}

/** A scope opened by startScope: a class, so that opening one (every op does) creates no closures. */
export class OpenScope implements Scope {
  private readonly own = new Set<Tensor>();

  constructor() {
    scopes.push(this.own);
  }

  end<R>(result?: R): R | undefined {
    const own = this.close();
    const kept = new Set<Tensor>();
    collectTensors(result, kept);
    const tensors = [...own];
    for (const t of tensors) if (kept.has(t)) trackTensor(t);
    // Newest first, the reverse of creation.
    for (let i = tensors.length - 1; i >= 0; i--) if (!kept.has(tensors[i]!)) tensors[i]!.dispose('its tidy() scope ended');
    return result;
  }

  private close(): Set<Tensor> {
    const own = this.own;
    if (scopes.lastIndexOf(own) !== scopes.length - 1) throw new Error('internal: scopes must be ended innermost first');
    scopes.pop();
    return own;
  }

  owns(t: Tensor): boolean {
    return this.own.has(t);
  }
}

/** The scope of an op's forward: its tensors in a list, without the set a scope of user code keeps. */
export class OpScope {
  private readonly own: Tensor[] = [];

  constructor() {
    scopes.push(this.own);
  }

  /** Keeps `out` and `saved` (the op's output and what its backward reads) and disposes the rest, newest first. */
  endOp(out: Tensor, saved: readonly Tensor[]): void {
    const own = this.close();
    for (const t of own) if (t === out || saved.includes(t)) trackTensor(t);
    for (let i = own.length - 1; i >= 0; i--) {
      const t = own[i]!;
      if (t !== out && !saved.includes(t)) t.dispose('its tidy() scope ended');
    }
  }

  /** Disposes every tensor of the scope (the forward threw). */
  end(): void {
    const own = this.close();
    for (let i = own.length - 1; i >= 0; i--) own[i]!.dispose('its tidy() scope ended');
  }

  private close(): Tensor[] {
    const own = this.own;
    if (scopes[scopes.length - 1] !== own) throw new Error('internal: scopes must be ended innermost first');
    scopes.pop();
    return own;
  }
}

/**
 * Runs `fn` and disposes every tensor it created except those it returns (a tensor, or arrays
 * and plain objects of tensors) and those passed to `keep()`.
 * @example
 * const loss = tidy(() => {
 *   const l = crossEntropy(model(x), y);
 *   l.backward();
 *   return l;
 * });
 */
export function tidy<R>(fn: () => R): R {
  const scope = startScope();
  let result: R;
  try {
    result = fn();
  } catch (e) {
    scope.end();
    throw e;
  }
  if (result instanceof Promise) {
    scope.end();
    throw new Error('tidy: fn returned a Promise; use startScope()/end() around async code');
  }
  return scope.end(result) as R;
}

function collectTensors(value: unknown, out: Set<Tensor>): void {
  if (value === null || typeof value !== 'object') return;
  if (isTensor(value)) {
    out.add(value);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collectTensors(v, out);
    return;
  }
  if (Object.getPrototypeOf(value) === Object.prototype || value instanceof Map) {
    const values = value instanceof Map ? [...value.values()] : Object.values(value);
    for (const v of values) collectTensors(v, out);
  }
}

function isTensor(v: object): v is Tensor {
  return 'shape' in v && 'dtype' in v && typeof (v as { dispose?: unknown }).dispose === 'function' && 'node' in v;
}
