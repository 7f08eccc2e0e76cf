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
 * Records the kernels dispatched between `start()` and `stop()`.
 * @example
 * const p = new Profiler(); p.start(); step(); const report = await p.stop();
 * for (const k of report.kernels) console.log(k.label, k.ms, k.count);
 */
export class Profiler {
  private readonly rt: Runtime;
  private sets: GPUQuerySet[] = [];
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
    this.rt.passHook = (label) => {
      const i = this.labels.length;
      const set = Math.floor((2 * i) / QUERIES_PER_SET);
      if (!this.timestamps || set >= MAX_SETS) {
        this.labels.push(label);
        return undefined;
      }
      if (set === this.sets.length) this.sets.push(this.rt.device.createQuerySet({ type: 'timestamp', count: QUERIES_PER_SET }));
      this.labels.push(label);
      const base = (2 * i) % QUERIES_PER_SET;
      return { querySet: this.sets[set]!, beginningOfPassWriteIndex: base, endOfPassWriteIndex: base + 1 };
    };
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
    if (this.timestamps && this.sets.length > 0) {
      gpuMs = 0;
      const timed = Math.min(this.labels.length, (MAX_SETS * QUERIES_PER_SET) / 2);
      for (let s = 0; s < this.sets.length; s++) {
        const n = Math.min(QUERIES_PER_SET, 2 * timed - s * QUERIES_PER_SET);
        const resolve = this.rt.device.createBuffer({ size: n * 8, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
        this.rt.withEncoder((enc) => enc.resolveQuerySet(this.sets[s]!, 0, n, resolve, 0));
        const ticks = new BigUint64Array(await this.rt.read(resolve, 0, n * 8));
        resolve.destroy();
        for (let q = 0; q + 1 < n; q += 2) {
          const ms = Number(ticks[q + 1]! - ticks[q]!) / 1e6;
          const k = byLabel.get(this.labels[(s * QUERIES_PER_SET + q) / 2]!)!;
          k.ms = (k.ms ?? 0) + ms;
          gpuMs += ms;
        }
      }
      for (const set of this.sets) set.destroy();
      this.sets = [];
    }
    const kernels = [...byLabel.values()].sort((a, b) => (b.ms ?? 0) - (a.ms ?? 0) || b.count - a.count);
    return { source: this.timestamps ? 'timestamp-query' : 'wall-clock', wallMs, gpuMs, kernels };
  }
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
