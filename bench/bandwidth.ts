// Shared helpers of the memory-bound benchmark rows: a row timed by the kernels' timestamp queries and
// reported as GB/s over its minimal traffic, and the release of gradients between runs.
import { Profiler, type Tensor } from '@huatuo/tensor';
import type { BenchContext } from './kernels.bench.js';

/** Disposes and clears the gradients of `ts`, so the next run starts without accumulated ones. */
export const freeGrads = (...ts: Tensor[]): void => {
  for (const t of ts) {
    t.grad?.dispose();
    t.grad = null;
  }
};

/**
 * One memory-bound row: GB/s over `bytes` of minimal traffic and the fraction of the copy kernel's
 * read+write GB/s. Timed as the roofline is, by the kernels' timestamp queries, so the host's waits
 * (sleeps sized by earlier work with the same dispatch count) do not enter. One untimed run first, then the median of `ctx.reps`.
 */
export async function bandwidthRow(ctx: BenchContext, bench: string, impl: string, shape: string, bytes: number, traffic: string, fn: () => Promise<void>): Promise<void> {
  await fn();
  const samples: number[] = [];
  for (let i = 0; i < ctx.reps; i++) {
    const p = new Profiler();
    p.start();
    const run = fn();
    const r = await p.stop();
    await run;
    samples.push(r.source === 'timestamp-query' ? r.gpuMs : r.wallMs);
  }
  const ms = samples.sort((a, b) => a - b)[Math.floor(samples.length / 2)]!;
  const gbps = bytes / ms / 1e6;
  ctx.push({ bench, impl, dtype: 'f32', shape, ms, gflops: null, gbps, roofline: gbps / ctx.roof.copyGbps, note: `${traffic}; kernel time by timestamp queries` });
}
