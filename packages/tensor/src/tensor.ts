// The Tensor: a shape, strides and an offset over reference-counted GPU storage, a dtype, and
// autograd state. Views (reshape, transpose, slice, expand) share storage; ops live in ops/.
import { getRuntime } from './backend/context.js';
import { AutogradError, DisposedError, DTypeError, ShapeError, fmtShape } from './errors.js';
import { trackTensor } from './scope.js';

/** Element types: f32; f16 where the adapter has shader-f16; i32/u32 for indices and masks. */
export type DType = 'f32' | 'f16' | 'i32' | 'u32';

const DTYPES: readonly DType[] = ['f32', 'f16', 'i32', 'u32'];

/** Throws a DTypeError naming `op` unless `dtype` is one of the tensor dtypes (a check for JavaScript callers). */
export function checkDTypeName(op: string, dtype: unknown): asserts dtype is DType {
  if (!DTYPES.includes(dtype as DType)) throw new DTypeError(`${op}: dtype ${JSON.stringify(dtype)} is not one of ${DTYPES.join(', ')}`);
}
export type FloatDType = 'f32' | 'f16';

export const itemSize: Record<DType, number> = { f32: 4, f16: 2, i32: 4, u32: 4 };

/** Host arrays returned by {@link Tensor.toArray}: f16 is widened to f32. */
export type HostArray<D extends DType = DType> = D extends 'i32' ? Int32Array : D extends 'u32' ? Uint32Array : Float32Array;

/** A GPU buffer shared by a tensor and its views; freed to the pool when the last one lets go. */
export class Storage {
  private refs = 1;
  /** Counts the in-place writes into this buffer (see {@link Tensor.version}). */
  version = 0;

  constructor(
    readonly buffer: GPUBuffer,
    readonly bytes: number,
    /** Host copy of small index tensors created from host data, for bounds checks without readback. */
    readonly host: Int32Array | Uint32Array | null = null,
  ) {}

  retain(): this {
    this.refs++;
    return this;
  }

  release(): void {
    if (--this.refs === 0) getRuntime().release(this.buffer);
  }

  /** Records an in-place write into the buffer (internal: every op that overwrites existing storage calls it). */
  bump(): void {
    this.version++;
  }

  /** Whether more than one tensor (a view, a detached copy) holds this storage. */
  get shared(): boolean {
    return this.refs > 1;
  }
}

/** What backward needs from the op that produced a tensor. */
export interface GraphNode {
  op: string;
  /** The op's tensor inputs, in the order its backward returns gradients. */
  inputs: readonly Tensor[];
  /** Gradient of each input given the output's gradient (null where an input needs none). */
  backward(grad: Tensor): (Tensor | null)[];
  /** Tensors the backward reads; checked for disposal before backward runs. */
  saved: readonly Tensor[];
  /**
   * The sum of the saved tensors' versions when the op ran: versions only grow, so a different sum
   * at backward means one was written in place since (torch's saved-variable version check).
   */
  savedVersions: number;
}

/** The sum of the tensors' storage versions (see {@link GraphNode.savedVersions}). */
export function sumVersions(tensors: readonly Tensor[]): number {
  let sum = 0;
  for (let i = 0; i < tensors.length; i++) sum += tensors[i]!.storage('backward').version;
  return sum;
}

let nextTensorId = 1;

/** An n-dimensional array on the GPU. Create with {@link tensor}, {@link zeros}, {@link randn}, ... */
export class Tensor {
  readonly id = nextTensorId++;
  /** Set by requireGrad() on a leaf (a parameter). */
  private leafRequiresGrad = false;
  private gradValue: Tensor | null = null;
  /** The op that produced this tensor, while its graph is alive. */
  node: GraphNode | null = null;
  /** Set when backward() freed this tensor's graph node, for a clear error on a second backward. */
  graphFreed = false;
  private disposedBy: string | null = null;

  constructor(
    private storageRef: Storage,
    readonly shape: readonly number[],
    readonly dtype: DType,
    /** Element strides (not bytes). */
    readonly strides: readonly number[] = contiguousStrides(shape),
    /** Element offset into the storage. */
    readonly offset = 0,
  ) {
    trackTensor(this);
  }

  /** Number of elements. */
  get size(): number {
    return numel(this.shape);
  }

  get rank(): number {
    return this.shape.length;
  }

  get disposed(): boolean {
    return this.disposedBy !== null;
  }

  /** The storage; throws a DisposedError naming `op` once the tensor is disposed. */
  storage(op = 'use'): Storage {
    if (this.disposedBy !== null) {
      throw new DisposedError(
        `${op}: tensor ${fmtShape(this.shape)} ${this.dtype} was disposed (${this.disposedBy}); ` +
          'keep it alive with keep() or return it from tidy()',
      );
    }
    return this.storageRef;
  }

  /** The GPU buffer (internal: kernels bind it). */
  buffer(op = 'use'): GPUBuffer {
    return this.storage(op).buffer;
  }

  /**
   * The number of in-place writes into this tensor's storage so far (PyTorch's `_version`): it grows
   * with every copyInto, optimizer step, gradient clipping or unscaling, cache write, through any view
   * of the same storage, and never otherwise. A result cached from this tensor is stale once it changes.
   * @example
   * const v = w.version;
   * opt.step(); // w.version === v + 1
   */
  get version(): number {
    return this.storage('version').version;
  }

  /**
   * Whether gradients flow to this tensor (torch's `requires_grad`): a leaf marked by requireGrad(),
   * or an op's output recorded on the graph (computed from such a tensor outside noGrad). An output
   * stays true while its graph is alive; once backward() frees it, it reads false.
   */
  get requiresGrad(): boolean {
    return this.leafRequiresGrad || this.node !== null;
  }

