// PyTorch .bin checkpoints (torch.save's zip format since PyTorch 1.6): the state dict's pickle is
// read on open through an allowlist, tensor data one tensor at a time from the stored entries. Browser-safe.

import { TorchCheckpointError } from '../errors.js';
import { nonFiniteProblem } from './finite-check.js';
import { convertFloatBytes, type HostFloatArray, type HostFloatDType } from './safetensors.js';
import { safetensorsDTypeSizes, type TensorInfo } from './safetensors-header.js';
import type { ByteSource } from './source.js';
import { readStateDictPickle, type TorchTensorRef } from './torch-pickle.js';
import { ZipArchive, readExactly } from './zip-archive.js';

/** Largest tensor a broadcast (stride-0) view may expand to. */
const maxBroadcastBytes = 2 ** 31;

/** Largest data.pkl read (a 7B model's is about 30 KB). */
const maxPickleBytes = 256 * 2 ** 20;

/** Where a tensor lies: its info, its strides, and its storage's first byte in the file. */
interface Layout {
  readonly info: TensorInfo;
  readonly ref: TorchTensorRef;
  readonly storageStart: number;
}

/** True when the first bytes are a ZIP local header (`PK\x03\x04`). */
export function isZipMagic(head: Uint8Array): boolean {
  return head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04;
}

/** The legacy format's first pickled value, torch's magic number 0x1950a86a20f9469cfc6c, as LONG1. */
const legacyMagic = [0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/** How many first bytes {@link isZipMagic} and {@link isPickleMagic} look at. */
export const magicBytes = 24;

/**
 * True when the first bytes are the legacy torch.save format: PROTO 2-5, a FRAME from protocol 4, then torch's
 * magic number. PROTO alone is not enough: a safetensors header of 640, 896, 1152 or 1408 bytes begins 80 02-05 too.
 */
export function isPickleMagic(head: Uint8Array): boolean {
  if (head[0] !== 0x80 || head[1] === undefined || head[1] < 2 || head[1] > 5) return false;
  const at = head[2] === 0x95 ? 11 : 2;
  return legacyMagic.every((b, i) => head[at + i] === b);
}

function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d]! !== 1 && stride[d]! !== expected) return false;
    expected *= shape[d]!;
  }
  return true;
}

/**
 * Copies a strided view out of `src` (its storage from the view's first element) into row-major order,
 * moving whole elements as 1-, 2- or 4-byte words.
 */
function gather(src: Uint8Array, shape: readonly number[], stride: readonly number[], itemSize: number): Uint8Array {
  const word = Math.min(itemSize, 4);
  const perItem = itemSize / word;
  const aligned = src.byteOffset % word === 0 ? src : src.slice();
  const numel = shape.reduce((a, b) => a * b, 1);
  const out = new Uint8Array(numel * itemSize);
  const view = (b: Uint8Array) =>
    word === 4 ? new Uint32Array(b.buffer, b.byteOffset, b.byteLength / 4) : word === 2 ? new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2) : b;
  const from = view(aligned);
  const to = view(out);
  const rank = shape.length;
  const inner = shape[rank - 1]!;
  const innerStride = stride[rank - 1]! * perItem;
  const index = new Array<number>(rank).fill(0);
  let at = 0;
  for (let k = 0; k < to.length; ) {
    // One run along the last dimension.
    for (let i = 0, q = at * perItem; i < inner; i++, q += innerStride) {
      for (let w = 0; w < perItem; w++) to[k++] = from[q + w]!;
    }
    for (let d = rank - 2; d >= 0; d--) {
      index[d] = index[d]! + 1;
      at += stride[d]!;
      if (index[d]! < shape[d]!) break;
      at -= index[d]! * stride[d]!;
      index[d] = 0;
    }
  }
  return out;
}

