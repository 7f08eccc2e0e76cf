// The bind groups of dispatches and their uniform blocks, cached per dispatch site (binding layout and
// storage buffers). Each site keeps a slot in a page of uniform blocks and the bind group over it: a
// repeated step creates no buffer and no bind group, and a site whose parameters change (a growing KV
// cache) rewrites its slot, all slots written before the submit in one write per page. A site used
// again in the same submit with other parameters takes another slot.
import type { CompiledKernel } from './runtime.js';

/** Bytes of a page of uniform blocks (WebGPU's largest uniform binding fits one). */
const PAGE_BYTES = 64 * 1024;
/** Slots held at most; past it every site starts afresh (after a submit: queued commands read them). */
const MAX_SLOTS = 8192;
const MAX_SITES = 8192;

/** A uniform buffer of slots and its host copy, with the range changed since the last upload. */
interface Page {
  buffer: GPUBuffer;
  words: Uint32Array<ArrayBuffer>;
  used: number;
  dirtyFrom: number;
  dirtyTo: number;
}

/** A uniform block of a site: where it lies, the bind group over it, the submit that last used it. */
interface Slot {
  page: Page;
  offset: number;
  bytes: number;
  bindGroup: GPUBindGroup;
  usedIn: number;
}

/** The bind groups and uniform blocks of one device's dispatches. */
export class BindingCache {
  private readonly sites = new Map<string, Slot[] | GPUBindGroup>();
  private readonly bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 1;
  private pages: Page[] = [];
  private slots = 0;
  /** Counts submits, so that a slot read by the commands not yet submitted is never rewritten. */
  private generation = 0;
  private readonly alignment: number;
  /** Bind groups created so far. */
  created = 0;

  /** `flush` submits the queued commands, which may still read slots about to be reassigned. */
  constructor(
    private readonly device: GPUDevice,
    private readonly flush: () => void,
  ) {
    this.alignment = Math.max(16, device.limits.minUniformBufferOffsetAlignment);
  }

  /** Uniform buffers held (pages of slots). */
  get uniformCount(): number {
    return this.pages.length;
  }

  /** The bind group of `kernel` with the uniform `params` at binding 0 and `buffers` from binding 1. */
  bindGroup(kernel: CompiledKernel, params: ArrayBuffer | undefined, buffers: readonly GPUBuffer[]): GPUBindGroup {
    let key = kernel.bindings.signature;
    if (params) key += `|u${params.byteLength}`;
    for (const buffer of buffers) key += `|${this.bufferId(buffer)}`;
    const site = this.sites.get(key);
    if (!params) {
      if (site !== undefined) return site as GPUBindGroup;
      if (this.sites.size >= MAX_SITES) return this.restart(kernel, params, buffers);
      const bindGroup = this.create(kernel, null, buffers);
      this.sites.set(key, bindGroup);
      return bindGroup;
    }
    const words = new Uint32Array(params);
    const slots = (site as Slot[] | undefined) ?? [];
    // A slot holding these values already, else one the commands not yet submitted do not read.
    let slot = slots.find((s) => this.holds(s, words)) ?? slots.find((s) => s.usedIn !== this.generation);
    if (slot === undefined) {
      if (this.slots >= MAX_SLOTS || this.sites.size >= MAX_SITES) return this.restart(kernel, params, buffers);
      slot = this.allocate(kernel, params.byteLength, buffers);
      slots.push(slot);
      if (site === undefined) this.sites.set(key, slots);
    }
    if (!this.holds(slot, words)) this.write(slot, words);
    slot.usedIn = this.generation;
    return slot.bindGroup;
  }

  /** Writes the slots changed since the last call (right before a submit) and starts the next submit's count. */
  upload(queue: GPUQueue): void {
    for (const p of this.pages) {
      if (p.dirtyTo <= p.dirtyFrom) continue;
      queue.writeBuffer(p.buffer, p.dirtyFrom, p.words, p.dirtyFrom / 4, (p.dirtyTo - p.dirtyFrom) / 4);
      p.dirtyFrom = PAGE_BYTES;
      p.dirtyTo = 0;
    }
    this.generation++;
  }

  private holds(s: Slot, words: Uint32Array): boolean {
    const at = s.offset / 4;
    for (let i = 0; i < words.length; i++) if (s.page.words[at + i] !== words[i]) return false;
    return true;
  }

  private write(s: Slot, words: Uint32Array): void {
    const p = s.page;
    p.words.set(words, s.offset / 4);
    p.words.fill(0, s.offset / 4 + words.length, (s.offset + s.bytes) / 4);
    p.dirtyFrom = Math.min(p.dirtyFrom, s.offset);
    p.dirtyTo = Math.max(p.dirtyTo, s.offset + s.bytes);
  }

  /** A new slot for a uniform block of `byteLength` bytes, and its bind group. */
  private allocate(kernel: CompiledKernel, byteLength: number, buffers: readonly GPUBuffer[]): Slot {
    const bytes = Math.max(16, Math.ceil(byteLength / 16) * 16);
    let page = this.pages[this.pages.length - 1];
    if (page === undefined || page.used + bytes > PAGE_BYTES) {
      const buffer = this.device.createBuffer({ size: PAGE_BYTES, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, label: 'uniform blocks' });
      page = { buffer, words: new Uint32Array(PAGE_BYTES / 4), used: 0, dirtyFrom: PAGE_BYTES, dirtyTo: 0 };
      this.pages.push(page);
    }
    const offset = page.used;
    page.used = Math.ceil((offset + bytes) / this.alignment) * this.alignment;
    this.slots++;
    // Never used yet, so rewritable in this submit (the generation before any).
    const slot: Slot = { page, offset, bytes, bindGroup: null as unknown as GPUBindGroup, usedIn: -1 };
    slot.bindGroup = this.create(kernel, { buffer: page.buffer, offset, size: bytes }, buffers);
    return slot;
  }

  /** Submits what is queued, forgets every site and slot (the pages stay), and serves this dispatch afresh. */
  private restart(kernel: CompiledKernel, params: ArrayBuffer | undefined, buffers: readonly GPUBuffer[]): GPUBindGroup {
    this.flush();
    this.sites.clear();
    this.slots = 0;
    for (const p of this.pages) p.used = 0;
    return this.bindGroup(kernel, params, buffers);
  }

  private create(kernel: CompiledKernel, uniform: GPUBufferBinding | null, buffers: readonly GPUBuffer[]): GPUBindGroup {
    const entries: GPUBindGroupEntry[] = [];
    if (uniform) entries.push({ binding: 0, resource: uniform });
    buffers.forEach((buffer, i) => entries.push({ binding: i + 1, resource: { buffer } }));
    this.created++;
    return this.device.createBindGroup({ layout: kernel.bindings.layout, entries });
  }

  private bufferId(b: GPUBuffer): number {
    let id = this.bufferIds.get(b);
    if (id === undefined) this.bufferIds.set(b, (id = this.nextBufferId++));
    return id;
  }
}