  set requiresGrad(flag: boolean) {
    this.requireGrad(flag);
  }

  /**
   * Accumulated gradient of a leaf after `backward()`. A tensor computed by an op (not a leaf) keeps
   * null, as torch's `.grad` of a non-leaf without retain_grad(): backward passes its gradient on.
   * Assigning one of another shape or dtype throws, as torch's "assigned grad has data of a different size".
   */
  get grad(): Tensor | null {
    return this.gradValue;
  }

  set grad(g: Tensor | null) {
    if (g !== null) {
      if (g.dtype !== this.dtype) throw new DTypeError(`grad: a ${g.dtype} gradient cannot be assigned to ${this}; cast it with .to('${this.dtype}')`);
      if (g.rank !== this.rank || g.shape.some((d, i) => d !== this.shape[i])) {
        throw new ShapeError(`grad: a gradient ${fmtShape(g.shape)} cannot be assigned to ${this}; it must have the tensor's shape`);
      }
    }
    this.gradValue = g;
  }

  /** Whether this tensor is a leaf of the graph (torch's `is_leaf`): not produced by a recorded op. */
  get isLeaf(): boolean {
    return this.node === null;
  }

  /** Whether the elements are laid out row-major with no gaps, starting anywhere. */
  get isContiguous(): boolean {
    return isContiguous(this.shape, this.strides);
  }

  /** Frees the tensor's hold on its storage (and its gradient's). Safe to call twice. */
  dispose(reason = 'dispose() was called'): void {
    if (this.disposedBy !== null) return;
    this.disposedBy = reason;
    this.node = null;
    this.storageRef.release();
    if (this.grad) {
      this.grad.dispose(reason);
      this.grad = null;
    }
  }

  /** A tensor over the same storage with another shape/strides/offset (internal: views). */
  view(shape: readonly number[], strides: readonly number[], offset: number, op = 'view'): Tensor {
    return new Tensor(this.storage(op).retain(), shape, this.dtype, strides, offset);
  }

  /** A tensor sharing this storage, cut from the graph: no gradient flows through it. */
  detach(): Tensor {
    return this.view(this.shape, this.strides, this.offset, 'detach');
  }

  /**
   * Marks this leaf as accumulating gradients (or not, with false). Returns `this`. On an op's output,
   * which already requires them, true does nothing and false throws, as torch's requires_grad_.
   */
  requireGrad(flag = true): this {
    if (flag && this.dtype !== 'f32' && this.dtype !== 'f16') {
      throw new DTypeError(`requireGrad: only float tensors can require gradients, got ${this.dtype}`);
    }
    if (this.node !== null) {
      if (flag) return this;
      throw new AutogradError(
        `requireGrad(false): ${this} was computed by '${this.node.op}' and is not a leaf; to use it without a gradient, use x.detach()`,
      );
    }
    this.leafRequiresGrad = flag;
    return this;
  }

  /** Host copy of the small index tensor this was created from, if any (internal). */
  hostIndices(): Int32Array | Uint32Array | null {
    const s = this.storage('hostIndices');
    if (!s.host || !this.isContiguous || this.offset !== 0 || s.host.length !== this.size) return null;
    return s.host;
  }

  toString(): string {
    return `Tensor(${fmtShape(this.shape)}, ${this.dtype}${this.requiresGrad ? ', requiresGrad' : ''})`;
  }
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i]!;
  }
  return strides;
}

export function isContiguous(shape: readonly number[], strides: readonly number[]): boolean {
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && strides[i] !== s) return false;
    s *= shape[i]!;
  }
  return true;
}

/** Checks a shape given by the user: non-negative integers. */
export function checkShape(op: string, shape: readonly number[]): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(`${op}: shape ${fmtShape(shape)} must hold non-negative integers`);
  }
}

/** Bytes of the storage {@link empty} allocates for `shape` (internal). */
export function storageBytes(shape: readonly number[], dtype: DType): number {
  return Math.max(4, Math.ceil((numel(shape) * itemSize[dtype]) / 4) * 4);
}

/** Allocates an uninitialised contiguous tensor (internal: op outputs; `forWrite`: host data follows at once). */
export function empty(shape: readonly number[], dtype: DType, host: Int32Array | Uint32Array | null = null, forWrite = false): Tensor {
  const bytes = storageBytes(shape, dtype);
  const rt = getRuntime();
  const limit = rt.info.maxStorageBufferBindingSize;
  if (bytes > limit) {
    throw new ShapeError(
      `tensor ${fmtShape(shape)} ${dtype} needs ${bytes} bytes, over the adapter's storage binding limit of ${limit} bytes; split it`,
    );
  }
  return new Tensor(new Storage(forWrite ? rt.acquireForWrite(bytes) : rt.acquire(bytes), bytes, host), [...shape], dtype);
}

/** Index tensors up to this many elements keep a host copy for bounds checks. */
const HOST_COPY_LIMIT = 1 << 20;

/** Wraps a host array as a new tensor (internal: creation functions). */
export function fromHost(data: ArrayBufferView, shape: readonly number[], dtype: DType): Tensor {
  let host: Int32Array | Uint32Array | null = null;
  if (dtype === 'i32' && numel(shape) <= HOST_COPY_LIMIT) host = Int32Array.from(data as Int32Array);
  if (dtype === 'u32' && numel(shape) <= HOST_COPY_LIMIT) host = Uint32Array.from(data as Uint32Array);
  const t = empty(shape, dtype, host, data.byteLength > 0);
  if (data.byteLength > 0) getRuntime().write(t.buffer(), 0, data);
  return t;
}