/**
 * A PyTorch `.bin` file opened for streaming: the zip directory and `data.pkl` are read and checked
 * on `open` (no code is ever run: only state-dict globals are admitted); tensor data is read only
 * when asked for, one tensor at a time. Views are read from their storage's offset; non-contiguous
 * views (a transposed weight) are gathered into row-major order.
 *
 * @example
 * const bin = await TorchBinFile.open(blobSource(file));
 * const a = await bin.readAs('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', 'f32');
 */
export class TorchBinFile {
  readonly source: ByteSource;
  /** The file's path or name, as used in error messages. */
  readonly name: string;
  /** Every tensor, in the state dict's order; `offset` is its first element's place in the file. */
  readonly tensors: readonly TensorInfo[];
  private readonly byName: ReadonlyMap<string, Layout>;

  private constructor(source: ByteSource, layouts: Layout[]) {
    this.source = source;
    this.name = source.name;
    this.tensors = Object.freeze(layouts.map((l) => l.info));
    this.byName = new Map(layouts.map((l) => [l.info.name, l]));
  }

  /**
   * Reads the zip's directory and the state dict's pickle, and checks every tensor lies inside its
   * storage. Throws TorchCheckpointError naming the file for the legacy format, a corrupt or
   * compressed archive, or any global a state dict does not need.
   */
  static async open(source: ByteSource): Promise<TorchBinFile> {
    const file = source.name;
    const head = await source.read(0, magicBytes);
    if (!isZipMagic(head)) {
      if (isPickleMagic(head)) {
        throw new TorchCheckpointError(
          file,
          undefined,
          "is in PyTorch's legacy format (torch < 1.6, or _use_new_zipfile_serialization=False), which cannot be read without running its pickle; " +
            're-save it with PyTorch >= 1.6: torch.save(torch.load(path, map_location="cpu"), path), or convert it to safetensors',
        );
      }
      throw new TorchCheckpointError(file, undefined, "is not a zip archive, as torch.save writes since PyTorch 1.6; it is corrupt or not a PyTorch checkpoint");
    }
    const zip = await ZipArchive.open(source);
    const pickles = zip.entries.filter((e) => /^[^/]+\/data\.pkl$/.test(e.name));
    if (pickles.length !== 1) {
      throw new TorchCheckpointError(file, undefined, `expected one <archive>/data.pkl entry, found ${pickles.length}; it is not a torch.save checkpoint`);
    }
    const pkl = pickles[0]!;
    const prefix = pkl.name.slice(0, -'data.pkl'.length);
    const order = zip.entry(`${prefix}byteorder`);
    if (order !== undefined) {
      if (order.size > 16) throw new TorchCheckpointError(file, undefined, `its byteorder entry has ${order.size} bytes, where torch.save writes "little" or "big"; the archive is corrupt`);
      const text = new TextDecoder().decode(await zip.readStored(order)).trim();
      if (text !== 'little') throw new TorchCheckpointError(file, undefined, `was saved with byte order "${text}"; only little-endian checkpoints are supported: save it again on a little-endian machine`);
    }
    if (pkl.size > maxPickleBytes) throw new TorchCheckpointError(file, undefined, `data.pkl has ${pkl.size} bytes, more than a state dict's pickle ever needs; refused`);
    const refs = readStateDictPickle(await zip.readStored(pkl), file);
    const starts = new Map<string, number>();
    const layouts: Layout[] = [];
    for (const [name, ref] of refs) {
      const { storage } = ref;
      const itemSize = safetensorsDTypeSizes[storage.dtype];
      let start = starts.get(storage.key);
      if (start === undefined) {
        const entry = zip.entry(`${prefix}data/${storage.key}`);
        if (entry === undefined) throw new TorchCheckpointError(file, name, `its storage ${prefix}data/${storage.key} is missing from the archive; the file is corrupt`);
        if (entry.size < storage.numel * itemSize) {
          throw new TorchCheckpointError(file, name, `its storage holds ${entry.size} bytes, fewer than its ${storage.numel} ${storage.dtype} elements; the file is corrupt`);
        }
        start = await zip.dataOffset(entry);
        starts.set(storage.key, start);
      }
      const numel = ref.shape.reduce((a, b) => a * b, 1);
      const last = ref.storageOffset + ref.shape.reduce((s, d, i) => s + (d - 1) * ref.stride[i]!, 0);
      if (numel > 0 && last >= storage.numel) {
        throw new TorchCheckpointError(file, name, `its view (offset ${ref.storageOffset}, shape [${ref.shape.join(', ')}], strides (${ref.stride.join(', ')})) reaches element ${last} of a ${storage.numel}-element storage; the file is corrupt`);
      }
      // Only a broadcast view (stride 0) is larger than its storage; such a view is gathered into memory whole.
      if (!Number.isSafeInteger(numel * itemSize) || numel * itemSize > Math.max(storage.numel * itemSize, maxBroadcastBytes)) {
        throw new TorchCheckpointError(file, name, `its shape [${ref.shape.join(', ')}] with strides (${ref.stride.join(', ')}) expands a ${storage.numel}-element storage beyond ${maxBroadcastBytes} bytes; save tensor.contiguous() instead`);
      }
      const info: TensorInfo = { name, dtype: storage.dtype, shape: ref.shape, byteLength: numel * itemSize, offset: start + ref.storageOffset * itemSize };
      layouts.push({ info: Object.freeze(info), ref, storageStart: start });
    }
    return new TorchBinFile(source, layouts);
  }

