// Activation checkpointing (torch.utils.checkpoint): a block's forward runs without keeping its
// activations; only its inputs are saved, and backward runs the block again, recording, to get them.
import { backward } from './autograd.js';
import { AutogradError } from './errors.js';
import { setGradEnabled } from './grad-mode.js';
import { defineOp, type OpContext } from './ops/define.js';
import { trackTensor } from './scope.js';
import type { Tensor } from './tensor.js';

/** A block's forward over its tensor inputs; must compute the same values each time it runs. */
export type CheckpointFn = (...inputs: Tensor[]) => Tensor;

const checkpointOp = defineOp({
  name: 'checkpoint',
  forward(ctx: OpContext<Tensor[], { fn: CheckpointFn; parameters: number }>, fn: CheckpointFn, inputs: Tensor[], parameters: readonly Tensor[]) {
    ctx.saved.push(...inputs);
    ctx.data.fn = fn;
    ctx.data.parameters = parameters.length;
    return fn(...inputs);
  },
  // d(out)/d(input) and d(out)/d(parameter) are those of fn's own graph, rebuilt here: the
  // parameters' gradients accumulate into their .grad directly (as leaves of that graph).
  backward(ctx, grad) {
    const { fn } = ctx.data;
    const inputs = ctx.saved.map((x, i) => (ctx.needsGrad(i) ? x.detach().requireGrad() : x.detach()));
    const previous = setGradEnabled(true);
    let out: Tensor;
    try {
      out = fn(...inputs);
    } finally {
      setGradEnabled(previous);
    }
    if (out.shape.length !== grad.shape.length || out.shape.some((d, i) => d !== grad.shape[i])) {
      throw new AutogradError(`checkpoint: the recomputed output is [${out.shape.join(', ')}], the first run gave [${grad.shape.join(', ')}]; fn must be deterministic`);
    }
    backward(out, grad);
    const grads: (Tensor | null)[] = inputs.map((x) => {
      const g = x.grad;
      x.grad = null;
      if (g) trackTensor(g); // freed with the outer backward's scope, or adopted by a leaf there
      return g;
    });
    for (let i = 0; i < ctx.data.parameters; i++) grads.push(null);
    return grads;
  },
});

/**
 * Runs `fn(...inputs)` keeping only `inputs` for backward, which runs `fn` again to rebuild its
 * graph (torch.utils.checkpoint with use_reentrant=False): activation memory of one block instead
 * of all. `fn` must draw the same random numbers both times (pass dropout seeds in, do not draw
 * them inside). `parameters` lists the leaves inside `fn` that need gradients (LoRA weights), so
 * the block stays on the graph even when no input needs a gradient; their gradients accumulate
 * into `.grad` as without checkpointing.
 * @example
 * const y = checkpoint((h) => layer.forward(h, seed), [x], [lora.A, lora.B]);
 */
export function checkpoint(fn: CheckpointFn, inputs: readonly Tensor[], parameters: readonly Tensor[] = []): Tensor {
  return checkpointOp(fn, [...inputs], [...parameters]);
}
