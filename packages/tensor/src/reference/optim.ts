// CPU references of the optimizers and of gradient clipping, in float64, written from the update
// rules as PyTorch documents them (torch.optim.AdamW, torch.optim.SGD, clip_grad_norm_).

/** Hyperparameters of {@link refAdamWStep}. */
export interface RefAdamWOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** Per-parameter AdamW state: steps taken, first and second moments. */
export interface RefAdamWState {
  step: number;
  m: Float64Array;
  v: Float64Array;
}

/** A fresh AdamW state for a parameter of `n` elements (step 0, zero moments). */
export function refAdamWState(n: number): RefAdamWState {
  return { step: 0, m: new Float64Array(n), v: new Float64Array(n) };
}

/**
 * One AdamW step in place (amsgrad off):
 * θ ← θ - γλθ; m ← β1 m + (1-β1) g; v ← β2 v + (1-β2) g²; m̂ = m / (1-β1^t); v̂ = v / (1-β2^t);
 * θ ← θ - γ m̂ / (√v̂ + ε).
 */
export function refAdamWStep(param: Float64Array, grad: ArrayLike<number>, state: RefAdamWState, o: RefAdamWOptions): void {
  state.step += 1;
  const t = state.step;
  for (let i = 0; i < param.length; i++) {
    const g = grad[i]!;
    let theta = param[i]! - o.lr * o.weightDecay * param[i]!;
    const m = o.beta1 * state.m[i]! + (1 - o.beta1) * g;
    const v = o.beta2 * state.v[i]! + (1 - o.beta2) * g * g;
    state.m[i] = m;
    state.v[i] = v;
    const mHat = m / (1 - o.beta1 ** t);
    const vHat = v / (1 - o.beta2 ** t);
    theta -= (o.lr * mHat) / (Math.sqrt(vHat) + o.eps);
    param[i] = theta;
  }
}

/** Hyperparameters of {@link refSgdStep}. */
export interface RefSgdOptions {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
}

/** Per-parameter SGD state: steps taken and the momentum buffer (null before the first step). */
export interface RefSgdState {
  step: number;
  buf: Float64Array | null;
}

/**
 * One SGD step in place: g ← g + λθ; with momentum μ, b ← g on the first step, else
 * b ← μb + (1-τ)g, then g ← g + μb (Nesterov) or g ← b; θ ← θ - γg.
 */
export function refSgdStep(param: Float64Array, grad: ArrayLike<number>, state: RefSgdState, o: RefSgdOptions): void {
  state.step += 1;
  const first = state.buf === null;
  if (o.momentum !== 0 && state.buf === null) state.buf = new Float64Array(param.length);
  for (let i = 0; i < param.length; i++) {
    let g = grad[i]! + o.weightDecay * param[i]!;
    if (o.momentum !== 0) {
      const buf = state.buf!;
      buf[i] = first ? g : o.momentum * buf[i]! + (1 - o.dampening) * g;
      g = o.nesterov ? g + o.momentum * buf[i]! : buf[i]!;
    }
    param[i] = param[i]! - o.lr * g;
  }
}

/**
 * Clips gradients in place by their global L2 norm: total = √(Σ over every gradient of Σ g²);
 * each g ← g · min(1, maxNorm / (total + 1e-6)). Returns total.
 */
export function refClipGradNorm(grads: readonly Float64Array[], maxNorm: number): number {
  let sq = 0;
  for (const g of grads) for (const x of g) sq += x * x;
  const total = Math.sqrt(sq);
  const coef = Math.min(1, maxNorm / (total + 1e-6));
  for (const g of grads) for (let i = 0; i < g.length; i++) g[i] = g[i]! * coef;
  return total;
}
