// What every optimizer shares: parameter groups with their own hyperparameters, per-parameter
// state on the GPU (kept out of tidy scopes), zeroGrad, setLr, and host state dicts for checkpoints.
import { DTypeError, ShapeError, ValueError, fmtShape } from '../errors.js';
import { toArray } from '../io.js';
import { contiguousData, runFill } from '../ops/launch.js';
import { keep } from '../scope.js';
import { fromHost, Tensor } from '../tensor.js';

/** A group of parameters with hyperparameters that override the optimizer's defaults. */
export type ParamGroup<O> = { params: readonly Tensor[] } & Partial<O>;

/** Hyperparameter values a state dict carries. */
export type OptionValue = number | boolean | readonly number[];

/** An optimizer's state on the host: what a checkpoint stores. */
export interface OptimizerStateDict {
  /** One entry per parameter in group order; null where the optimizer has not updated it yet. */
  state: ({ step: number; buffers: Record<string, Float32Array> } | null)[];
  /** Each group's hyperparameters and the indices (into `state`) of its parameters. */
  paramGroups: { options: Record<string, OptionValue>; params: number[] }[];
}

/** Per-parameter state on the GPU. */
export interface ParamState {
  step: number;
  buffers: Record<string, Tensor>;
}

/**
 * A step queued by an optimizer's `stepUnlessFound(found)`: its kernels leave every parameter and its state
 * untouched on the GPU where the flag is set, while the host has already counted the step.
 */
export interface FlaggedStep {
  /**
   * Brings the host's state in line with the flag read back: when it was set, takes back the step's
   * counts and the state it created (a first step's moments), as if the step had never been called.
   */
  settle(found: boolean): void;
}

/** What one flagged step changed on the host, taken back by {@link FlaggedStep.settle} when its flag was set. */
export class StepUndo implements FlaggedStep {
  private readonly changes: { p: Tensor; s: ParamState; createdState: boolean; createdBuffers: string[] }[] = [];
  private settled = false;

  constructor(private readonly state: Map<Tensor, ParamState>) {}

  /** Records that `s`, the state of `p` (created by this step when `createdState`), counted one step. */
  counted(p: Tensor, s: ParamState, createdState: boolean): void {
    this.changes.push({ p, s, createdState, createdBuffers: [] });
  }

  /** Records that this step created the buffer `key` of the state it counted last. */
  createdBuffer(key: string): void {
    const last = this.changes[this.changes.length - 1];
    if (!last) throw new Error('internal: StepUndo.createdBuffer before counted');
    last.createdBuffers.push(key);
  }

  settle(found: boolean): void {
    if (this.settled) throw new ValueError('FlaggedStep.settle: already settled; call it once, with the flag read back after the step');
    this.settled = true;
    if (!found) return;
    for (const { p, s, createdState, createdBuffers } of this.changes.reverse()) {
      // A state replaced meanwhile (loadStateDict, dispose) is no longer this step's to take back.
      if (this.state.get(p) !== s) continue;
      s.step -= 1;
      for (const key of createdBuffers) {
        s.buffers[key]?.dispose('its first step was skipped');
        delete s.buffers[key];
      }
      if (createdState) {
        for (const t of Object.values(s.buffers)) t.dispose('its first step was skipped');
        this.state.delete(p);
      }
    }
  }
}

/** Throws unless `found` is a one-element u32 tensor, as GradScaler's inf/NaN flag. */
export function checkFoundFlag(where: string, found: Tensor): void {
  if (found.dtype !== 'u32' || found.size !== 1) {
    throw new ValueError(`${where}: found must be a one-element u32 flag (GradScaler's inf/NaN flag), got ${found.dtype} ${fmtShape(found.shape)}`);
  }
}

/**
 * Throws a ValueError naming each option in `given` that is not in `known`, so an option torch has and
 * this optimizer lacks (amsgrad, maximize) or a torch spelling (weight_decay) is never silently ignored.
 */
