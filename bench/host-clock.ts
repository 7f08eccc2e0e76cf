// Host time of a stretch of GPU work: the wall and main-thread CPU time spent outside the runtime's
// readbacks and syncs (the waits for the GPU), with the runtime's counters, between two snapshots.
import { runtimeStats, type RuntimeStats } from '@huatuo/tensor';
import { getRuntime } from '@huatuo/tensor/internal';
import { readFileSync } from 'node:fs';

/** Host figures per unit of work (a token, a step) between two snapshots. */
export interface HostCost {
  /** Wall milliseconds. */
  ms: number;
  /** Host milliseconds: wall time less the time spent awaiting the GPU. */
  hostMs: number;
  /**
   * The main thread's CPU milliseconds outside those waits (Linux; else null): unlike hostMs, not
   * inflated while other processes take the cores.
   */
  cpuMs: number | null;
  /** Milliseconds awaiting readbacks and syncs. */
  waitMs: number;
  /**
   * CPU milliseconds of the process's other threads (Linux; else null): on a CPU adapter such as
   * lavapipe, mostly its execution of the kernels (the GPU work), whatever else shares the cores.
   */
  otherCpuMs: number | null;
  dispatches: number;
  submits: number;
  readbacks: number;
  /** Bind groups and storage buffers created (NaN where runtimeStats has no bindGroups). */
  bindGroups: number;
  buffersCreated: number;
  /** Host microseconds per dispatch (from cpuMs where known, else hostMs). */
  usPerDispatch: number;
}

/** A point in time: wall and CPU clocks, the waits so far, the runtime's counters. */
export interface HostSnapshot {
  t: number;
  cpu: number | null;
  /** The whole process's CPU milliseconds. */
  processCpu: number;
  waited: number;
  waitedCpu: number;
  stats: RuntimeStats;
}

/**
 * Times waiting for the runtime's readbacks and syncs until restored: from when the host, with one
 * outstanding, yields to the event loop until one settles (which resumes it). With reads overlapping
 * (decoding one step ahead), encoding while an earlier read is outstanding stays host time.
 */
export class HostClock {
  private waited = 0;
  private waitedCpu = 0;
  /** When the host last yielded with a read or sync outstanding, and its thread's CPU then. */
  private idleSince: { t: number; cpu: number | null } | null = null;
  private readonly restore: () => void;

  constructor() {
    const rt = getRuntime();
    const read = rt.read.bind(rt);
    const sync = rt.sync.bind(rt);
    const timed = <T>(p: Promise<T>): Promise<T> => {
      let settled = false;
      // Runs once the host's current task and its microtasks are done: the host is idle from then.
      setImmediate(() => {
        if (!settled) this.idleSince ??= { t: performance.now(), cpu: threadCpuMs() };
      });
      return p.finally(() => {
        settled = true;
        if (this.idleSince === null) return;
        this.waited += performance.now() - this.idleSince.t;
        this.waitedCpu += (threadCpuMs() ?? 0) - (this.idleSince.cpu ?? 0);
        this.idleSince = null;
      });
    };
    rt.read = (buffer, offset, bytes) => timed(read(buffer, offset, bytes));
    rt.sync = () => timed(sync());
    this.restore = () => {
      rt.read = read;
      rt.sync = sync;
    };
  }

  snapshot(): HostSnapshot {
    const u = process.cpuUsage();
    return { t: performance.now(), cpu: threadCpuMs(), processCpu: (u.user + u.system) / 1000, waited: this.waited, waitedCpu: this.waitedCpu, stats: runtimeStats() };
  }

  /** Figures per unit over `n` units of work from `first` to `last`. */
  static cost(first: HostSnapshot, last: HostSnapshot, n: number): HostCost {
    const ms = (last.t - first.t) / n;
    const waitMs = (last.waited - first.waited) / n;
    const cpuMs = last.cpu === null || first.cpu === null ? null : (last.cpu - first.cpu - (last.waitedCpu - first.waitedCpu)) / n;
    const per = (k: keyof RuntimeStats) => ((last.stats[k] ?? NaN) - (first.stats[k] ?? NaN)) / n;
    const dispatches = per('dispatches');
    return {
      ms,
      hostMs: ms - waitMs,
      cpuMs,
      waitMs,
      otherCpuMs: last.cpu === null || first.cpu === null ? null : (last.processCpu - first.processCpu - (last.cpu - first.cpu)) / n,
      dispatches,
      submits: per('submits'),
      readbacks: per('readbacks'),
      bindGroups: per('bindGroups'),
      buffersCreated: per('buffersCreated'),
      usPerDispatch: ((cpuMs ?? ms - waitMs) * 1000) / dispatches,
    };
  }

  /** Puts the runtime's own readback and sync back. */
  dispose(): void {
    this.restore();
  }
}

/** One line of figures per unit (`unit`: token, step). */
export function formatCost(c: HostCost, unit: string): string {
  return (
    `${c.ms.toFixed(2)} ms/${unit} = host ${c.hostMs.toFixed(2)} (CPU ${c.cpuMs?.toFixed(2) ?? '-'}) + wait ${c.waitMs.toFixed(2)} (other threads' CPU ${c.otherCpuMs?.toFixed(2) ?? '-'}); ` +
    `${c.dispatches.toFixed(1)} dispatches, ${c.submits.toFixed(2)} submits, ${c.readbacks.toFixed(2)} readbacks, ` +
    `${c.bindGroups.toFixed(2)} bind groups and ${c.buffersCreated.toFixed(2)} buffers created per ${unit}; ${c.usPerDispatch.toFixed(1)} us/dispatch`
  );
}

/** CPU milliseconds the calling (main) thread has run, from Linux's /proc/thread-self/schedstat; null elsewhere. */
function threadCpuMs(): number | null {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]) / 1e6;
  } catch {
    return null;
  }
}
