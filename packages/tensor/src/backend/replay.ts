// A step's GPU work recorded once and replayed (decoding: one step a token, the same dispatches every
// time). Recording runs the step as usual and keeps what it encodes: each dispatch's pipeline, storage
// buffers, workgroups and uniform words, and the copies. A replay encodes that list again into one
// compute pass with the recording's own uniform buffer and bind groups: no op runs on the host. What
// changes from one replay to the next is written in place: the inputs (host data the step uploads, or
// a GPU tensor copied into the buffer the step read it from), and the uniform words an op declares as
// following the key count (followLength), with the range of key counts its dispatch stays the same for
// and, where more of it follows the key count (the attention's splits), how to compute that.
// The buffers the step creates belong to the recording while it lives (released ones are held, not
// pooled); a buffer it reads and did not create (weights, a KV cache) that is released makes it invalid.
// Anything else the step does that a replay could not repeat (a write that is not an input, a readback,
// raw encoder access) leaves the recording unusable: the caller runs the step as usual.
import type { CompiledKernel, Dispatch, Runtime } from './runtime.js';

/** A dispatch of a recorded step. */
interface StepDispatch {
  kind: 'dispatch';
  kernel: CompiledKernel;
  params: Uint32Array | null;
  buffers: GPUBuffer[];
  workgroups: [number, number, number];
  label: string;
  /** Words of `params` that grow by one with each key (see {@link StepRecording.followLength}). */
  lengthWords: readonly number[];
  /** Rewrites the other words that follow the key count and returns the workgroups (see {@link LengthDerived}). */
  derive: LengthDerived | null;
  /** Where its uniform block lies in the recording's uniform buffer, and the bind group over it. */
  uniformOffset: number;
  bindGroup: GPUBindGroup | null;
}

interface StepCopy {
  kind: 'copy';
  src: GPUBuffer;
  srcOffset: number;
  dst: GPUBuffer;
  dstOffset: number;
  bytes: number;
}

type StepCommand = StepDispatch | StepCopy;

/**
 * Given the key count S (the value of the first length word) and the uniform block with the length words
 * already moved, writes the block's other words that depend on S and returns the dispatch's workgroups.
 */
export type LengthDerived = (S: number, params: Uint32Array) => readonly [number, number, number];

/** Data a step takes afresh each time: host data it uploads, or a GPU buffer it reads (copied in). */
export interface StepInput {
  name: string;
  kind: 'host' | 'gpu';
  /** The buffer the recorded commands read it from. */
  buffer: GPUBuffer;
  /** Bytes the buffer holds (host data up to this size fits). */
  capacity: number;
  /** Gpu inputs: the bytes copied in. */
  bytes: number;
  /** Host inputs: every value (i32) must be below this for the recording to hold (see boundInput). */
  below: number;
}

/** A buffer created by a recorded step: the tensors still holding it, and the recording it belongs to. */
export interface HeldBuffer {
  refs: number;
  owner: StepRecording | null;
}

function sameWords(a: Uint32Array | null, b: Uint32Array | null): boolean {
  if (a === null || b === null) return a === b;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (b[i] !== a[i]) return false;
  return true;
}

/** One step's commands, recorded by the runtime between {@link Runtime.beginRecording} and {@link Runtime.endRecording}. */
export class StepRecording {
  readonly commands: StepCommand[] = [];
  /** Buffers the step created (held for the recording while it lives). */
  readonly owned = new Set<GPUBuffer>();
  /** Buffers the step read or wrote that it did not create; releasing one invalidates the recording. */
  readonly external = new Set<GPUBuffer>();
  readonly inputs: StepInput[] = [];
  /** Why the step cannot be replayed, or null. */
  refused: string | null = null;
  /** Why a finished recording no longer holds (an external buffer was released), or null. */
  invalidated: string | null = null;
  /** Key counts, relative to `length`, that every dispatch following the length stays the same for. */
  private deltaLo = -Infinity;
  private deltaHi = Infinity;
  private readonly writes: { buffer: GPUBuffer; offset: number; bytes: number }[] = [];
  private readonly lengthDecls = new WeakMap<Uint32Array, { words: readonly number[]; derive: LengthDerived | null }>();
  private readonly bounds = new Map<GPUBuffer, number>();
  private uniform: GPUBuffer | null = null;
  /** Host copy of the uniform blocks that follow the length (they come first in the buffer). */
  private dynamicWords: Uint32Array<ArrayBuffer> = new Uint32Array(0);
  private lastDelta = 0;
  /** The buffer of the step's result. */
  outputBuffer: GPUBuffer | null = null;
  /** The pacer's hash of the commands (wait-pacing.ts). */
  workHash = 0;
  dispatchCount = 0;
  /** Commands encoded by a replay: the dispatches, the copies and the copies of GPU inputs. */
  commandCount = 0;

