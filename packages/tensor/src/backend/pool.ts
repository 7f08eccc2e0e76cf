// A pool of storage buffers keyed by rounded size: a training loop that allocates the same
// shapes every step reuses the same buffers instead of creating new ones. What it holds (buffers in
// use and pooled) stays within the most ever in use plus minPooledBytes: before creating a buffer it
// destroys pooled ones that would take it over, so cached buffers never push a run out of GPU memory.

const STORAGE_USAGE = 0x80 | 0x04 | 0x08; // STORAGE | COPY_SRC | COPY_DST

/** Rounds a byte size up to the pool's size classes (multiples of 256 B, then of 1/8 of the power of two). */
export function sizeClass(bytes: number): number {
  const b = Math.max(16, bytes);
  if (b <= 64 * 1024) return Math.ceil(b / 256) * 256;
  const step = 2 ** (Math.floor(Math.log2(b)) - 3);
  return Math.ceil(b / step) * step;
}

/**
 * Largest pooled buffer {@link BufferPool.acquire} hands out for a request of size class `size`: twice
 * the size up to 1 MiB (batches of varying length reuse each other's buffers), above it at most 1 MiB
 * or an eighth more, whichever is larger (the same or the next size class), so that large activations
 * and weights never hold up to twice the memory they use.
 */
export function maxReuseSize(size: number): number {
  return size + Math.min(size, Math.max(1 << 20, size / 8));
}

/** Counters of {@link BufferPool}. */
export interface PoolStats {
  /** Buffers handed out and not yet released. */
  buffersInUse: number;
  bytesInUse: number;
  /** Released buffers kept for reuse. */
  buffersPooled: number;
  bytesPooled: number;
  /** Buffers ever created by the pool (a flat number over a loop means no new allocations). */
  buffersCreated: number;
  /** Most bytes in use at once since the device was opened or since {@link BufferPool.resetPeak}. */
  peakBytes: number;
  /** Bytes the device holds for the pool: in use and pooled. */
  bytesAllocated: number;
  /**
   * Most bytes held at once (in use and pooled) since the device was opened or since
   * {@link BufferPool.resetPeak}: at most the most ever in use plus `minPooledBytes`.
   */
  peakAllocatedBytes: number;
}

/** The oldest buffer of a list (its last) that `avoid` does not refuse, taken out of the list. */
function take(list: GPUBuffer[] | undefined, avoid: ((buffer: GPUBuffer) => boolean) | undefined): GPUBuffer | undefined {
  if (list === undefined) return undefined;
  if (!avoid) return list.pop();
  for (let i = list.length - 1; i >= 0; i--) if (!avoid(list[i]!)) return list.splice(i, 1)[0];
  return undefined;
}

export class BufferPool {
  /**
   * Pooled buffers by size class, each list in descending order of creation: the oldest is handed out
   * first, so which buffer serves a request depends on which are free, not on the order they were
   * released in; a repeated step then binds the same buffers as the last time (and reuses its bind groups).
   */
  private readonly free = new Map<number, GPUBuffer[]>();
  /** Creation number of each buffer. */
  private readonly serials = new WeakMap<GPUBuffer, number>();
  /** Buffers handed out, with their sizes (reading `GPUBuffer.size` calls into the native binding). */
  private readonly inUse = new Map<GPUBuffer, number>();
  private bytesInUse = 0;
  /** Most bytes ever in use at once: the pool keeps at most this much (and at least minPooledBytes) for reuse. */
  private peakBytesInUse = 0;
  /** Like peakBytesInUse, but reset on request to measure one stretch of work. */
  private measuredPeak = 0;
  /** Most bytes in use and pooled at once, reset with measuredPeak. */
  private measuredAllocatedPeak = 0;
  private bytesPooled = 0;
  private buffersPooled = 0;
  private buffersCreated = 0;

  constructor(
    private readonly device: GPUDevice,
    /** Pooled bytes kept whatever the peak (small workloads churn less). */
    public minPooledBytes = 256 * 1024 ** 2,
  ) {}

  /** Pooled bytes above which released buffers are destroyed instead of kept. */
  get maxPooledBytes(): number {
    return Math.max(this.minPooledBytes, this.peakBytesInUse);
  }

