// The WebGPU runtime under the tensors: pipelines compiled once per kernel variant, buffers from
// a pool, many dispatches encoded per submit, uniforms cached by content, and readback that
// sleeps through most of the expected GPU time instead of polling (polling steals CPU cores
// from software adapters such as lavapipe).
import { DeviceError } from '../errors.js';
import type { DeviceInfo } from './device.js';
import { BufferPool, type PoolStats } from './pool.js';

/** A WGSL module ready to compile: its source with every define substituted. */
export interface CompiledKernel {
  key: string;
  pipeline: GPUComputePipeline;
}

/** One dispatch: a kernel variant, its uniform words, its storage buffers in binding order (from 1). */
export interface Dispatch {
  kernel: CompiledKernel;
  /** Uniform block at binding 0 (omit when the kernel has none). */
  params?: ArrayBuffer;
  buffers: readonly GPUBuffer[];
  workgroups: readonly [number, number?, number?];
  /** Label used by the profiler. */
  label: string;
}

/** Counters exposed by {@link memoryStats}. */
export interface RuntimeStats extends PoolStats {
  pipelines: number;
  dispatches: number;
  submits: number;
  readbacks: number;
  /** Bytes read back to the host. */
  readbackBytes: number;
  uniformBuffers: number;
}

const MAX_DISPATCHES_PER_SUBMIT = 256;
const MAX_CACHED_UNIFORMS = 8192;
const MAX_CACHED_BIND_GROUPS = 8192;

export class Runtime {
  readonly pool: BufferPool;
  private readonly pipelines = new Map<string, CompiledKernel>();
  private readonly uniforms = new Map<string, GPUBuffer>();
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 1;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private pendingDispatches = 0;
  /** Dispatches submitted since the last completed wait, and when the first of them was submitted. */
  private unsyncedDispatches = 0;
  private unsyncedSince = 0;
  /**
   * Measured milliseconds of earlier waits, keyed by what was queued (the kernels and their grid
   * sizes since the last wait): the same step takes about the same time again.
   */
  private readonly waitHistory = new Map<string, { ms: number; seen: number }>();
  /** Running hash of the dispatches queued since the last wait. */
  private workHash = 0x811c9dc5;
  /** When the last idle sleep ended (0 when the last wait did not sleep). */
  private wokeAt = 0;
  private lost: string | null = null;
  private counters = { dispatches: 0, submits: 0, readbacks: 0, readbackBytes: 0 };
  /** Hooks run around each dispatch (the profiler). */
  passHook: ((label: string) => GPUComputePassTimestampWrites | undefined) | null = null;

  constructor(
    readonly device: GPUDevice,
    readonly info: DeviceInfo,
  ) {
    this.pool = new BufferPool(device);
    device.lost.then((e) => {
      this.lost = `${e.reason}: ${e.message}`;
    });
    device.onuncapturederror = (ev) => {
      this.lost ??= null;
      uncapturedErrors.push(ev.error.message);
    };
  }

  /** Throws if the device was lost. */
  checkAlive(): void {
    if (this.lost) throw new DeviceError(`the WebGPU device was lost (${this.lost}); open a new one with initWebGPU()`);
  }

