// Dynamic loss scaling as torch.amp.GradScaler: the loss is multiplied by a scale before backward so
// small f16 gradients do not flush to zero; the gradients are unscaled in place on the GPU while one
// flag records any inf or NaN; the optimizer step is skipped when it is set and the scale backs off. AdamW
// and SGD are queued before the flag is read and skip on the GPU; other optimizers step after the read.
import { getRuntime } from '../backend/context.js';
import { fmtShape, ValueError } from '../errors.js';
import { noGrad } from '../grad-mode.js';
import { toArray } from '../io.js';
import { compileKernel, grid1d, packParams } from '../kernels.js';
import { mul } from '../ops/arithmetic.js';
import { describeValue } from '../ops/define.js';
import { runFill } from '../ops/launch.js';
import { cast } from '../ops/select.js';
import { cat, reshape } from '../ops/views.js';
import { keep, tidy } from '../scope.js';
import type { Tensor } from '../tensor.js';
import { checkOptionNames, type FlaggedStep } from './optimizer.js';

/** Hyperparameters of {@link GradScaler} (torch's defaults). */
export interface GradScalerOptions {
  /** Scale of the first step; default 2^16. */
  initScale: number;
  /** Factor applied after `growthInterval` steps in a row without inf/NaN; default 2. */
  growthFactor: number;
  /** Factor applied when a step's gradients hold inf/NaN; default 0.5. */
  backoffFactor: number;
  /** Consecutive finite steps before the scale grows; default 2000. */
  growthInterval: number;
  /** false: scale 1, no checks, every step taken (the f32 path); default true. */
  enabled: boolean;
}

/** What a checkpoint keeps of a scaler so a resumed run scales exactly as the interrupted one. */
export interface GradScalerState {
  scale: number;
  /** Consecutive finite steps since the last change of scale (torch's `_growth_tracker`). */
  growthTracker: number;
}

const DEFAULTS: GradScalerOptions = { initScale: 2 ** 16, growthFactor: 2, backoffFactor: 0.5, growthInterval: 2000, enabled: true };

/**
 * An optimizer as the scaler sees it: its parameters and its step, and optionally a step that skips on
 * the GPU (AdamW's and SGD's `stepUnlessFound`), which the scaler then queues before reading the flag.
 */
export interface ScaledOptimizer {
  readonly paramGroups: readonly { readonly params: readonly Tensor[] }[];
  step(): void;
  /**
   * Queues the step so that its kernels write nothing where `found` (a one-element u32 flag) is nonzero;
   * the returned step's `settle(found)` takes back its host-side changes once the flag has been read.
   */
  stepUnlessFound?(found: Tensor): FlaggedStep;
}

/**
 * The scale update after one step (torch's `_amp_update_scale_`): inf/NaN found multiplies the
 * scale by `backoffFactor` and resets the tracker; otherwise the tracker counts up and, on reaching
 * `growthInterval`, the scale grows by `growthFactor` (when that stays finite in f32) and it resets.
 */
export function nextScaleState(state: GradScalerState, foundInf: boolean, options: Pick<GradScalerOptions, 'growthFactor' | 'backoffFactor' | 'growthInterval'>): GradScalerState {
  if (foundInf) return { scale: Math.fround(state.scale * options.backoffFactor), growthTracker: 0 };
  const successful = state.growthTracker + 1;
  if (successful < options.growthInterval) return { scale: state.scale, growthTracker: successful };
  const grown = Math.fround(state.scale * options.growthFactor);
  return { scale: Number.isFinite(grown) ? grown : state.scale, growthTracker: 0 };
}

/**
 * Unscales each gradient in place by `invScale` on the GPU and returns a [1] u32 tensor that is 1
 * when any of them held inf or NaN, 0 otherwise. Nothing is read back.
 */
export function unscaleGradients(grads: readonly Tensor[], invScale: number): Tensor {
  const rt = getRuntime();
  const found = runFill([1], 'u32', 0, null);
  for (const g of grads) {
    if (g.size === 0) continue;
    if (!g.isContiguous) throw new ValueError('GradScaler.unscale: a gradient is a strided view; gradients from backward() are contiguous');
    const kernel = compileKernel(rt, 'amp_unscale', { T: g.dtype });
    const params = packParams('amp_unscale', { numel: g.size, offset: g.offset, inv_scale: invScale });
    g.storage('GradScaler.unscale').bump();
    rt.dispatch({ kernel, params, buffers: [g.buffer('GradScaler.unscale'), found.buffer('GradScaler.unscale')], workgroups: grid1d(g.size, 256), label: 'amp_unscale' });
  }
  return found;
}

