// The bind groups of dispatches, cached by binding layout, uniform size and buffers: a step that repeats
// the same dispatches on the same buffers creates no bind group the second time, whatever its uniforms
// hold (they are read from the uniform arena at a dynamic offset).
import type { CompiledKernel } from './runtime.js';

const MAX_CACHED_BIND_GROUPS = 8192;

/** The bind groups of one device's dispatches. */
export class BindingCache {
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 1;
  /** Bind groups created so far. */
  created = 0;

  constructor(
    private readonly device: GPUDevice,
    /** The uniform arena, bound at binding 0 of kernels with a uniform block. */
    private readonly uniforms: GPUBuffer,
  ) {}

  /**
   * The bind group of `kernel` with `uniformBytes` of the uniform arena at binding 0 (0: the kernel has
   * no uniform block) and `buffers` from binding 1.
   */
  bindGroup(kernel: CompiledKernel, uniformBytes: number, buffers: readonly GPUBuffer[]): GPUBindGroup {
    let key = `${kernel.bindings.signature}|${uniformBytes}`;
    for (const buffer of buffers) key += `|${this.bufferId(buffer)}`;
    let bindGroup = this.bindGroups.get(key);
    if (!bindGroup) {
      const entries: GPUBindGroupEntry[] = [];
      if (uniformBytes > 0) entries.push({ binding: 0, resource: { buffer: this.uniforms, size: uniformBytes } });
      buffers.forEach((buffer, i) => entries.push({ binding: i + 1, resource: { buffer } }));
      bindGroup = this.device.createBindGroup({ layout: kernel.bindings.layout, entries });
      this.created++;
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
}