  constructor(
    /** The key count of the recorded step. */
    readonly length: number,
  ) {}

  /** Whether a replay at `length` keys encodes what the step would. */
  covers(length: number): boolean {
    const d = length - this.length;
    return this.refused === null && this.invalidated === null && d >= this.deltaLo && d <= this.deltaHi;
  }

  /**
   * Declares that words `words` of the uniform block `params` (of the dispatches made with it) grow by
   * one with each key of the step, and that the dispatch stays otherwise the same while the first of
   * them lies in [lo, hi] (the buffers it binds; its workgroups and other words, or those `derive` computes).
   */
  followLength(params: Uint32Array, words: readonly number[], lo = -Infinity, hi = Infinity, derive: LengthDerived | null = null): void {
    this.lengthDecls.set(params, { words, derive });
    const v = params[words[0]!]!;
    this.deltaLo = Math.max(this.deltaLo, lo - v);
    this.deltaHi = Math.min(this.deltaHi, hi - v);
  }

  /** Declares that the step stays the same only while the i32 values of host input `buffer` are below `limit`. */
  boundInput(buffer: GPUBuffer, limit: number): void {
    this.bounds.set(buffer, Math.min(limit, this.bounds.get(buffer) ?? Infinity));
  }

  /** Marks the buffer of a host (`kind` host) or GPU input, by name. */
  input(name: string, kind: 'host' | 'gpu', buffer: GPUBuffer, bytes: number): void {
    if (this.inputs.some((i) => i.name === name)) this.refuse(`input ${name} given twice`);
    this.inputs.push({ name, kind, buffer, capacity: bytes, bytes, below: Infinity });
  }

  refuse(why: string): void {
    this.refused ??= why;
  }

  dispatched(d: Dispatch): void {
    const decl = d.params === undefined ? undefined : this.lengthDecls.get(d.params);
    this.commands.push({
      kind: 'dispatch',
      kernel: d.kernel,
      params: d.params === undefined ? null : Uint32Array.from(d.params),
      buffers: [...d.buffers],
      workgroups: [d.workgroups[0], d.workgroups[1] ?? 1, d.workgroups[2] ?? 1],
      label: d.label,
      lengthWords: decl?.words ?? [],
      derive: decl?.derive ?? null,
      uniformOffset: 0,
      bindGroup: null,
    });
  }

  copied(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.commands.push({ kind: 'copy', src, srcOffset, dst, dstOffset, bytes });
  }

  wrote(buffer: GPUBuffer, offset: number, bytes: number): void {
    this.writes.push({ buffer, offset, bytes });
  }

  /**
   * Ends the recording: checks that every write was a whole host input, moves GPU inputs into buffers of
   * the recording's own, and builds its uniform buffer and bind groups. `output` must be a buffer the step created.
   */
  finish(rt: Runtime, output: GPUBuffer, capacityOf: (b: GPUBuffer) => number): void {
    if (this.refused !== null) return;
    if (!this.owned.has(output)) return this.refuse('its output is not a buffer it created');
    this.outputBuffer = output;
    for (const w of this.writes) {
      const input = this.inputs.find((i) => i.buffer === w.buffer);
      if (input?.kind !== 'host' || w.offset !== 0 || !this.owned.has(w.buffer)) return this.refuse('it writes host data that is not an input');
    }
    for (const input of this.inputs) {
      if (input.kind === 'host') {
        if (!this.owned.has(input.buffer)) return this.refuse(`host input ${input.name} is not a buffer it created`);
        input.capacity = capacityOf(input.buffer);
        input.below = this.bounds.get(input.buffer) ?? Infinity;
        continue;
      }
      if (this.owned.has(input.buffer)) return this.refuse(`GPU input ${input.name} is a buffer it created`);
      // The step reads the input from a buffer of its own, copied into before each replay.
      const own = rt.acquire(input.bytes);
      this.owned.add(own);
      rt.holdForRecording(own, this);
      this.replaceBuffer(input.buffer, own);
      input.buffer = own;
    }
    for (const c of this.commands) {
      const buffers = c.kind === 'dispatch' ? c.buffers : [c.src, c.dst];
      for (const b of buffers) if (!this.owned.has(b)) this.external.add(b);
    }
    this.buildBindGroups(rt.device);
    this.workHash = 0x811c9dc5;
    this.commandCount = this.commands.length + this.inputs.filter((i) => i.kind === 'gpu').length;
    for (const c of this.commands) {
      if (c.kind === 'dispatch') this.dispatchCount++;
      this.workHash = Math.imul(this.workHash ^ (c.kind === 'dispatch' ? c.workgroups[0] * 31 + c.workgroups[1] : c.bytes), 0x01000193) >>> 0;
    }
  }

