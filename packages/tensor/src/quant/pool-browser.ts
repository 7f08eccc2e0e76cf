// A browser's QuantizePool (#quant-pool): quantization runs on the calling thread, whatever the thread count.
import { checkThreads, mainThreadPool, type QuantizePool } from './pool.js';

/** The most threads a default pool uses (a browser pool runs on the calling thread). */
export const maxDefaultQuantizeThreads = 1;

/** Threads a quantize pool uses by default: 1 in a browser. */
export function defaultQuantizeThreads(): number {
  return 1;
}

/** A pool quantizing on the calling thread (`threads` is checked, then ignored: a browser pool has no workers). */
export function openQuantizePool(threads: number = defaultQuantizeThreads()): QuantizePool {
  checkThreads(threads, 'openQuantizePool');
  return mainThreadPool();
}
