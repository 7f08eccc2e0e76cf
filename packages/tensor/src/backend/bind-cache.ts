// The bind groups of dispatches, cached by kernel and buffers, and their uniform buffers, cached by
// content: a step that repeats the same dispatches creates no WebGPU object the second time.
import type { CompiledKernel } from './runtime.js';

const MAX_CACHED_UNIFORMS = 8192;
const MAX_CACHED_BIND_GROUPS = 8192;

/** The bind groups and uniform buffers of one device's dispatches. */
export class BindingCache {
  private readonly uniforms = new Map<string, GPUBuffer>();
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 1;

  /** `flush` submits the queued commands, which may still use a uniform about to be dropped. */
  constructor(
    private readonly device: GPUDevice,
    private readonly flush: () => void,
  ) {}

  /** Uniform buffers held. */
  get uniformCount(): number {
    return this.uniforms.size;
  }

  /** The bind group of `kernel` with the uniform `params` at binding 0 and `buffers` from binding 1. */
  bindGroup(kernel: CompiledKernel, params: ArrayBuffer | undefined, buffers: readonly GPUBuffer[]): GPUBindGroup {
    const entries: GPUBindGroupEntry[] = [];
    let key = kernel.key;
    if (params) {
      const u = this.uniformBuffer(params);
      entries.push({ binding: 0, resource: { buffer: u } });
      key += `|u${this.bufferId(u)}`;
    }
    buffers.forEach((buffer, i) => {
      entries.push({ binding: i + 1, resource: { buffer } });
      key += `|${this.bufferId(buffer)}`;
    });
    let bindGroup = this.bindGroups.get(key);
    if (!bindGroup) {
      bindGroup = this.device.createBindGroup({ layout: kernel.pipeline.getBindGroupLayout(0), entries });
      if (this.bindGroups.size >= MAX_CACHED_BIND_GROUPS) this.bindGroups.clear();
      this.bindGroups.set(key, bindGroup);
    }
    return bindGroup;
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
}