  private replaceBuffer(from: GPUBuffer, to: GPUBuffer): void {
    for (const c of this.commands) {
      if (c.kind === 'dispatch') c.buffers = c.buffers.map((b) => (b === from ? to : b));
      else {
        if (c.src === from) c.src = to;
        if (c.dst === from) c.dst = to;
      }
    }
  }

  /** The uniform buffer, blocks that follow the length first, and each dispatch's bind group. */
  private buildBindGroups(device: GPUDevice): void {
    const align = Math.max(16, device.limits.minUniformBufferOffsetAlignment);
    const withParams = this.commands.filter((c): c is StepDispatch => c.kind === 'dispatch' && c.params !== null);
    const ordered = [...withParams.filter((c) => c.lengthWords.length > 0), ...withParams.filter((c) => c.lengthWords.length === 0)];
    let offset = 0;
    let dynamicBytes = 0;
    for (const c of ordered) {
      c.uniformOffset = offset;
      offset += Math.ceil(Math.max(16, c.params!.byteLength) / align) * align;
      if (c.lengthWords.length > 0) dynamicBytes = offset;
    }
    const words = new Uint32Array(Math.max(offset, 16) / 4);
    for (const c of ordered) words.set(c.params!, c.uniformOffset / 4);
    this.uniform = device.createBuffer({ size: words.byteLength, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, label: 'recorded step uniforms' });
    device.queue.writeBuffer(this.uniform, 0, words);
    this.dynamicWords = words.slice(0, dynamicBytes / 4);
    this.lastDelta = 0;
    for (const c of this.commands) {
      if (c.kind !== 'dispatch') continue;
      const entries: GPUBindGroupEntry[] = [];
      if (c.params !== null) entries.push({ binding: 0, resource: { buffer: this.uniform, offset: c.uniformOffset, size: Math.max(16, Math.ceil(c.params.byteLength / 16) * 16) } });
      c.buffers.forEach((buffer, i) => entries.push({ binding: i + 1, resource: { buffer } }));
      c.bindGroup = device.createBindGroup({ layout: c.kernel.bindings.layout, entries, label: c.label });
    }
  }

  /**
   * Writes the replay's inputs and the words that follow the length for `length` keys, queued before
   * the commands that read them. Host inputs must fit their buffers and bounds (the caller checks with
   * {@link accepts}); GPU inputs are copied by {@link encode}.
   */
  writeInputs(queue: GPUQueue, length: number, host: readonly (ArrayBufferView | null)[]): void {
    const delta = length - this.length;
    if (delta !== this.lastDelta && this.dynamicWords.length > 0) {
      const change = (delta - this.lastDelta) >>> 0;
      for (const c of this.commands) {
        if (c.kind !== 'dispatch' || c.lengthWords.length === 0) continue;
        const at = c.uniformOffset / 4;
        for (const w of c.lengthWords) this.dynamicWords[at + w] = (this.dynamicWords[at + w]! + change) >>> 0;
        if (c.derive !== null) c.workgroups = [...c.derive(this.dynamicWords[at + c.lengthWords[0]!]!, this.dynamicWords.subarray(at, at + c.params!.length))];
      }
      queue.writeBuffer(this.uniform!, 0, this.dynamicWords);
      this.lastDelta = delta;
    }
    this.inputs.forEach((input, i) => {
      const data = host[i];
      if (input.kind !== 'host' || !data) return;
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      queue.writeBuffer(input.buffer, 0, (bytes.byteLength % 4 === 0 ? bytes : padTo4(bytes)) as Uint8Array<ArrayBuffer>);
    });
  }

