// The WebGPU runtime under the tensors: pipelines compiled once per kernel variant (pipelines.ts),
// buffers from a pool, many dispatches encoded per submit with cached bind groups and uniform blocks
// (bind-cache.ts), and readback that sleeps through most of the expected GPU time (wait-pacing.ts).
import { DeviceError } from '../errors.js';
import { BindingCache } from './bind-cache.js';
import type { DeviceInfo } from './device.js';
import { bindingSignature, createBindingLayout, createPipeline, createPipelineChecked, type BindingLayout } from './pipelines.js';
import { BufferPool, type PoolStats } from './pool.js';
import { StepRecording, type HeldBuffer } from './replay.js';
import { WaitPacer } from './wait-pacing.js';

/** A WGSL module ready to compile: its source with every define substituted. */
export interface CompiledKernel {
  key: string;
  pipeline: GPUComputePipeline;
  /** Its bind group layout, shared by every kernel whose bindings have the same types. */
  bindings: BindingLayout;
}

/** One dispatch: a kernel variant, its uniform words, its storage buffers in binding order (from 1). */
export interface Dispatch {
  kernel: CompiledKernel;
  /** Uniform block at binding 0, as packParams packs it (omit when the kernel has none). */
  params?: Uint32Array;
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
  /** Uniform buffers held (pages of uniform blocks). */
  uniformBuffers: number;
  /** Bind groups created (flat over a repeated step: its dispatches reuse theirs, whatever their uniforms). */
  bindGroups: number;
}

const MAX_DISPATCHES_PER_SUBMIT = 256;
/** Readback buffers up to this size are kept for the next read of the same size, a few per size. */
const MAX_KEPT_STAGING_BYTES = 64 * 1024;
const MAX_KEPT_STAGING_PER_SIZE = 4;

export class Runtime {
  readonly pool: BufferPool;
  private readonly pipelines = new Map<string, CompiledKernel>();
  private readonly bindings: BindingCache;
  private readonly layouts = new Map<string, BindingLayout>();
  /** Unmapped readback buffers kept for reuse, by size. */
  private readonly stagingBuffers = new Map<number, GPUBuffer[]>();
  private readonly pacer = new WaitPacer();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  /** The pipeline and bind group last set on the open pass. */
  private passPipeline: GPUComputePipeline | null = null;
  private passBindGroup: GPUBindGroup | null = null;
  private pendingDispatches = 0;
  /** Whether the encoder holds commands from withEncoder, whose buffers are not tracked. */
  private rawEncoded = false;
  private lost: string | null = null;
  private counters = { dispatches: 0, submits: 0, readbacks: 0, readbackBytes: 0 };
  /** Hooks run around each dispatch (the profiler). */
  passHook: ((label: string) => GPUComputePassTimestampWrites | undefined) | null = null;
  /** The step being recorded (replay.ts), or null. */
  recording: StepRecording | null = null;
  /** Recordings not yet disposed, and the buffers their steps created. */
  private readonly recordings = new Set<StepRecording>();
  private readonly held = new Map<GPUBuffer, HeldBuffer>();
  /** The device's verdicts still to come on pipelines created at once by {@link kernel}. */
  private readonly pipelineVerdicts = new Set<Promise<void>>();
  /** The compiler's reports of pipelines the device refused, thrown before the errors using them caused. */
  private readonly pipelineFailures: string[] = [];