  /** True when the file holds a tensor called `name`. */
  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** The tensor called `name`; throws TorchCheckpointError when absent. */
  info(name: string): TensorInfo {
    return this.layout(name).info;
  }

  private layout(name: string): Layout {
    const l = this.byName.get(name);
    if (l === undefined) {
      const some = this.tensors.slice(0, 5).map((x) => x.name).join(', ');
      throw new TorchCheckpointError(this.name, name, `no such tensor; the file holds ${this.tensors.length} tensors${some ? ` (${some}${this.tensors.length > 5 ? ', ...' : ''})` : ''}`);
    }
    return l;
  }

  /** Reads one tensor's bytes in row-major order (gathered from its storage when the view is strided). */
  async read(name: string): Promise<Uint8Array> {
    const { info, ref } = this.layout(name);
    if (info.byteLength === 0) return new Uint8Array(0);
    if (isContiguous(ref.shape, ref.stride)) return readExactly(this.source, info.offset, info.byteLength, 'tensor data', name);
    const itemSize = safetensorsDTypeSizes[info.dtype];
    const span = 1 + ref.shape.reduce((s, d, i) => s + (d - 1) * ref.stride[i]!, 0);
    const src = await readExactly(this.source, info.offset, span * itemSize, 'tensor data', name);
    return gather(src, ref.shape, ref.stride, itemSize);
  }

  /**
   * Reads an F32, F16 or BF16 tensor as host floats (`'f32'`: Float32Array; `'f16'`: bit patterns,
   * rounded to nearest even), refusing NaN and infinity by name unless `options.allowNonFinite`.
   */
  async readAs<T extends HostFloatDType>(name: string, target: T, options: { allowNonFinite?: boolean } = {}): Promise<HostFloatArray<T>> {
    const t = this.info(name);
    const bytes = await this.read(name);
    const out = convertFloatBytes(bytes, t.dtype, target);
    if (out === undefined) {
      throw new TorchCheckpointError(this.name, name, `dtype ${t.dtype} cannot be read as ${target}; only F32, F16 and BF16 convert; use read() for the raw bytes`);
    }
    if (!options.allowNonFinite) {
      const inFile = target === 'f16' && t.dtype !== 'F16' ? () => convertFloatBytes(bytes, t.dtype, 'f32')! : undefined;
      const problem = nonFiniteProblem(out, inFile);
      if (problem !== undefined) throw new TorchCheckpointError(this.name, name, problem);
    }
    return out;
  }

  /** Closes the underlying source when it has a handle. */
  async close(): Promise<void> {
    await this.source.close?.();
  }
}