  /** Whether host inputs of these values fit the recording (their buffers and declared bounds). */
  accepts(host: readonly (ArrayBufferView | null)[]): boolean {
    return this.inputs.every((input, i) => {
      const data = host[i];
      if (input.kind !== 'host') return true;
      if (!data || data.byteLength > input.capacity) return false;
      if (input.below === Infinity) return true;
      const values = new Int32Array(data.buffer, data.byteOffset, data.byteLength / 4);
      for (let j = 0; j < values.length; j++) if (values[j]! >= input.below) return false;
      return true;
    });
  }

  /** Encodes the recorded commands, after copying the GPU inputs (`sources`, by input) in. */
  encode(encoder: GPUCommandEncoder, sources: readonly (GPUBuffer | null)[]): void {
    this.inputs.forEach((input, i) => {
      const src = sources[i];
      if (input.kind === 'gpu' && src) encoder.copyBufferToBuffer(src, 0, input.buffer, 0, input.bytes);
    });
    let pass: GPUComputePassEncoder | null = null;
    let pipeline: GPUComputePipeline | null = null;
    for (const c of this.commands) {
      if (c.kind === 'copy') {
        pass?.end();
        pass = null;
        pipeline = null;
        encoder.copyBufferToBuffer(c.src, c.srcOffset, c.dst, c.dstOffset, c.bytes);
        continue;
      }
      pass ??= encoder.beginComputePass();
      if (pipeline !== c.kernel.pipeline) pass.setPipeline((pipeline = c.kernel.pipeline));
      pass.setBindGroup(0, c.bindGroup);
      pass.dispatchWorkgroups(c.workgroups[0], c.workgroups[1], c.workgroups[2]);
    }
    pass?.end();
  }

  /**
   * Whether `later`, the same step recorded at another key count, is this one with its length words
   * moved: the same commands, kernels, workgroups and uniform words, the same external buffers, and
   * buffers of its own in the same places. Checks once that the ops declare every word that moves.
   */
  matches(later: StepRecording): boolean {
    if (this.refused !== null || later.refused !== null || !this.covers(later.length)) return false;
    if (this.commands.length !== later.commands.length || this.inputs.length !== later.inputs.length) return false;
    const delta = later.length - this.length;
    const mapped = new Map<GPUBuffer, GPUBuffer>();
    const used = new Set<GPUBuffer>();
    const same = (a: GPUBuffer, b: GPUBuffer): boolean => {
      if (!this.owned.has(a)) return a === b && !later.owned.has(b);
      if (!later.owned.has(b)) return false;
      const m = mapped.get(a);
      if (m !== undefined) return m === b;
      if (used.has(b)) return false;
      mapped.set(a, b);
      used.add(b);
      return true;
    };
    for (let i = 0; i < this.inputs.length; i++) {
      const a = this.inputs[i]!;
      const b = later.inputs[i]!;
      if (a.name !== b.name || a.kind !== b.kind || !same(a.buffer, b.buffer)) return false;
    }
    for (let i = 0; i < this.commands.length; i++) {
      const a = this.commands[i]!;
      const b = later.commands[i]!;
      if (a.kind === 'copy' || b.kind === 'copy') {
        if (a.kind !== 'copy' || b.kind !== 'copy') return false;
        if (a.srcOffset !== b.srcOffset || a.dstOffset !== b.dstOffset || a.bytes !== b.bytes || !same(a.src, b.src) || !same(a.dst, b.dst)) return false;
        continue;
      }
      if (a.kernel.pipeline !== b.kernel.pipeline || a.label !== b.label || a.lengthWords.join() !== b.lengthWords.join()) return false;
      // What a replay of `a` at b's key count would encode.
      let params = a.params;
      let workgroups: readonly number[] = a.workgroups;
      if (params !== null && a.lengthWords.length > 0) {
        params = Uint32Array.from(params);
        for (const w of a.lengthWords) params[w] = (params[w]! + delta) >>> 0;
        if (a.derive !== null) workgroups = a.derive(params[a.lengthWords[0]!]!, params);
      }
      if (workgroups.some((w, j) => w !== b.workgroups[j]) || !sameWords(params, b.params)) return false;
      if (a.buffers.length !== b.buffers.length || a.buffers.some((x, j) => !same(x, b.buffers[j]!))) return false;
    }
    return true;
  }

  /** Frees the uniform buffer (the held buffers go back to the pool through the runtime). */
  destroyUniforms(): void {
    this.uniform?.destroy();
    this.uniform = null;
  }
}

function padTo4(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
  out.set(bytes);
  return out;
}