/**
 * Dynamic loss scaling, step by step as torch.amp.GradScaler: `scale(loss).backward()`, then
 * `unscale(optimizer)` (before clipping), `await step(optimizer)` (skipped on inf/NaN, one flag
 * read back), `update()`.
 * @example
 * const scaler = new GradScaler();
 * scaler.scale(loss).backward();
 * scaler.unscale(opt);
 * clipGradNorm(params, 1.0);
 * const stepped = await scaler.step(opt);
 * scaler.update();
 * opt.zeroGrad();
 */
export class GradScaler {
  readonly options: Readonly<GradScalerOptions>;
  private state: GradScalerState;
  /** Per optimizer since the last update: its unread flag, then whether its gradients held inf/NaN. */
  private readonly checks = new Map<ScaledOptimizer, { found: Tensor | null; foundInf: boolean | null }>();

  constructor(options: Partial<GradScalerOptions> = {}) {
    checkOptionNames('GradScaler', Object.keys(DEFAULTS), options);
    const o = { ...DEFAULTS, ...options };
    const bad = (what: string, v: number, rule: string) => new ValueError(`GradScaler: ${what} must be ${rule}, got ${v}`);
    if (!(o.initScale > 0) || !Number.isFinite(o.initScale)) throw bad('initScale', o.initScale, 'a finite number > 0');
    if (!(o.growthFactor > 1)) throw bad('growthFactor', o.growthFactor, '> 1');
    if (!(o.backoffFactor > 0 && o.backoffFactor < 1)) throw bad('backoffFactor', o.backoffFactor, 'in (0, 1)');
    if (!(Number.isInteger(o.growthInterval) && o.growthInterval > 0)) throw bad('growthInterval', o.growthInterval, 'an integer > 0');
    this.options = Object.freeze(o);
    this.state = { scale: Math.fround(o.initScale), growthTracker: 0 };
  }

  get enabled(): boolean {
    return this.options.enabled;
  }

  /** The current scale (1 when disabled). */
  getScale(): number {
    return this.enabled ? this.state.scale : 1;
  }

  /** loss x scale (the loss itself when disabled). */
  scale(loss: Tensor): Tensor {
    return this.enabled ? mul(loss, this.state.scale) : loss;
  }

  /**
   * Divides the optimizer's gradients by the scale in place and records whether any is inf/NaN
   * (once per optimizer between updates; several optimizers may share one scaler, as in torch).
   */
  unscale(optimizer: ScaledOptimizer): void {
    if (!this.enabled) return;
    if (this.checks.has(optimizer)) throw new ValueError('GradScaler.unscale: already called on this optimizer since the last update()');
    const grads = optimizer.paramGroups.flatMap((g) => g.params.flatMap((p) => (p.grad ? [p.grad] : [])));
    this.checks.set(optimizer, { found: keep(unscaleGradients(grads, Math.fround(1 / this.state.scale))), foundInf: null });
  }

  /**
   * Runs `optimizer.step()` unless its unscaled gradients hold inf/NaN (unscaling them first if
   * `unscale` was not called). Reads back one flag; returns whether the step was taken. An optimizer with
   * `stepUnlessFound` (AdamW, SGD) has its step queued before the read, its kernels skipping on the GPU
   * when the flag is set (torch's fused AdamW with `found_inf`), so the GPU runs it while the host waits;
   * after a skipped step its parameters, state and step counts are as if `step()` had not been called.
   * Other optimizers' `step()`, and that of a subclass overriding `step()` but not `stepUnlessFound()`, is
   * called after the read, when the flag is clear.
   */
  async step(optimizer: ScaledOptimizer): Promise<boolean> {
    return (await this.stepAndRead(optimizer, [])).stepped;
  }