  constructor(
    readonly device: GPUDevice,
    readonly info: DeviceInfo,
  ) {
    this.pool = new BufferPool(device);
    this.bindings = new BindingCache(device, () => this.flush());
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

  /**
   * Compiles (once) the pipeline of a WGSL module. `key` identifies the variant. One the device refuses
   * is reported by the next read or synchronize, with the compiler's messages, and compiled anew next time.
   */
  kernel(key: string, source: string, label: string): CompiledKernel {
    let k = this.pipelines.get(key);
    if (k) return k;
    const bindings = this.layout(source, label);
    const { pipeline, failure } = createPipeline(this.device, source, bindings.layout, label);
    const verdict: Promise<void> = failure.then(
      (report) => {
        this.pipelineVerdicts.delete(verdict);
        if (report === null) return;
        this.pipelines.delete(key);
        this.pipelineFailures.push(report);
      },
      () => void this.pipelineVerdicts.delete(verdict),
    );
    this.pipelineVerdicts.add(verdict);
    k = { key, pipeline, bindings };
    this.pipelines.set(key, k);
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
    const bindings = this.layout(source, label);
    const pipeline = await createPipelineChecked(this.device, source, bindings.layout, label);
    const k = { key, pipeline, bindings };
    this.pipelines.set(key, k);
    return k;
  }

  acquire(bytes: number): GPUBuffer {
    this.checkAlive();
    const buffer = this.pool.acquire(bytes, () => this.flush());
    if (this.recording !== null) this.created(buffer, this.recording);
    return buffer;
  }

  /**
   * A buffer for host data written right away: a pooled one that the commands not yet submitted do
   * not use, so that the write need not submit them first (see {@link write}).
   */
  acquireForWrite(bytes: number): GPUBuffer {
    this.checkAlive();
    const buffer = this.pendingDispatches === 0 ? this.pool.acquire(bytes, () => this.flush()) : this.pool.acquire(bytes, () => this.flush(), (b) => this.bindings.usedUnsubmitted(b));
    if (this.recording !== null) this.created(buffer, this.recording);
    return buffer;
  }

  /**
   * Returns a buffer to the pool. A buffer a live recording created is held for it instead; one a
   * recording reads without having created it makes the recording invalid.
   */
  release(buffer: GPUBuffer): void {
    if (this.held.size > 0) {
      const h = this.held.get(buffer);
      if (h !== undefined) {
        if (--h.refs > 0 || h.owner !== null) return;
        this.held.delete(buffer);
      }
    }
    if (this.recordings.size > 0) for (const r of this.recordings) if (r.external.has(buffer)) r.invalidated ??= 'a buffer it reads was released';
    this.pool.release(buffer, () => this.flush());
  }

  /**
   * Starts recording the commands encoded from now on (replay.ts), after submitting those before; the
   * step runs as usual. `length` is its key count.
   */
  beginRecording(length: number): StepRecording {
    if (this.recording !== null) throw new DeviceError('internal: a step is being recorded already');
    this.flush();
    const r = new StepRecording(length);
    if (this.passHook !== null) r.refuse('the profiler times each dispatch');
    this.recordings.add(r);
    this.recording = r;
    return r;
  }

  /** Ends the recording begun last; `output` is the buffer of the step's result. Returns it, refused or not. */
  endRecording(output: GPUBuffer): StepRecording {
    const r = this.recording;
    if (r === null) throw new DeviceError('internal: no step is being recorded');
    this.recording = null;
    // What the step created and a tensor still holds besides its result (a table or packed weights kept
    // for later steps) is read like a weight: not the recording's.
    for (const b of r.owned) {
      const h = this.held.get(b)!;
      if (b !== output && h.refs > 0) {
        this.held.delete(b);
        r.owned.delete(b);
      }
    }
    r.finish(this, output, (b) => this.pool.sizeOf(b) ?? b.size);
    return r;
  }

  /** Notes that a tensor holds a buffer of a recording (a replay's result). */
  retainHeld(buffer: GPUBuffer): void {
    const h = this.held.get(buffer);
    if (h === undefined) throw new DeviceError('internal: the buffer is not held for a recording');
    h.refs++;
  }

  /** Holds `buffer`, created for `recording` and not held by a tensor, until the recording is disposed. */
  holdForRecording(buffer: GPUBuffer, recording: StepRecording): void {
    this.held.set(buffer, { refs: 0, owner: recording });
  }

  /** Frees a recording: its buffers no tensor holds go back to the pool, the others when released. */
  disposeRecording(recording: StepRecording): void {
    if (this.recording === recording) this.recording = null;
    if (!this.recordings.delete(recording)) return;
    recording.destroyUniforms();
    for (const b of recording.owned) {
      const h = this.held.get(b);
      if (h === undefined) continue;
      h.owner = null;
      if (h.refs === 0) {
        this.held.delete(b);
        this.pool.release(b, () => this.flush());
      }
    }
  }

  /**
   * Replays a recording at `length` keys: writes its host inputs and length words, copies its GPU
   * inputs in (`sources`, by input), encodes its commands and submits them after all encoded before.
   */
  replay(recording: StepRecording, length: number, host: readonly (ArrayBufferView | null)[], sources: readonly (GPUBuffer | null)[]): void {
    this.checkAlive();
    if (!recording.covers(length)) throw new DeviceError('internal: the recording does not cover this step');
    // Its writes are queued at once: the commands encoded before, which may read the same buffers, go first.
    if (this.pendingDispatches > 0) this.flush();
    recording.writeInputs(this.device.queue, length, host);
    this.endPass();
    this.encoder ??= this.device.createCommandEncoder();
    recording.encode(this.encoder, sources);
    this.rawEncoded = true;
    this.pendingDispatches += recording.commandCount;
    this.pacer.queuedStep(recording.workHash);
    this.counters.dispatches += recording.dispatchCount;
  }

  private created(buffer: GPUBuffer, recording: StepRecording): void {
    recording.owned.add(buffer);
    this.held.set(buffer, { refs: 1, owner: recording });
  }

  /**
   * Writes host data into a buffer, after the commands that may still use it: the queue writes before
   * the commands not yet submitted run, so those are submitted first when they use the buffer.
   */
  write(buffer: GPUBuffer, offsetBytes: number, data: ArrayBufferView): void {
    if (this.pendingDispatches > 0 && (this.rawEncoded || this.bindings.usedUnsubmitted(buffer))) this.flush();
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const padded = bytes.byteLength % 4 === 0 ? bytes : padTo4(bytes);
    this.recording?.wrote(buffer, offsetBytes, data.byteLength);
    this.device.queue.writeBuffer(buffer, offsetBytes, padded as Uint8Array<ArrayBuffer>);
  }

  /** Encodes one dispatch into the current command encoder. */
  dispatch(d: Dispatch): void {
    this.checkAlive();
    const bindGroup = this.bindings.bindGroup(d.kernel, d.params, d.buffers);
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
    // A pass keeps its pipeline and bind group from one dispatch to the next: set only what changed.
    if (this.passPipeline !== d.kernel.pipeline) pass.setPipeline((this.passPipeline = d.kernel.pipeline));
    if (this.passBindGroup !== bindGroup) pass.setBindGroup(0, (this.passBindGroup = bindGroup));
    pass.dispatchWorkgroups(d.workgroups[0], d.workgroups[1] ?? 1, d.workgroups[2] ?? 1);
    if (timestampWrites) this.endPass();
    this.pendingDispatches++;
    this.counters.dispatches++;
    this.pacer.queued(d.label, d.workgroups[0], d.workgroups[1] ?? 1, d.workgroups[2] ?? 1);
    this.recording?.dispatched(d);
    if (this.pendingDispatches >= MAX_DISPATCHES_PER_SUBMIT) this.flush();
  }

  /** Encodes a buffer-to-buffer copy. */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.endPass();
    this.encoder ??= this.device.createCommandEncoder();
    this.encoder.copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
    this.bindings.markUsed(src);
    this.bindings.markUsed(dst);
    this.recording?.copied(src, srcOffset, dst, dstOffset, bytes);
    this.pendingDispatches++;
    this.pacer.queued('copy', bytes % 0x100000000, Math.floor(bytes / 0x100000000), 0);
  }

