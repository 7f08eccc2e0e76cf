// SGD with momentum, dampening, Nesterov and weight decay as torch.optim.SGD: one kernel per parameter,
// which under a loss scaler reads its inf/NaN flag and skips on the GPU.
import { getRuntime } from '../backend/context.js';
import { ValueError } from '../errors.js';
import { compileKernel, packParams } from '../kernels.js';
import { elementwiseGroups } from '../ops/launch.js';
import { keep } from '../scope.js';
import { empty, type Tensor } from '../tensor.js';
import { checkFoundFlag, checkOptionNames, contiguousGrad, Optimizer, StepUndo, type FlaggedStep, type ParamGroup } from './optimizer.js';

/** Hyperparameters of {@link SGD} (torch's defaults). */
export interface SGDOptions {
  /** Learning rate; default 1e-3. */
  lr: number;
  /** Momentum factor; default 0 (no momentum buffer). */
  momentum: number;
  /** Dampening of the momentum; default 0. */
  dampening: number;
  /** L2 penalty added to the gradient (g ← g + wd·p); default 0. */
  weightDecay: number;
  /** Nesterov momentum (needs momentum > 0 and dampening 0); default false. */
  nesterov: boolean;
}

const DEFAULTS: SGDOptions = { lr: 1e-3, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false };

/**
 * Stochastic gradient descent, exactly as torch.optim.SGD (the first step sets the momentum buffer to the gradient).
 * torch's maximize, foreach and differentiable options are not offered: passing one is an error.
 * @example
 * const opt = new SGD([w], { lr: 0.1, momentum: 0.9 });
 */
export class SGD extends Optimizer<SGDOptions> {
  /** Bound in place of a momentum buffer when a group has none (never read). */
  private unused: Tensor | null = null;

  constructor(params: readonly Tensor[] | readonly ParamGroup<SGDOptions>[], options: Partial<SGDOptions> = {}) {
    checkOptionNames('SGD', Object.keys(DEFAULTS), options);
    super('SGD', params, { ...DEFAULTS, ...options });
  }

  protected checkOptions(o: SGDOptions): void {
    const bad = (what: string, v: unknown, rule: string) => new ValueError(`SGD: ${what} must be ${rule}, got ${v}`);
    if (!(o.lr >= 0)) throw bad('lr', o.lr, '>= 0');
    if (!(o.momentum >= 0)) throw bad('momentum', o.momentum, '>= 0');
    if (!(o.weightDecay >= 0)) throw bad('weightDecay', o.weightDecay, '>= 0');
    if (!Number.isFinite(o.dampening)) throw bad('dampening', o.dampening, 'a finite number');
    if (o.nesterov && (o.momentum <= 0 || o.dampening !== 0)) {
      throw new ValueError(`SGD: nesterov needs momentum > 0 and dampening 0, got momentum ${o.momentum}, dampening ${o.dampening}`);
    }
  }

  step(): void {
    this.queueStep(this.unflagged(), null);
  }

  /**
   * {@link step} with a kernel that writes nothing where `found` (a one-element u32 tensor: GradScaler's
   * inf/NaN flag) is nonzero, so the step can be queued before the flag is read; once it is,
   * `settle(found)` takes back the step counts and a first step's momentum buffer if it was set.
   * GradScaler.step and stepAndRead use it.
   * @example
   * const queued = opt.stepUnlessFound(found);
   * queued.settle((await found.item()) !== 0);
   */
  stepUnlessFound(found: Tensor): FlaggedStep {
    checkFoundFlag('SGD.stepUnlessFound', found);
    const undo = new StepUndo(this.state);
    this.queueStep(found, undo);
    return undo;
  }

  private queueStep(found: Tensor, undo: StepUndo | null): void {
    const rt = getRuntime();
    const kernel = compileKernel(rt, 'sgd', { TG: 'f32' });
    for (const { params, options: o } of this.paramGroups) {
      for (const p of params) {
        if (!p.grad) continue;
        let s = this.state.get(p);
        const created = !s;
        if (!s) this.state.set(p, (s = { step: 0, buffers: {} }));
        s.step += 1;
        undo?.counted(p, s, created);
        let mode = 0;
        if (o.momentum !== 0) {
          mode = s.buffers.momentumBuffer ? 2 : 1;
          if (mode === 1) {
            s.buffers.momentumBuffer = keep(empty(p.shape, 'f32')); // written whole by the first step
            undo?.createdBuffer('momentumBuffer');
          }
        }
        if (p.size === 0) continue;
        const buf = s.buffers.momentumBuffer ?? (this.unused ??= keep(empty([1], 'f32')));
        const g = contiguousGrad('SGD.step', p, p.grad);
        const params_ = packParams('sgd', {
          numel: p.size,
          p_offset: p.offset,
          g_offset: g.offset,
          momentum_mode: mode,
          lr: o.lr,
          weight_decay: o.weightDecay,
          momentum: o.momentum,
          dampening: o.dampening,
          nesterov: o.nesterov ? 1 : 0,
          found_offset: found.offset,
        });
        p.storage('SGD.step').bump();
        if (mode !== 0) buf.storage('SGD.step').bump();
        rt.dispatch({
          kernel,
          params: params_,
          buffers: [p.buffer('SGD.step'), g.buffer('SGD.step'), buf.buffer('SGD.step'), found.buffer('SGD.step')],
          workgroups: elementwiseGroups(p.size),
          label: 'sgd',
        });
        if (g !== p.grad) g.dispose('temporary of SGD.step');
      }
    }
  }

  override dispose(): void {
    super.dispose();
    this.unused?.dispose('SGD disposed');
    this.unused = null;
  }
}