  /**
   * {@link step}, reading one-element f32 or f16 tensors (a loss, a gradient norm) in the same readback
   * as the inf/NaN flag, so a step waits for the GPU once. `values` are theirs before the step, in
   * order, f16 widened to f32 as `item()` does. The step is queued before the one read where the
   * optimizer skips on the GPU (see {@link step}) and always when disabled.
   * @example
   * scaler.unscale(opt);
   * const norm = clipGradNorm(params, 1.0);
   * const { stepped, values: [lossValue, normValue] } = await scaler.stepAndRead(opt, [loss, norm]);
   * scaler.update();
   */
  async stepAndRead(optimizer: ScaledOptimizer, tensors: readonly Tensor[]): Promise<{ stepped: boolean; values: number[] }> {
    for (const t of tensors) {
      if (t.size !== 1 || (t.dtype !== 'f32' && t.dtype !== 'f16')) {
        throw new ValueError(`GradScaler.stepAndRead: reads one-element f32 or f16 tensors, got ${t.dtype} ${fmtShape(t.shape)}; read others with toArray()`);
      }
    }
    if (!this.enabled) {
      const copied = tensors.length > 0 ? asF32Row(tensors) : null;
      optimizer.step();
      return { stepped: true, values: copied ? await readAndDispose(copied) : [] };
    }
    if (this.checks.get(optimizer)?.foundInf != null) throw new ValueError('GradScaler.step: already called on this optimizer since the last update()');
    if (!this.checks.has(optimizer)) this.unscale(optimizer);
    const check = this.checks.get(optimizer)!;
    const found = check.found!;
    check.found = null;
    let read: number[];
    try {
      if (skipsOnGpu(optimizer)) {
        // The values are copied before the step is queued, so they are theirs before it.
        const copied = tensors.length > 0 ? asF32Row([found, ...tensors]) : null;
        let queued: FlaggedStep;
        try {
          queued = optimizer.stepUnlessFound(found);
        } catch (e) {
          copied?.dispose('GradScaler: the step failed');
          throw e;
        }
        read = copied ? await readAndDispose(copied) : [await found.item()];
        check.foundInf = read[0] !== 0;
        queued.settle(check.foundInf);
      } else {
        read = tensors.length === 0 ? [await found.item()] : await readAndDispose(asF32Row([found, ...tensors]));
        check.foundInf = read[0] !== 0;
        if (!check.foundInf) optimizer.step();
      }
    } finally {
      found.dispose('GradScaler read its flag');
    }
    return { stepped: !check.foundInf, values: read.slice(1) };
  }

  /** Updates the scale from this step's checks, inf/NaN in any optimizer's gradients counting (see {@link nextScaleState}). */
  update(): void {
    if (!this.enabled) return;
    const checks = [...this.checks.values()];
    if (checks.length === 0) throw new ValueError('GradScaler.update: no inf/NaN check was recorded; call step(optimizer) first');
    if (checks.some((c) => c.foundInf === null)) {
      throw new ValueError('GradScaler.update: an optimizer was unscaled but not stepped; call step(optimizer) for it before update()');
    }
    this.state = nextScaleState(this.state, checks.some((c) => c.foundInf === true), this.options);
    this.checks.clear();
  }

  /** The scale and growth tracker, for a checkpoint. */
  stateDict(): GradScalerState {
    return { ...this.state };
  }

  /** Restores {@link stateDict}'s values. */
  loadStateDict(state: GradScalerState): void {
    // Read from a checkpoint's JSON: the values are named by kind, never converted or written back whole.
    const { scale, growthTracker } = (typeof state === 'object' && state !== null ? state : {}) as Partial<Record<keyof GradScalerState, unknown>>;
    if (typeof scale !== 'number' || !(scale > 0) || !Number.isFinite(scale) || typeof growthTracker !== 'number' || !Number.isInteger(growthTracker) || growthTracker < 0) {
      throw new ValueError(
        `GradScaler.loadStateDict: expected a finite scale > 0 and an integer growthTracker >= 0, got ${typeof state === 'object' && state !== null ? `scale ${describeValue(scale)} and growthTracker ${describeValue(growthTracker)}` : describeValue(state)}`,
      );
    }
    this.state = { scale, growthTracker };
  }
}

/**
 * Whether `optimizer`'s step may be queued before its flag is read: it has `stepUnlessFound`, and no subclass
 * overrides `step()` below the class that defines it (one that adds to `step()` is stepped by `step()`).
 */
function skipsOnGpu(optimizer: ScaledOptimizer): optimizer is ScaledOptimizer & { stepUnlessFound(found: Tensor): FlaggedStep } {
  if (typeof optimizer.stepUnlessFound !== 'function') return false;
  for (let o: object | null = optimizer; o !== null; o = Object.getPrototypeOf(o) as object | null) {
    if (Object.hasOwn(o, 'stepUnlessFound')) return true;
    if (Object.hasOwn(o, 'step')) return false;
  }
  return false;
}

/** One-element tensors copied into one [n] f32 tensor on the GPU, to be read back at once. */
function asF32Row(tensors: readonly Tensor[]): Tensor {
  return tidy(() => noGrad(() => cat(tensors.map((t) => reshape(t.dtype === 'f32' ? t : cast(t, 'f32'), [1])))));
}

async function readAndDispose(row: Tensor): Promise<number[]> {
  try {
    return [...((await toArray(row)) as Float32Array)];
  } finally {
    row.dispose('GradScaler read its values');
  }
}
