// How long to sleep before polling for the GPU: each wait's measured time, keyed by what was queued
// (kernels and grids since the previous wait was submitted), so the same step sleeps through most of its
// expected time the next time instead of polling (polling steals CPU cores from software adapters such
// as lavapipe). Several waits may be in flight at once: each holds a ticket naming its own work.

const FNV_OFFSET = 0x811c9dc5;

/** One wait's work: what was submitted since the previous ticket, taken when the wait's own copy or sync submits. */
export interface WaitTicket {
  /** Dispatches submitted and the hash of the commands queued. */
  readonly key: string;
  readonly dispatches: number;
  /** When the first of them was submitted. */
  readonly since: number;
  /** When this wait's idle sleep ended (0 when it did not sleep). */
  wokeAt: number;
}

/** The work queued since the last ticket and the measured time of earlier waits. */
export class WaitPacer {
  /** Measured milliseconds of earlier waits, by queued work: the same step takes about the same time again. */
  private readonly history = new Map<string, { ms: number; seen: number }>();
  /** Running hash of the dispatches queued since the last ticket. */
  private workHash = FNV_OFFSET;
  /** Dispatches submitted since the last ticket, and when the first of them was submitted. */
  private unsyncedDispatches = 0;
  private unsyncedSince = 0;
  /** The latest ticket with work whose wait has not ended. */
  private inFlight: WaitTicket | null = null;

  /** Folds one queued command (its label and grid) into the work since the last ticket. */
  queued(label: string, x: number, y: number, z: number): void {
    this.workHash = hashWork(this.workHash, label, x, y, z);
  }

  /** Notes a replayed step's dispatches queued at once, by the hash of its commands. */
  queuedStep(hash: number): void {
    this.workHash = mix(this.workHash, hash);
  }

  /** Notes a submit of `dispatches` commands. */
  submitted(dispatches: number): void {
    if (this.unsyncedDispatches === 0) this.unsyncedSince = now();
    this.unsyncedDispatches += dispatches;
  }

  /**
   * The work submitted since the last ticket, for a wait whose commands were just submitted; the next
   * ticket counts only what comes after. Take it synchronously after the submit, before any await.
   */
  ticket(): WaitTicket {
    // A wait with no work of its own (a sync right after a read) waits for the latest work still in
    // flight: it sleeps as that work's wait does, and records nothing.
    if (this.unsyncedDispatches === 0 && this.inFlight !== null) return { key: this.inFlight.key, dispatches: 0, since: this.inFlight.since, wokeAt: 0 };
    const t = { key: `${this.unsyncedDispatches}:${this.workHash}`, dispatches: this.unsyncedDispatches, since: this.unsyncedSince, wokeAt: 0 };
    this.unsyncedDispatches = 0;
    this.workHash = FNV_OFFSET;
    if (t.dispatches > 0) this.inFlight = t;
    return t;
  }

  /**
   * Sleeps through most of the time the ticket's work took before (seen at least twice, so a first
   * run's shader compiles do not count), then lets the caller poll for the rest.
   */
  async idleWait(ticket: WaitTicket): Promise<void> {
    const record = this.history.get(ticket.key);
    ticket.wokeAt = 0;
    if (record === undefined || record.seen < 2) return;
    const remaining = record.ms * 0.85 - (now() - ticket.since);
    if (remaining > 2) {
      await new Promise((r) => setTimeout(r, remaining));
      ticket.wokeAt = now();
    }
  }

  /** Records the time of the ticket's wait, which just ended. */
  recordWait(ticket: WaitTicket): void {
    if (this.inFlight === ticket) this.inFlight = null;
    if (ticket.dispatches === 0) return;
    const t = now();
    const measured = t - ticket.since;
    const record = this.history.get(ticket.key);
    // Work that was already done when the sleep ended took an unknown, shorter time: step the
    // estimate down by a tenth (a few waits find the edge, where only a short poll remains).
    // Otherwise the poll saw the real end: keep the fastest time seen.
    const overslept = ticket.wokeAt > 0 && t - ticket.wokeAt < 1;
    const ms = record === undefined ? measured : overslept ? Math.min(record.ms, measured) * 0.9 : Math.min(record.ms, measured);
    if (this.history.size >= 1024) this.history.clear();
    this.history.set(ticket.key, { ms, seen: (record?.seen ?? 0) + 1 });
  }

  /** The measured milliseconds and count of earlier waits on the work of this key (tests). */
  recorded(key: string): { ms: number; seen: number } | undefined {
    return this.history.get(key);
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