  /** Gives the current encoder to a caller that needs raw access (query resolution). */
  withEncoder(fn: (encoder: GPUCommandEncoder) => void): void {
    this.recording?.refuse('it encodes raw commands');
    this.endPass();
    this.encoder ??= this.device.createCommandEncoder();
    fn(this.encoder);
    this.rawEncoded = true;
    this.pendingDispatches++;
  }

  /** Submits everything encoded so far (a replay's commands with the readback that follows them). */
  flush(): void {
    this.endPass();
    if (!this.encoder) return;
    const cb = this.encoder.finish();
    this.encoder = null;
    this.rawEncoded = false;
    this.pacer.submitted(this.pendingDispatches);
    this.pendingDispatches = 0;
    this.bindings.upload(this.device.queue);
    this.device.queue.submit([cb]);
    this.counters.submits++;
  }

  /**
   * Reads `bytes` bytes of a buffer back to the host, waiting for all queued work. The copy is encoded
   * and submitted before the promise is returned: the caller may encode more work, release the buffer
   * and start other reads before awaiting it (decoding reads one step's ids while the next one runs).
   */
  async read(buffer: GPUBuffer, offsetBytes: number, bytes: number): Promise<ArrayBuffer> {
    this.recording?.refuse('it reads back in the middle');
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    const staging = this.stagingBuffers.get(size)?.pop() ?? this.device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.endPass();
    this.encoder ??= this.device.createCommandEncoder();
    this.encoder.copyBufferToBuffer(buffer, offsetBytes, staging, 0, size);
    this.pendingDispatches++;
    this.flush();
    // Everything above runs before the first await: the copy is submitted when the promise is returned.
    const ticket = this.pacer.ticket();
    await this.pacer.idleWait(ticket);
    try {
      await staging.mapAsync(GPUMapMode.READ);
    } catch (e) {
      staging.destroy();
      this.checkAlive();
      throw new DeviceError(`readback failed: ${(e as Error).message}`);
    }
    this.pacer.recordWait(ticket);
    const out = staging.getMappedRange().slice(0, bytes);
    staging.unmap();
    this.releaseStaging(staging);
    this.counters.readbacks++;
    this.counters.readbackBytes += bytes;
    if (this.pipelineVerdicts.size > 0) await this.pipelinesJudged();
    this.raiseUncaptured();
    return out;
  }

