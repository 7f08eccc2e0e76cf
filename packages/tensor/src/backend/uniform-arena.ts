// The uniform blocks of one submit's dispatches, packed at aligned offsets into one buffer and written
// once just before the submit. Kernels bind it with a dynamic offset, so a dispatch whose parameters
// change every step (a growing KV cache) needs neither a new buffer nor a new bind group.

/** Bytes of the arena: 256 dispatches' uniform blocks at the common 256-byte offset alignment. */
const ARENA_BYTES = 64 * 1024;

/** One buffer of uniform blocks, refilled for each submit (the queue orders each write after the earlier submits). */
export class UniformArena {
  readonly buffer: GPUBuffer;
  private readonly staging = new Uint8Array(ARENA_BYTES);
  private readonly alignment: number;
  private used = 0;

  constructor(device: GPUDevice) {
    this.alignment = Math.max(16, device.limits.minUniformBufferOffsetAlignment);
    this.buffer = device.createBuffer({ size: ARENA_BYTES, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, label: 'uniform arena' });
  }

  /** Bytes a uniform block of `params` binds: its length rounded up to 16 (WGSL's uniform struct alignment), at least 16. */
  static bindingSize(params: ArrayBuffer): number {
    return Math.max(16, Math.ceil(params.byteLength / 16) * 16);
  }

  /** Copies `params` into the next slot and returns its offset, or -1 when the arena is full (submit, then retry). */
  push(params: ArrayBuffer): number {
    const offset = this.used;
    const end = offset + UniformArena.bindingSize(params);
    if (end > ARENA_BYTES) return -1;
    this.staging.set(new Uint8Array(params), offset);
    this.staging.fill(0, offset + params.byteLength, end);
    this.used = Math.ceil(end / this.alignment) * this.alignment;
    return offset;
  }

  /** Writes the filled slots to the GPU (call right before submitting the commands that read them) and empties the arena. */
  upload(queue: GPUQueue): void {
    if (this.used === 0) return;
    queue.writeBuffer(this.buffer, 0, this.staging, 0, Math.min(this.used, ARENA_BYTES));
    this.used = 0;
  }
}