  /**
   * A buffer of at least `bytes`: a pooled one of the same size class, else the smallest pooled
   * one up to {@link maxReuseSize}, else new. A new buffer first destroys the pooled ones (largest
   * first) that would take what the pool holds over the most ever in use plus `minPooledBytes`;
   * `beforeDestroy` then flushes the commands that may still use them. Pooled buffers that `avoid`
   * refuses are passed over.
   */
  acquire(bytes: number, beforeDestroy: () => void, avoid?: (buffer: GPUBuffer) => boolean): GPUBuffer {
    const size = sizeClass(bytes);
    let bufferSize = size;
    let buffer = take(this.free.get(size), avoid);
    if (!buffer) {
      const most = maxReuseSize(size);
      let best = Infinity;
      for (const [s, list] of this.free) if (s > size && s <= most && s < best && list.length > 0 && (!avoid || list.some((b) => !avoid(b)))) best = s;
      if (best !== Infinity) {
        buffer = take(this.free.get(best), avoid);
        bufferSize = best;
      }
    }
    if (buffer) {
      this.buffersPooled--;
      this.bytesPooled -= bufferSize;
    } else {
      this.makeRoom(size, beforeDestroy);
      buffer = this.device.createBuffer({ size, usage: STORAGE_USAGE });
      this.serials.set(buffer, this.buffersCreated++);
    }
    this.inUse.set(buffer, bufferSize);
    this.bytesInUse += bufferSize;
    this.peakBytesInUse = Math.max(this.peakBytesInUse, this.bytesInUse);
    this.measuredPeak = Math.max(this.measuredPeak, this.bytesInUse);
    this.measuredAllocatedPeak = Math.max(this.measuredAllocatedPeak, this.bytesInUse + this.bytesPooled);
    return buffer;
  }

  /** Destroys pooled buffers, largest first, until a new buffer of `size` keeps the pool within its bound. */
  private makeRoom(size: number, beforeDestroy: () => void): void {
    const limit = Math.max(this.peakBytesInUse, this.bytesInUse + size) + this.minPooledBytes;
    if (this.bytesInUse + this.bytesPooled + size <= limit) return;
    beforeDestroy();
    const sizes = [...this.free.keys()].sort((x, y) => y - x);
    for (const s of sizes) {
      const list = this.free.get(s)!;
      while (list.length > 0 && this.bytesInUse + this.bytesPooled + size > limit) {
        list.pop()!.destroy();
        this.buffersPooled--;
        this.bytesPooled -= s;
      }
      if (list.length === 0) this.free.delete(s);
      if (this.bytesInUse + this.bytesPooled + size <= limit) return;
    }
  }

  /**
   * Returns a buffer for reuse. Safe while queued commands still read it: later commands that
   * reuse it run after them on the same queue. `beforeDestroy` flushes pending commands first.
   */
  release(buffer: GPUBuffer, beforeDestroy: () => void): void {
    const size = this.inUse.get(buffer);
    if (size === undefined) throw new Error('internal: buffer released twice or not from this pool');
    this.inUse.delete(buffer);
    this.bytesInUse -= size;
    if (this.bytesPooled + size > this.maxPooledBytes) {
      beforeDestroy();
      buffer.destroy();
      return;
    }
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    const serial = this.serials.get(buffer)!;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.serials.get(list[mid]!)! > serial) lo = mid + 1;
      else hi = mid;
    }
    if (lo === list.length) list.push(buffer);
    else list.splice(lo, 0, buffer);
    this.buffersPooled++;
    this.bytesPooled += size;
  }

  /** The size class of a buffer handed out and not yet released, or undefined. */
  sizeOf(buffer: GPUBuffer): number | undefined {
    return this.inUse.get(buffer);
  }

  /** Destroys every pooled (free) buffer. */
  trim(beforeDestroy: () => void): void {
    if (this.buffersPooled === 0) return;
    beforeDestroy();
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
    this.buffersPooled = 0;
    this.bytesPooled = 0;
  }

  /** Starts measuring `peakBytes` afresh from the bytes in use now. */
  resetPeak(): void {
    this.measuredPeak = this.bytesInUse;
    this.measuredAllocatedPeak = this.bytesInUse + this.bytesPooled;
  }

  stats(): PoolStats {
    return {
      buffersInUse: this.inUse.size,
      bytesInUse: this.bytesInUse,
      buffersPooled: this.buffersPooled,
      bytesPooled: this.bytesPooled,
      buffersCreated: this.buffersCreated,
      peakBytes: this.measuredPeak,
      bytesAllocated: this.bytesInUse + this.bytesPooled,
      peakAllocatedBytes: this.measuredAllocatedPeak,
    };
  }
}
