// Whether ops record the graph for backward: off inside noGrad() and inside op implementations.

let enabled = true;

/** Whether ops currently record the autograd graph. */
export function isGradEnabled(): boolean {
  return enabled;
}

/** Turns graph recording on or off; returns the previous setting. */
export function setGradEnabled(on: boolean): boolean {
  const previous = enabled;
  enabled = on;
  return previous;
}

/**
 * Runs `fn` without recording the autograd graph (inference, optimizer updates).
 * @example
 * const logits = noGrad(() => model.forward(ids));
 */
export function noGrad<R>(fn: () => R): R {
  const previous = setGradEnabled(false);
  try {
    return fn();
  } finally {
    setGradEnabled(previous);
  }
}
