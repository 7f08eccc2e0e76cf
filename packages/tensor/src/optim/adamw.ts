// AdamW as torch.optim.AdamW (amsgrad off): one fused kernel per parameter reads the parameter,
// gradient and both moments and writes them back; the per-step scalars travel in the uniform block.
// Under a loss scaler the kernels read its inf/NaN flag and skip on the GPU, as torch's fused AdamW.
import { getRuntime } from '../backend/context.js';
import { ValueError } from '../errors.js';
import { compileKernel, packParams } from '../kernels.js';
import { elementwiseGroups, runFill } from '../ops/launch.js';
import { keep } from '../scope.js';
import type { Tensor } from '../tensor.js';
import { checkFoundFlag, checkOptionNames, contiguousGrad, Optimizer, StepUndo, type FlaggedStep, type ParamGroup } from './optimizer.js';

/** Hyperparameters of {@link AdamW} (torch's defaults). */
export interface AdamWOptions {
  /** Learning rate; default 1e-3. */
  lr: number;
  /** Decay rates of the first and second moments; default [0.9, 0.999]. */
  betas: readonly [number, number];
  /** Added to the denominator; default 1e-8. */
  eps: number;
  /** Decoupled weight decay (p ← p - lr·wd·p before the Adam update); default 0.01. */
  weightDecay: number;
}

const DEFAULTS: AdamWOptions = { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 };

/**
 * AdamW with decoupled weight decay and bias correction, exactly as torch.optim.AdamW. torch's
 * amsgrad, maximize, foreach and fused options are not offered: passing one is an error.
 * @example
 * const opt = new AdamW([w, b], { lr: 1e-2 });
 * tidy(() => loss(w, b).backward());
 * opt.step();
 * opt.zeroGrad();
 */
export class AdamW extends Optimizer<AdamWOptions> {
  constructor(params: readonly Tensor[] | readonly ParamGroup<AdamWOptions>[], options: Partial<AdamWOptions> = {}) {
    checkOptionNames('AdamW', Object.keys(DEFAULTS), options);
    super('AdamW', params, { ...DEFAULTS, ...options, betas: [...(options.betas ?? DEFAULTS.betas)] as [number, number] });
  }

  protected checkOptions(o: AdamWOptions): void {
    const [b1, b2] = o.betas;
    const bad = (what: string, v: unknown, rule: string) => new ValueError(`AdamW: ${what} must be ${rule}, got ${v}`);
    if (!(o.lr >= 0)) throw bad('lr', o.lr, '>= 0');
    if (!(o.eps >= 0)) throw bad('eps', o.eps, '>= 0');
    if (!(o.weightDecay >= 0)) throw bad('weightDecay', o.weightDecay, '>= 0');
    if (o.betas.length !== 2 || !(b1! >= 0 && b1! < 1) || !(b2! >= 0 && b2! < 1)) throw bad('betas', `[${o.betas.join(', ')}]`, 'two numbers in [0, 1)');
  }

  step(): void {
    this.queueStep(this.unflagged(), null);
  }

  /**
   * {@link step} with kernels that write nothing where `found` (a one-element u32 tensor: GradScaler's
   * inf/NaN flag) is nonzero, as torch's fused AdamW takes `found_inf`, so the step can be queued before the
   * flag is read. The step counts advance at once (the bias corrections are computed on the host); once
   * the flag is read, `settle(found)` takes them back, with the moments a first step created, if it was set.
   * GradScaler.step and stepAndRead use it.
   * @example
   * const queued = opt.stepUnlessFound(found);
   * queued.settle((await found.item()) !== 0);
   */
  stepUnlessFound(found: Tensor): FlaggedStep {
    checkFoundFlag('AdamW.stepUnlessFound', found);
    const undo = new StepUndo(this.state);
    this.queueStep(found, undo);
    return undo;
  }

  private queueStep(found: Tensor, undo: StepUndo | null): void {
    const rt = getRuntime();
    const kernel = compileKernel(rt, 'adamw', { TG: 'f32' });
    for (const { params, options: o } of this.paramGroups) {
      const [b1, b2] = o.betas;
      for (const p of params) {
        if (!p.grad) continue;
        let s = this.state.get(p);
        const created = !s;
        if (!s) {
          s = { step: 0, buffers: { expAvg: keep(runFill(p.shape, 'f32', 0, null)), expAvgSq: keep(runFill(p.shape, 'f32', 0, null)) } };
          this.state.set(p, s);
        }
        s.step += 1;
        undo?.counted(p, s, created);
        if (p.size === 0) continue;
        const g = contiguousGrad('AdamW.step', p, p.grad);
        const params_ = packParams('adamw', {
          numel: p.size,
          p_offset: p.offset,
          g_offset: g.offset,
          decay: 1 - o.lr * o.weightDecay,
          beta1: b1,
          beta2: b2,
          eps: o.eps,
          step_size: o.lr / (1 - b1 ** s.step),
          bc2_sqrt: Math.sqrt(1 - b2 ** s.step),
          found_offset: found.offset,
        });
        for (const t of [p, s.buffers.expAvg!, s.buffers.expAvgSq!]) t.storage('AdamW.step').bump();
        rt.dispatch({
          kernel,
          params: params_,
          buffers: [p.buffer('AdamW.step'), g.buffer('AdamW.step'), s.buffers.expAvg!.buffer('AdamW.step'), s.buffers.expAvgSq!.buffer('AdamW.step'), found.buffer('AdamW.step')],
          workgroups: elementwiseGroups(p.size),
          label: 'adamw',
        });
        if (g !== p.grad) g.dispose('temporary of AdamW.step');
      }
    }
  }
}