  /** Waits until the GPU has finished all submitted work. */
  async sync(): Promise<void> {
    this.flush();
    const ticket = this.pacer.ticket();
    await this.pacer.idleWait(ticket);
    await this.device.queue.onSubmittedWorkDone();
    this.pacer.recordWait(ticket);
    if (this.pipelineVerdicts.size > 0) await this.pipelinesJudged();
    this.raiseUncaptured();
  }

  stats(): RuntimeStats {
    return {
      ...this.pool.stats(),
      pipelines: this.pipelines.size,
      uniformBuffers: this.bindings.uniformCount,
      bindGroups: this.bindings.created,
      ...this.counters,
    };
  }

  /**
   * Throws the first WebGPU validation error reported since the last check, naming the kernel: the
   * compiler's report of a pipeline the device refused before the errors its dispatches caused.
   */
  raiseUncaptured(): void {
    const report = this.pipelineFailures.shift();
    const msg = uncapturedErrors.shift();
    if (report !== undefined || msg) {
      this.pipelineFailures.length = 0;
      uncapturedErrors.length = 0;
      throw new DeviceError(report ?? `WebGPU validation error: ${msg}`);
    }
  }

  /**
   * Waits for the device's verdicts on the pipelines created since the last wait (none in a steady run:
   * pipelines are created once), so that a refused one is reported with the compiler's messages.
   */
  private async pipelinesJudged(): Promise<void> {
    await Promise.all(this.pipelineVerdicts);
  }

  /** Keeps a small readback buffer for the next read of its size (a decode step reads a few bytes every token). */
  private releaseStaging(staging: GPUBuffer): void {
    let list = this.stagingBuffers.get(staging.size);
    if (staging.size <= MAX_KEPT_STAGING_BYTES && (list?.length ?? 0) < MAX_KEPT_STAGING_PER_SIZE) {
      if (!list) this.stagingBuffers.set(staging.size, (list = []));
      list.push(staging);
    } else {
      staging.destroy();
    }
  }

  /** The bind group layout of a module's bindings, one per distinct signature. */
  private layout(source: string, label: string): BindingLayout {
    const signature = bindingSignature(source, label);
    let l = this.layouts.get(signature);
    if (!l) this.layouts.set(signature, (l = { layout: createBindingLayout(this.device, signature), signature }));
    return l;
  }

  private endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
      this.passPipeline = null;
      this.passBindGroup = null;
    }
  }
}

const uncapturedErrors: string[] = [];

function padTo4(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
  out.set(bytes);
  return out;
}
