// The order in which a call asks the runtime for the optimizers' dispatches and for readbacks, seen at the
// runtime itself: a readback submits everything encoded before it, so a dispatch listed before a read ran first.
import { getRuntime } from '@huatuo/tensor/internal';

/** Runs `fn`, listing in order each dispatch whose label is in `labels` and 'read' for each readback it starts. */
export async function dispatchOrder<R>(labels: readonly string[], fn: () => Promise<R>): Promise<{ result: R; order: string[] }> {
  const rt = getRuntime();
  const order: string[] = [];
  const dispatch = rt.dispatch.bind(rt);
  const read = rt.read.bind(rt);
  rt.dispatch = (d) => {
    if (labels.includes(d.label)) order.push(d.label);
    dispatch(d);
  };
  rt.read = (buffer, offsetBytes, bytes) => {
    order.push('read');
    return read(buffer, offsetBytes, bytes);
  };
  try {
    return { result: await fn(), order };
  } finally {
    Reflect.deleteProperty(rt, 'dispatch');
    Reflect.deleteProperty(rt, 'read');
  }
}