export function checkOptionNames(where: string, known: readonly string[], given: object): void {
  for (const key of Object.keys(given)) {
    if (key === 'params' || known.includes(key)) continue;
    const camel = key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
    const hint = camel !== key && known.includes(camel) ? `; did you mean ${camel}?` : `; the options are ${known.join(', ')}`;
    throw new ValueError(`${where}: option ${key} is not supported${hint}`);
  }
}

/** Base class of the optimizers: groups, state, zeroGrad, setLr, state dicts. */
export abstract class Optimizer<O extends { lr: number }> {
  /** The parameter groups, each with its full set of hyperparameters. */
  readonly paramGroups: { params: Tensor[]; options: O }[];
  protected readonly state = new Map<Tensor, ParamState>();
  /** A [1] u32 zero: the flag of a step that nothing skips ({@link step}). */
  private neverFound: Tensor | null = null;

  protected constructor(
    protected readonly name: string,
    params: readonly Tensor[] | readonly ParamGroup<O>[],
    defaults: O,
  ) {
    const groups =
      params.length > 0 && params[0] instanceof Tensor ? [{ params: params as Tensor[] } as unknown as ParamGroup<O>] : [...(params as ParamGroup<O>[])];
    const seen = new Set<Tensor>();
    this.paramGroups = groups.map((g, gi) => {
      checkOptionNames(`${name}: group ${gi}`, Object.keys(defaults), g);
      const { params: ps, ...overrides } = g;
      const options = { ...defaults, ...(overrides as unknown as Partial<O>) };
      this.checkOptions(options);
      ps.forEach((p, i) => {
        const where = `${name}: parameter ${i} of group ${gi}`;
        if (!(p instanceof Tensor)) throw new ValueError(`${where} is not a Tensor; pass the model's parameter tensors`);
        if (seen.has(p)) throw new ValueError(`${where} ${p} appears twice; list each parameter once`);
        if (p.dtype !== 'f32') {
          throw new DTypeError(`${where} is ${p.dtype} ${fmtShape(p.shape)}; ${name} updates f32 parameters only, keep an f32 master copy`);
        }
        if (!p.isContiguous) throw new ShapeError(`${where} ${fmtShape(p.shape)} is a strided view; pass a contiguous tensor`);
        seen.add(p);
      });
      return { params: [...ps], options };
    });
  }

  /** Validates one group's hyperparameters; throws a ValueError naming the bad one. */
  protected abstract checkOptions(options: O): void;

  /** Updates every parameter that has a gradient (no readback; the work is queued on the GPU). */
  abstract step(): void;

  /** Disposes every parameter's gradient and sets it to null (the next backward starts from zero). */
  zeroGrad(): void {
    for (const g of this.paramGroups) {
      for (const p of g.params) {
        p.grad?.dispose('zeroGrad() freed it');
        p.grad = null;
      }
    }
  }

  /** The learning rate of group `group` (default 0). */
  getLr(group = 0): number {
    return this.group(group).options.lr;
  }

  /** Sets the learning rate of every group, or of one group; takes effect at the next step without recompiling. */
  setLr(lr: number, group?: number): void {
    if (!(lr >= 0)) throw new ValueError(`${this.name}.setLr: learning rate must be >= 0, got ${lr}`);
    const groups = group === undefined ? this.paramGroups : [this.group(group)];
    for (const g of groups) g.options.lr = lr;
  }

  /** Copies the state to the host (an async readback), for checkpoints. */
  async stateDict(): Promise<OptimizerStateDict> {
    const state: OptimizerStateDict['state'] = [];
    const paramGroups: OptimizerStateDict['paramGroups'] = [];
    let index = 0;
    for (const g of this.paramGroups) {
      const params: number[] = [];
      for (const p of g.params) {
        params.push(index++);
        const s = this.state.get(p);
        if (!s) {
          state.push(null);
          continue;
        }
        const buffers: Record<string, Float32Array> = {};
        for (const [k, t] of Object.entries(s.buffers)) buffers[k] = (await toArray(t)) as Float32Array;
        state.push({ step: s.step, buffers });
      }
      paramGroups.push({ options: copyOptions(g.options), params });
    }
    return { state, paramGroups };
  }

