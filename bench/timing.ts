// Timing helpers of the benchmarks: every case runs through benny (benchmark.js underneath) as an async
// case that ends when the GPU work is done (a readback of a few values), and the median of its samples
// is reported. Options are sized for lavapipe: few samples, no minimum time beyond one run per sample.
import { add, complete, cycle, suite } from 'benny';

/** One case of a suite: a name and an async function whose promise settles at GPU completion. */
export type Case = [name: string, fn: () => Promise<unknown>];

/** A case's timing from benny's samples. */
export interface Timing {
  /** Median ms per run over the samples. */
  ms: number;
  /** Mean ms per run (benny's `details.mean`). */
  meanMs: number;
  samples: number;
}

/**
 * Runs `cases` as one benny suite: `suite(name, add(case, fn, options)..., cycle(), complete())`.
 * benchmark.js takes at least `minSamples` samples (each `initCount` runs, growing only for runs under
 * its minimum time) and stops once `maxTime` seconds have passed; benny calls each case twice before
 * timing it (warm-up: compiles); calls are serialized so a probe never overlaps a timed run.
 */
export async function benchSuite(name: string, cases: Case[], minSamples: number): Promise<Map<string, Timing>> {
  const options = { minSamples: Math.max(2, minSamples), maxTime: 0.05, initCount: 1, delay: 0 };
  const entries = cases.map(([caseName, fn]) => {
    let chain: Promise<unknown> = Promise.resolve();
    const serial = async () => {
      chain = chain.then(fn, fn);
      await chain;
    };
    return add(caseName, serial, options);
  });
  const out = new Map<string, Timing>();
  await suite(
    name,
    ...entries,
    cycle(() => undefined),
    complete((summary) => {
      for (const r of summary.results) {
        const s = [...r.details.sampleResults].sort((a, b) => a - b);
        out.set(r.name, { ms: s[Math.floor(s.length / 2)]! * 1e3, meanMs: r.details.mean * 1e3, samples: s.length });
      }
    }),
  );
  return out;
}

/** Median milliseconds of `fn` over at least `reps` benny samples (a one-case suite named `name`). */
export async function timeMedian(fn: () => Promise<unknown>, reps: number, _warmup = 1, name = 'case'): Promise<number> {
  const r = await benchSuite(name, [[name, fn]], reps);
  return r.get(name)!.ms;
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
