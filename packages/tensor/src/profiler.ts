// A profiler of GPU kernels: with `timestamp-query` each dispatch gets its own timed pass and the
// report lists every kernel label's total GPU time and count; without it, counts and wall time only.
import { getRuntime } from './backend/context.js';
import type { Runtime } from './backend/runtime.js';

/** One kernel label's share of a profiled step. */
export interface KernelTime {
  label: string;
  /** Total GPU milliseconds of this label's dispatches (null without timestamp-query). */
  ms: number | null;
  count: number;
}

/** What {@link Profiler.stop} returns. */
export interface ProfileReport {
  source: 'timestamp-query' | 'wall-clock';
  /** Wall-clock milliseconds from start() to the end of the GPU work. */
  wallMs: number;
  /** Sum of the kernels' GPU time (timestamp-query), or the wall time. */
  gpuMs: number;
  /** By label, slowest first. */
  kernels: KernelTime[];
}

const QUERIES_PER_SET = 2048;
const MAX_SETS = 16;

/**
 * Begin and end timestamps of each dispatch it is hooked to (a pass of its own each), up to
 * MAX_SETS * QUERIES_PER_SET / 2 dispatches; the rest are counted without times.
 */
class TimestampLog {
  private sets: GPUQuerySet[] = [];
  readonly labels: string[] = [];

  constructor(private readonly rt: Runtime) {}

  /** The runtime's pass hook: records `label` and returns the pass's timestamp writes while sets remain. */
  readonly hook = (label: string): GPUComputePassTimestampWrites | undefined => {
    const i = this.labels.length;
    this.labels.push(label);
    const set = Math.floor((2 * i) / QUERIES_PER_SET);
    if (set >= MAX_SETS) return undefined;
    if (set === this.sets.length) this.sets.push(this.rt.device.createQuerySet({ type: 'timestamp', count: QUERIES_PER_SET }));
    const base = (2 * i) % QUERIES_PER_SET;
    return { querySet: this.sets[set]!, beginningOfPassWriteIndex: base, endOfPassWriteIndex: base + 1 };
  };

  /** GPU milliseconds of each timed dispatch, in order (after the work is submitted); frees the query sets. */
  async resolve(): Promise<number[]> {
    const out: number[] = [];
    const timed = Math.min(this.labels.length, (MAX_SETS * QUERIES_PER_SET) / 2);
    try {
      for (let s = 0; s < this.sets.length; s++) {
        const n = Math.min(QUERIES_PER_SET, 2 * timed - s * QUERIES_PER_SET);
        const resolve = this.rt.device.createBuffer({ size: n * 8, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
        this.rt.withEncoder((enc) => enc.resolveQuerySet(this.sets[s]!, 0, n, resolve, 0));
        const ticks = new BigUint64Array(await this.rt.read(resolve, 0, n * 8));
        resolve.destroy();
        for (let q = 0; q + 1 < n; q += 2) out.push(Number(ticks[q + 1]! - ticks[q]!) / 1e6);
      }
    } finally {
      for (const set of this.sets) set.destroy();
      this.sets = [];
    }
    return out;
  }
}

/**
 * Records the kernels dispatched between `start()` and `stop()`.
 * @example
 * const p = new Profiler(); p.start(); step(); const report = await p.stop();
 * for (const k of report.kernels) console.log(k.label, k.ms, k.count);
 */
export class Profiler {
  private readonly rt: Runtime;
  private log: TimestampLog | null = null;
  private labels: string[] = [];
  private started = 0;
  private readonly timestamps: boolean;

  constructor() {
    this.rt = getRuntime();
    this.timestamps = this.rt.info.features.has('timestamp-query');
  }

  /** Starts recording (flushes work queued before, so it is not counted). */
  start(): void {
    if (this.rt.passHook) throw new Error('a Profiler is already recording on this device; stop it first');
    this.rt.flush();
    this.labels = [];
    this.started = performance.now();
    if (this.timestamps) {
      this.log = new TimestampLog(this.rt);
      this.labels = this.log.labels;
      this.rt.passHook = this.log.hook;
    } else {
      this.rt.passHook = (label) => void this.labels.push(label);
    }
  }

  /** Stops recording, waits for the GPU and returns the per-kernel report. */
  async stop(): Promise<ProfileReport> {
    this.rt.passHook = null;
    await this.rt.sync();
    const wallMs = performance.now() - this.started;
    const byLabel = new Map<string, KernelTime>();
    for (const label of this.labels) {
      const k = byLabel.get(label) ?? { label, ms: this.timestamps ? 0 : null, count: 0 };
      k.count++;
      byLabel.set(label, k);
    }
    let gpuMs = wallMs;
    if (this.log !== null && this.labels.length > 0) {
      gpuMs = 0;
      const times = await this.log.resolve();
      times.forEach((ms, i) => {
        byLabel.get(this.labels[i]!)!.ms! += ms;
        gpuMs += ms;
      });
    }
    this.log = null;
    const kernels = [...byLabel.values()].sort((a, b) => (b.ms ?? 0) - (a.ms ?? 0) || b.count - a.count);
    return { source: this.timestamps ? 'timestamp-query' : 'wall-clock', wallMs, gpuMs, kernels };
  }
}

/**
 * GPU milliseconds of the dispatches `encode` makes (it must encode synchronously), by timestamp queries,
 * after waiting for them; null without timestamp-query or while a {@link Profiler} records (the caller
 * then has the wall time). Only `encode`'s dispatches are timed: the hook is removed before it returns.
 */
export async function timeDispatches(rt: Runtime, encode: () => void): Promise<number | null> {
  if (!rt.info.features.has('timestamp-query') || rt.passHook !== null) {
    encode();
    await rt.sync();
    return null;
  }
  const log = new TimestampLog(rt);
  rt.passHook = log.hook;
  try {
    encode();
  } finally {
    rt.passHook = null;
  }
  await rt.sync();
  if (log.labels.length > (MAX_SETS * QUERIES_PER_SET) / 2) {
    await log.resolve();
    return null;
  }
  return (await log.resolve()).reduce((t, ms) => t + ms, 0);
}

/**
 * Runs `fn` under a {@link Profiler} and returns its result with the report.
 * @example const { report } = await profile(() => trainStep(batch));
 */
export async function profile<T>(fn: () => T | Promise<T>): Promise<{ result: T; report: ProfileReport }> {
  const p = new Profiler();
  p.start();
  let result: T;
  try {
    result = await fn();
  } catch (e) {
    await p.stop();
    throw e;
  }
  return { result, report: await p.stop() };
}