  /** Replaces the state and hyperparameters with a state dict from {@link stateDict} of the same parameter layout. */
  loadStateDict(dict: OptimizerStateDict): void {
    const where = `${this.name}.loadStateDict`;
    if (dict.paramGroups.length !== this.paramGroups.length) {
      throw new ValueError(`${where}: the state dict has ${dict.paramGroups.length} parameter groups, this optimizer ${this.paramGroups.length}; build the optimizer with the same groups`);
    }
    const loaded = new Map<Tensor, ParamState>();
    const options: O[] = [];
    try {
      dict.paramGroups.forEach((dg, gi) => {
        const group = this.paramGroups[gi]!;
        if (dg.params.length !== group.params.length) {
          throw new ValueError(`${where}: group ${gi} has ${dg.params.length} parameters in the state dict, ${group.params.length} here`);
        }
        const o = { ...group.options };
        for (const key of Object.keys(o) as (keyof O & string)[]) {
          const v = dg.options[key];
          if (v === undefined) throw new ValueError(`${where}: group ${gi} lacks option '${key}'; pass a state dict saved by ${this.name}`);
          (o as Record<string, OptionValue>)[key] = Array.isArray(v) ? [...v] : (v as OptionValue);
        }
        this.checkOptions(o);
        options.push(o);
        dg.params.forEach((si, i) => {
          const p = group.params[i]!;
          const s = dict.state[si];
          if (s === undefined) throw new ValueError(`${where}: group ${gi} names state ${si}, which the state dict lacks`);
          if (s === null) return;
          const buffers: Record<string, Tensor> = {};
          for (const [k, data] of Object.entries(s.buffers)) {
            if (data.length !== p.size) {
              throw new ShapeError(`${where}: ${k} of parameter ${i} in group ${gi} has ${data.length} values, the parameter ${fmtShape(p.shape)} has ${p.size}`);
            }
            buffers[k] = keep(fromHost(data, p.shape, 'f32'));
          }
          loaded.set(p, { step: s.step, buffers });
        });
      });
    } catch (e) {
      for (const s of loaded.values()) for (const t of Object.values(s.buffers)) t.dispose('loadStateDict failed');
      throw e;
    }
    this.disposeState();
    for (const [p, s] of loaded) this.state.set(p, s);
    options.forEach((o, gi) => (this.paramGroups[gi]!.options = o));
  }

  /** Frees the optimizer's GPU state (its moments); the parameters are untouched. */
  dispose(): void {
    this.disposeState();
    this.neverFound?.dispose(`${this.name} disposed`);
    this.neverFound = null;
  }

  /** The flag bound by a step that no inf/NaN check guards: zero, so its kernels always write. */
  protected unflagged(): Tensor {
    return (this.neverFound ??= keep(runFill([1], 'u32', 0, null)));
  }

  private disposeState(): void {
    for (const s of this.state.values()) for (const t of Object.values(s.buffers)) t.dispose(`${this.name} state was replaced or disposed`);
    this.state.clear();
  }

  private group(i: number): { params: Tensor[]; options: O } {
    const g = this.paramGroups[i];
    if (!g) throw new ValueError(`${this.name}: no parameter group ${i} (there are ${this.paramGroups.length})`);
    return g;
  }
}

/** The gradient of `p` as a contiguous f32 tensor (a temporary copy when it is a strided view). */
export function contiguousGrad(op: string, p: Tensor, g: Tensor): Tensor {
  if (g.dtype !== 'f32') throw new DTypeError(`${op}: the gradient of ${p} is ${g.dtype}; expected f32 like the parameter`);
  if (g.size !== p.size) throw new ShapeError(`${op}: the gradient ${fmtShape(g.shape)} does not match the parameter ${fmtShape(p.shape)}`);
  return g.isContiguous ? g : contiguousData(op, g);
}

function copyOptions(o: object): Record<string, OptionValue> {
  const out: Record<string, OptionValue> = {};
  for (const [k, v] of Object.entries(o)) out[k] = Array.isArray(v) ? [...(v as number[])] : (v as OptionValue);
  return out;
}
