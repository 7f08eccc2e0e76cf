// The bind groups of dispatches and their uniform blocks, cached per dispatch site (binding layout and
// storage buffers). Each site keeps a slot in a page of uniform blocks and the bind group over it: a
// repeated step creates no buffer and no bind group, and a site whose parameters change (a growing KV
// cache) rewrites its slot, all slots written before the submit in one write per page. A site used
// again in the same submit with other parameters takes another slot. A repeated step meets its sites in
// the same order: each position of a submit remembers its last site, checked by comparing its buffers.
import type { BindingLayout } from './pipelines.js';
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

/** A buffer's id among the sites, and the submit that last used it (the count of submits then). */
interface BufferInfo {
  id: number;
  usedIn: number;
}

/** A dispatch site (a node of the tree of sites): its bind group without uniforms, or its slots. */
interface Site {
  next: Map<number, Site> | null;
  bindGroup: GPUBindGroup | null;
  slots: Slot[];
}

/**
 * The site served at one position of a submit and what it was found by: a repeated step (a decode token,
 * a training step) meets the same sites in the same order, so the next dispatch at that position
 * compares its layout and buffers with these instead of walking the tree.
 */
interface Visit {
  layout: BindingLayout;
  uniformBytes: number;
  buffers: GPUBuffer[];
  infos: BufferInfo[];
  site: Site;
  /** The restart the site belongs to (a restart forgets every site). */
  epoch: number;
}

/** Positions of a submit that remember their visit (the runtime submits every 256 dispatches). */
const MAX_VISITS = 1024;

function newSite(): Site {
  return { next: null, bindGroup: null, slots: [] };
}

function sameBuffers(a: readonly GPUBuffer[], b: readonly GPUBuffer[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function child(node: Site, k: number): Site {
  let n = node.next?.get(k);
  if (n === undefined) (node.next ??= new Map()).set(k, (n = newSite()));
  return n;
}

/** The bind groups and uniform blocks of one device's dispatches. */
export class BindingCache {
  /** Sites by binding layout, each the root of a tree of sites by uniform size and buffers. */
  private readonly roots = new Map<BindingLayout, Site>();
  private siteCount = 0;
  /** Each buffer's id in the tree of sites and the submit that last bound it. */
  private readonly bufferInfo = new WeakMap<GPUBuffer, BufferInfo>();
  private nextBufferId = 1;
  private pages: Page[] = [];
  private slots = 0;
  /** Counts submits, so that a slot read by the commands not yet submitted is never rewritten. */
  private generation = 0;
  /** The site found at each position of the last submits, and the position of the next dispatch in this one. */
  private readonly visits: (Visit | undefined)[] = [];
  private position = 0;
  /** Counts restarts. */
  private epoch = 0;
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
  bindGroup(kernel: CompiledKernel, params: Uint32Array | undefined, buffers: readonly GPUBuffer[]): GPUBindGroup {
    const site = this.site(kernel, params === undefined ? 0 : params.byteLength, buffers);
    if (!params) {
      if (site.bindGroup !== null) return site.bindGroup;
      if (this.siteCount >= MAX_SITES) return this.restart(kernel, params, buffers);
      this.siteCount++;
      return (site.bindGroup = this.create(kernel, null, buffers));
    }
    const slots = site.slots;
    // A slot holding these values already, else one the commands not yet submitted do not read.
    let slot: Slot | undefined;
    for (let i = 0; i < slots.length && slot === undefined; i++) if (this.holds(slots[i]!, params)) slot = slots[i];
    if (slot === undefined) {
      for (let i = 0; i < slots.length && slot === undefined; i++) if (slots[i]!.usedIn !== this.generation) slot = slots[i];
      if (slot === undefined) {
        if (this.slots >= MAX_SLOTS || this.siteCount >= MAX_SITES) return this.restart(kernel, params, buffers);
        slot = this.allocate(kernel, params.byteLength, buffers);
        if (slots.length === 0) this.siteCount++;
        slots.push(slot);
      }
      this.write(slot, params);
    }
    slot.usedIn = this.generation;
    return slot.bindGroup;
  }

  /**
   * The site of a dispatch: found in a tree by its binding layout, then by numbers (the uniform's
   * bytes, each buffer's id), so that a dispatch builds no key.
   */
  private site(kernel: CompiledKernel, uniformBytes: number, buffers: readonly GPUBuffer[]): Site {
    const layout = kernel.bindings;
    const at = this.position++;
    const visit = this.visits[at];
    if (visit !== undefined && visit.epoch === this.epoch && visit.layout === layout && visit.uniformBytes === uniformBytes && sameBuffers(visit.buffers, buffers)) {
      for (const info of visit.infos) info.usedIn = this.generation;
      return visit.site;
    }
    let node = this.roots.get(layout);
    if (node === undefined) this.roots.set(layout, (node = newSite()));
    node = child(node, uniformBytes);
    const infos: BufferInfo[] = [];
    for (const buffer of buffers) {
      const info = this.info(buffer);
      info.usedIn = this.generation;
      infos.push(info);
      node = child(node, info.id);
    }
    if (at < MAX_VISITS) this.visits[at] = { layout, uniformBytes, buffers: [...buffers], infos, site: node, epoch: this.epoch };
    return node;
  }

  /** Notes that commands not yet submitted use `buffer` (a copy). */
  markUsed(buffer: GPUBuffer): void {
    this.info(buffer).usedIn = this.generation;
  }

  /** Whether commands not yet submitted bind or copy `buffer`. */
  usedUnsubmitted(buffer: GPUBuffer): boolean {
    return this.bufferInfo.get(buffer)?.usedIn === this.generation;
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
    this.position = 0;
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
  private restart(kernel: CompiledKernel, params: Uint32Array | undefined, buffers: readonly GPUBuffer[]): GPUBindGroup {
    this.flush();
    this.epoch++;
    this.roots.clear();
    this.siteCount = 0;
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

  private info(b: GPUBuffer): BufferInfo {
    let info = this.bufferInfo.get(b);
    if (info === undefined) this.bufferInfo.set(b, (info = { id: this.nextBufferId++, usedIn: -1 }));
    return info;
  }
}
