// Reverse-mode differentiation: a topological order of the recorded graph, walked backwards;
// gradients of a tensor used twice are summed; leaves accumulate into `.grad`; the graph is
// freed afterwards.
import { AutogradError, ShapeError, fmtShape } from './errors.js';
import { setGradEnabled } from './grad-mode.js';
import { runBinary, runFill, runUnary } from './ops/launch.js';
import { keep, startScope, type Scope } from './scope.js';
import { storageBytes, sumVersions, type Tensor } from './tensor.js';

/** Options of {@link backward}. */
export interface BackwardOptions {
  /** Keep the graph so backward can run again through it. */
  retainGraph?: boolean;
}

function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  const stack: [Tensor, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    const inputs = t.node?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const next = inputs[i]!;
      if (!visited.has(next) && (next.node || next.requiresGrad)) {
        visited.add(next);
        stack.push([next, 0]);
      } else if (!next.node && next.graphFreed) {
        throw new AutogradError(
          `backward: ${t} was computed by '${t.node!.op}' from ${next}, whose graph an earlier backward() freed, so the gradient would miss that part; ` +
            'pass { retainGraph: true } to the earlier backward, or sum the losses and call backward once',
        );
      }
    } else {
      order.push(t);
      stack.pop();
    }
  }
  return order;
}

/**
 * Whether a leaf may take `g` as its `.grad` without a copy (PyTorch's AccumulateGrad steals the
 * same way): `g` was made by this backward and nothing else holds it (`pending` says whether it
 * still flows elsewhere), and it is a whole contiguous storage, as `.grad` always is.
 */
function canAdopt(g: Tensor, scope: Scope, pending: boolean): boolean {
  if (pending || !scope.owns(g) || !g.isContiguous || g.offset !== 0) return false;
  const s = g.storage('backward');
  return !s.shared && s.bytes === storageBytes(g.shape, g.dtype);
}

/** Adds `g` into a leaf's `.grad`: adopted or copied on first use, then summed. */
function accumulateLeaf(leaf: Tensor, g: Tensor, scope: Scope, pending: boolean): void {
  const converted = g.dtype === leaf.dtype ? g : runUnary('backward', g, 'v', 0, leaf.dtype);
  if (!leaf.grad) {
    const adopt = canAdopt(converted, scope, pending && converted === g);
    leaf.grad = keep(adopt ? converted : runUnary('backward', converted, 'v'));
  } else {
    const sum = runBinary('backward', leaf.grad, converted, 'a + b');
    leaf.grad.dispose('replaced by the accumulated gradient');
    leaf.grad = keep(sum);
  }
}

/**
 * Computes gradients of `root` with respect to every leaf that requires them. A non-scalar root
 * needs `grad` (the gradient of some scalar with respect to root).
 * @example
 * const loss = mean(mul(sub(pred, y), sub(pred, y)));
 * backward(loss); // w.grad now holds dloss/dw
 */
export function backward(root: Tensor, grad?: Tensor, options: BackwardOptions = {}): void {
  if (!root.node && root.graphFreed) {
    throw new AutogradError(
      `backward: the graph of ${root} was freed by an earlier backward(); pass { retainGraph: true } to that call to run backward again`,
    );
  }
  if (!root.node && !root.requiresGrad) {
    throw new AutogradError(
      `backward: ${root} was not computed from any tensor that requires a gradient (or was computed under noGrad)`,
    );
  }
  if (!grad && root.size !== 1) {
    throw new AutogradError(`backward: ${root} is not a scalar; pass the gradient of the output: backward(out, grad)`);
  }
  if (grad && (grad.rank !== root.rank || grad.shape.some((d, i) => d !== root.shape[i]))) {
    throw new ShapeError(`backward: gradient ${fmtShape(grad.shape)} does not match output ${fmtShape(root.shape)}`);
  }
  const order = topologicalOrder(root);
  for (const t of order) {
    const node = t.node;
    if (!node) continue;
    for (const s of node.saved) {
      if (s.disposed) {
        throw new AutogradError(
          `backward: a tensor saved by '${node.op}' for backward was disposed; run backward inside the tidy() that built the graph`,
        );
      }
    }
    if (sumVersions(node.saved) !== node.savedVersions) {
      throw new AutogradError(
        `backward: one of the tensors '${node.op}' saved for backward (${node.saved.join(', ')}) was modified by an in-place operation (copyInto, an optimizer step, ...) ` +
          `after '${node.op}' ran, so its gradient would be wrong; write into a copy instead (cast(x, x.dtype) makes one), or run backward before the write`,
      );
    }
  }
  const previous = setGradEnabled(false);
  const scope = startScope();
  try {
    const grads = new Map<Tensor, Tensor>();
    // A gradient of another dtype is converted to the output's, as torch does.
    const rootGrad = !grad ? runFill(root.shape, root.dtype, 1, null) : grad.dtype === root.dtype ? grad : runUnary('backward', grad, 'v', 0, root.dtype);
    grads.set(root, rootGrad);
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i]!;
      const g = grads.get(t);
      if (!g) continue;
      grads.delete(t);
      if (!t.node) {
        if (t.requiresGrad) accumulateLeaf(t, g, scope, [...grads.values()].includes(g));
        continue;
      }
      const inputGrads = t.node.backward(g);
      t.node.inputs.forEach((input, k) => {
        const gi = inputGrads[k];
        if (!gi || !(input.node || input.requiresGrad)) return;
        if (gi.rank !== input.rank || gi.shape.some((d, j) => d !== input.shape[j])) {
          throw new Error(`internal: '${t.node!.op}' backward gave ${fmtShape(gi.shape)} for input ${fmtShape(input.shape)}`);
        }
        const existing = grads.get(input);
        grads.set(input, existing ? runBinary('backward', existing, gi, 'a + b') : gi);
      });
      if (!options.retainGraph) {
        t.node = null;
        t.graphFreed = true;
      }
      if (g !== grad && ![...grads.values()].includes(g)) g.dispose('gradient consumed by backward');
    }
  } finally {
    setGradEnabled(previous);
    scope.end();
  }
}
