// How long to sleep before polling for the GPU: each wait's measured time, keyed by what was queued
// (kernels and grids since the last wait), so the same step sleeps through most of its expected time
// the next time instead of polling (polling steals CPU cores from software adapters such as lavapipe).

const FNV_OFFSET = 0x811c9dc5;

/** The queued work since the last wait and the measured time of earlier waits. */
export class WaitPacer {
  /** Measured milliseconds of earlier waits, by queued work: the same step takes about the same time again. */
  private readonly history = new Map<string, { ms: number; seen: number }>();
  /** Running hash of the dispatches queued since the last wait. */
  private workHash = FNV_OFFSET;
  /** When the last idle sleep ended (0 when the last wait did not sleep). */
  private wokeAt = 0;
  /** Dispatches submitted since the last completed wait, and when the first of them was submitted. */
  private unsyncedDispatches = 0;
  private unsyncedSince = 0;

  /** Folds one queued command (its label and grid) into the work since the last wait. */
  queued(label: string, x: number, y: number, z: number): void {
    this.workHash = hashWork(this.workHash, label, x, y, z);
  }

  /** Notes a submit of `dispatches` commands. */
  submitted(dispatches: number): void {
    if (this.unsyncedDispatches === 0) this.unsyncedSince = now();
    this.unsyncedDispatches += dispatches;
  }

  /**
   * Sleeps through most of the time the same queued work took before (seen at least twice, so a
   * first run's shader compiles do not count), then lets the caller poll for the rest.
   */
  async idleWait(): Promise<void> {
    const record = this.history.get(this.key());
    this.wokeAt = 0;
    if (record === undefined || record.seen < 2) return;
    const remaining = record.ms * 0.85 - (now() - this.unsyncedSince);
    if (remaining > 2) {
      await new Promise((r) => setTimeout(r, remaining));
      this.wokeAt = now();
    }
  }

  /** Records the time of the wait that just ended and starts counting the next one's work. */
  recordWait(): void {
    if (this.unsyncedDispatches > 0) {
      const key = this.key();
      const t = now();
      const measured = t - this.unsyncedSince;
      const record = this.history.get(key);
      // Work that was already done when the sleep ended took an unknown, shorter time: step the
      // estimate down by a tenth (a few waits find the edge, where only a short poll remains).
      // Otherwise the poll saw the real end: keep the fastest time seen.
      const overslept = this.wokeAt > 0 && t - this.wokeAt < 1;
      const ms = record === undefined ? measured : overslept ? Math.min(record.ms, measured) * 0.9 : Math.min(record.ms, measured);
      if (this.history.size >= 1024) this.history.clear();
      this.history.set(key, { ms, seen: (record?.seen ?? 0) + 1 });
    }
    this.unsyncedDispatches = 0;
    this.workHash = FNV_OFFSET;
  }

  private key(): string {
    return `${this.unsyncedDispatches}:${this.workHash}`;
  }
}

/** FNV-1a of the labels seen, by label (a few constant strings): hashing one is a lookup after the first time. */
const labelHashes = new Map<string, number>();

/** FNV-1a over a dispatch's label (its own hash) and grid, folded into the running hash of queued work. */
function hashWork(hash: number, label: string, x: number, y: number, z: number): number {
  let l = labelHashes.get(label);
  if (l === undefined) {
    l = FNV_OFFSET;
    for (let i = 0; i < label.length; i++) l = mix(l, label.charCodeAt(i));
    if (labelHashes.size >= 4096) labelHashes.clear();
    labelHashes.set(label, l);
  }
  return mix(mix(mix(mix(hash, l), x), y), z);
}

function mix(h: number, v: number): number {
  h = Math.imul(h ^ (v & 0xffff), 0x01000193) >>> 0;
  return Math.imul(h ^ (v >>> 16), 0x01000193) >>> 0;
}

function now(): number {
  return globalThis.performance.now();
}