  /** Compiles (once) the pipeline of a WGSL module. `key` identifies the variant. */
  kernel(key: string, source: string, label: string): CompiledKernel {
    let k = this.pipelines.get(key);
    if (k) return k;
    this.device.pushErrorScope('validation');
    const module = this.device.createShaderModule({ code: source, label });
    const pipeline = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label });
    const errorPromise = this.device.popErrorScope();
    k = { key, pipeline };
    this.pipelines.set(key, k);
    errorPromise.then(async (err) => {
      if (!err) return;
      this.pipelines.delete(key);
      const info = await module.getCompilationInfo();
      const lines = info.messages.map((m) => `  line ${m.lineNum}:${m.linePos} ${m.type}: ${m.message}`);
      uncapturedErrors.push(`kernel ${label} failed to compile: ${err.message}\n${lines.join('\n')}`);
    });
    return k;
  }

  /**
   * Compiles the pipeline of a WGSL module asynchronously and rejects, naming the step and the
   * compiler's messages, when the module or the pipeline cannot be created on this device. On
   * success the pipeline is cached under `key` as {@link kernel} would cache it.
   */
  async kernelChecked(key: string, source: string, label: string): Promise<CompiledKernel> {
    const cached = this.pipelines.get(key);
    if (cached) return cached;
    this.device.pushErrorScope('internal');
    this.device.pushErrorScope('validation');
    const module = this.device.createShaderModule({ code: source, label });
    const moduleErrors = [await this.device.popErrorScope(), await this.device.popErrorScope()].filter((e) => e !== null);
    const messages = (await module.getCompilationInfo()).messages.filter((m) => m.type === 'error');
    if (moduleErrors.length > 0 || messages.length > 0) {
      const lines = messages.map((m) => `line ${m.lineNum}:${m.linePos} ${m.message}`);
      throw new DeviceError(`kernel ${label}: shader module failed: ${[...moduleErrors.map((e) => e.message), ...lines].join('; ')}`);
    }
    let pipeline: GPUComputePipeline;
    this.device.pushErrorScope('internal');
    this.device.pushErrorScope('validation');
    try {
      pipeline = await this.device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' }, label });
    } catch (e) {
      await this.device.popErrorScope();
      await this.device.popErrorScope();
      throw new DeviceError(`kernel ${label}: pipeline creation failed: ${(e as Error).message}`);
    }
    const errors = [await this.device.popErrorScope(), await this.device.popErrorScope()].filter((e) => e !== null);
    if (errors.length > 0) throw new DeviceError(`kernel ${label}: pipeline creation failed: ${errors.map((e) => e.message).join('; ')}`);
    const k = { key, pipeline };
    this.pipelines.set(key, k);
    return k;
  }

  acquire(bytes: number): GPUBuffer {
    this.checkAlive();
    return this.pool.acquire(bytes);
  }

  release(buffer: GPUBuffer): void {
    this.pool.release(buffer, () => this.flush());
  }

  /** Writes host data into a buffer, after the commands that may still use it. */
  write(buffer: GPUBuffer, offsetBytes: number, data: ArrayBufferView): void {
    if (this.pendingDispatches > 0) this.flush();
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const padded = bytes.byteLength % 4 === 0 ? bytes : padTo4(bytes);
    this.device.queue.writeBuffer(buffer, offsetBytes, padded as Uint8Array<ArrayBuffer>);
  }

  /** Encodes one dispatch into the current command encoder. */
  dispatch(d: Dispatch): void {
    this.checkAlive();
    const entries: GPUBindGroupEntry[] = [];
    let key = d.kernel.key;
    if (d.params) {
      const u = this.uniformBuffer(d.params);
      entries.push({ binding: 0, resource: { buffer: u } });
      key += `|u${this.bufferId(u)}`;
    }
    d.buffers.forEach((buffer, i) => {
      entries.push({ binding: i + 1, resource: { buffer } });
      key += `|${this.bufferId(buffer)}`;
    });
    let bindGroup = this.bindGroups.get(key);
    if (!bindGroup) {
      bindGroup = this.device.createBindGroup({ layout: d.kernel.pipeline.getBindGroupLayout(0), entries });
      if (this.bindGroups.size >= MAX_CACHED_BIND_GROUPS) this.bindGroups.clear();
      this.bindGroups.set(key, bindGroup);
    }
    const timestampWrites = this.passHook?.(d.label);
    if (timestampWrites) {
      this.endPass();
      this.encoder ??= this.device.createCommandEncoder();
      this.pass = this.encoder.beginComputePass({ timestampWrites });
    } else if (!this.pass) {
      this.encoder ??= this.device.createCommandEncoder();
      this.pass = this.encoder.beginComputePass();
    }
    const pass = this.pass!;
    pass.setPipeline(d.kernel.pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(d.workgroups[0], d.workgroups[1] ?? 1, d.workgroups[2] ?? 1);
    if (timestampWrites) this.endPass();
    this.pendingDispatches++;
    this.counters.dispatches++;
    this.workHash = hashWork(this.workHash, d.label, d.workgroups[0], d.workgroups[1] ?? 1, d.workgroups[2] ?? 1);
    if (this.pendingDispatches >= MAX_DISPATCHES_PER_SUBMIT) this.flush();
  }

  /** Encodes a buffer-to-buffer copy. */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.endPass();
    this.encoder ??= this.device.createCommandEncoder();
    this.encoder.copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
    this.pendingDispatches++;
    this.workHash = hashWork(this.workHash, 'copy', bytes % 0x100000000, Math.floor(bytes / 0x100000000), 0);
  }

  /** Gives the current encoder to a caller that needs raw access (query resolution). */
  withEncoder(fn: (encoder: GPUCommandEncoder) => void): void {
    this.endPass();
    this.encoder ??= this.device.createCommandEncoder();
    fn(this.encoder);
    this.pendingDispatches++;
  }

  /** Submits everything encoded so far. */
  flush(): void {
    this.endPass();
    if (!this.encoder) return;
    const cb = this.encoder.finish();
    this.encoder = null;
    if (this.unsyncedDispatches === 0) this.unsyncedSince = now();
    this.unsyncedDispatches += this.pendingDispatches;
    this.pendingDispatches = 0;
    this.device.queue.submit([cb]);
    this.counters.submits++;
  }

  /** Reads `bytes` bytes of a buffer back to the host, waiting for all queued work. */
  async read(buffer: GPUBuffer, offsetBytes: number, bytes: number): Promise<ArrayBuffer> {
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    const staging = this.device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.endPass();
    this.encoder ??= this.device.createCommandEncoder();
    this.encoder.copyBufferToBuffer(buffer, offsetBytes, staging, 0, size);
    this.pendingDispatches++;
    this.flush();
    await this.idleWait();
    try {
      await staging.mapAsync(GPUMapMode.READ);
    } catch (e) {
      staging.destroy();
      this.checkAlive();
      throw new DeviceError(`readback failed: ${(e as Error).message}`);
    }
    this.recordWait();
    const out = staging.getMappedRange().slice(0, bytes);
    staging.unmap();
    staging.destroy();
    this.counters.readbacks++;
    this.counters.readbackBytes += bytes;
    this.raiseUncaptured();
    return out;
  }

  /** Waits until the GPU has finished all submitted work. */
  async sync(): Promise<void> {
    this.flush();
    await this.idleWait();
    await this.device.queue.onSubmittedWorkDone();
    this.recordWait();
    this.raiseUncaptured();
  }

  stats(): RuntimeStats {
    return {
      ...this.pool.stats(),
      pipelines: this.pipelines.size,
      uniformBuffers: this.uniforms.size,
      ...this.counters,
    };
  }

  /** Throws the first WebGPU validation error reported since the last check, naming the kernel. */
  raiseUncaptured(): void {
    const msg = uncapturedErrors.shift();
    if (msg) {
      uncapturedErrors.length = 0;
      throw new DeviceError(`WebGPU validation error: ${msg}`);
    }
  }

  private endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
  }

  private bufferId(b: GPUBuffer): number {
    let id = this.bufferIds.get(b);
    if (id === undefined) this.bufferIds.set(b, (id = this.nextBufferId++));
    return id;
  }

  private uniformBuffer(params: ArrayBuffer): GPUBuffer {
    const words = new Uint32Array(params);
    const key = words.join(',');
    let u = this.uniforms.get(key);
    if (u) return u;
    const size = Math.max(16, Math.ceil(params.byteLength / 16) * 16);
    u = this.device.createBuffer({ size, usage: GPUBufferUsage.UNIFORM, mappedAtCreation: true });
    new Uint32Array(u.getMappedRange()).set(words);
    u.unmap();
    if (this.uniforms.size >= MAX_CACHED_UNIFORMS) {
      // Old uniforms may still be referenced by queued commands: submit before dropping them.
      this.flush();
      this.bindGroups.clear();
      for (const old of this.uniforms.values()) old.destroy();
      this.uniforms.clear();
    }
    this.uniforms.set(key, u);
    return u;
  }

  /** Sleeps through most of the time the same amount of queued work took before. */
  private waitKey(): string {
    return `${this.unsyncedDispatches}:${this.workHash}`;
  }

  /**
   * Sleeps through most of the time the same queued work took before (seen at least twice, so a
   * first run's shader compiles do not count), then lets the caller poll for the rest.
   */
  private async idleWait(): Promise<void> {
    const record = this.waitHistory.get(this.waitKey());
    this.wokeAt = 0;
    if (record === undefined || record.seen < 2) return;
    const remaining = record.ms * 0.85 - (now() - this.unsyncedSince);
    if (remaining > 2) {
      await new Promise((r) => setTimeout(r, remaining));
      this.wokeAt = now();
    }
  }

  private recordWait(): void {
    if (this.unsyncedDispatches > 0) {
      const key = this.waitKey();
      const t = now();
      const measured = t - this.unsyncedSince;
      const record = this.waitHistory.get(key);
      // Work that was already done when the sleep ended took an unknown, shorter time: step the
      // estimate down by a tenth (a few waits find the edge, where only a short poll remains).
      // Otherwise the poll saw the real end: keep the fastest time seen.
      const overslept = this.wokeAt > 0 && t - this.wokeAt < 1;
      const ms = record === undefined ? measured : overslept ? Math.min(record.ms, measured) * 0.9 : Math.min(record.ms, measured);
      if (this.waitHistory.size >= 1024) this.waitHistory.clear();
      this.waitHistory.set(key, { ms, seen: (record?.seen ?? 0) + 1 });
    }
    this.unsyncedDispatches = 0;
    this.workHash = 0x811c9dc5;
  }
}

const uncapturedErrors: string[] = [];

/** FNV-1a over a dispatch's label and grid, folded into the running hash of queued work. */
function hashWork(hash: number, label: string, x: number, y: number, z: number): number {
  let h = hash;
  const mix = (v: number) => {
    h = Math.imul(h ^ (v & 0xffff), 0x01000193) >>> 0;
    h = Math.imul(h ^ (v >>> 16), 0x01000193) >>> 0;
  };
  for (let i = 0; i < label.length; i++) mix(label.charCodeAt(i));
  mix(x);
  mix(y);
  mix(z);
  return h;
}

function now(): number {
  return globalThis.performance.now();
}

function padTo4(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
  out.set(bytes);
  return out;
}
