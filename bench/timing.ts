// Timing helpers of the benchmarks: every sample ends when the GPU work is done (a readback of a few
// values), the first run (compiles) is untimed, and the median of the samples is reported.

/** Median milliseconds of `fn` over `reps` runs after `warmup` untimed runs. */
export async function timeMedian(fn: () => Promise<unknown>, reps: number, warmup = 1): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const samples: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    samples.push(performance.now() - t0);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)]!;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One benchmark row, as written to bench/results/<adapter>-<date>.json. */
export interface Row {
  bench: string;
  impl: string;
  dtype: string;
  shape: string;
  ms: number;
  gflops: number | null;
  gbps: number | null;
  adapter: string;
  /** Fraction of the measured roofline (FMA-bound for compute, copy read bandwidth for memory). */
  roofline?: number | null;
  note?: string;
}
